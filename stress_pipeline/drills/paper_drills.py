"""Drills through the paper engine: the failures that are market or venue events the engine models.

These drills do not script the system's reaction: they stress bars (a scenario transform of
``scenarios/``, or a venue fault of the engine), paper-trade them with ``simulation.run_paper`` (policy
controller, risk stack, order router, exchange simulator with latency, bar-path fills, spread, impact,
partial fills, fees, outages, rate limits), and judge the seed's pass criteria from the run's event log,
equity curve and fills, and from the monitors (``monitoring/monitors.py``) run on that event stream
(``monitoring.observation.observation_from_run``), never from what the drill knows it injected.

The bars are synthetic (``market.synthetic.generate_bars``, seeded by ``DrillEnv.seed``) and start at
the drills' epoch (``drills.core.EPOCH``), so an event's time on the drill's timeline is its timestamp
less the epoch. The system under test is the paper engine's: the policy (the default policy unless a
drill says which field it changes and why) and a strategy. A user's decider (``DrillEnv.decider``) is
Python the compiled engine cannot call, so with one these drills judge the user's decider on the live
book instead (the drill of the same name in ``risk_drills.py`` / ``venue_drills.py``, with its state in
Redis): the same failure, the other system under test.

* ``correlation_cascade`` (seed 002 scenario 6): three long strategies that buy the dip, and a
  correlation cascade laid on the bars (BTC -30%, ETH and SOL 0.9 of it, 2 and 4 bars later). The halts
  are the ESS transitions of the log, the loss the equity curve's mark-to-market drawdown; the monitors
  read the equity marks for the drawdown and for a balance drop of more than 10% within an hour.
* ``exchange_outage`` (seed 002 scenario 2): the engine's ``exchange_outage`` fault for 15 minutes
  while a rebalancing strategy trades, with the router's exchange session on (``pause_on_outage``: no
  send after the exchange refused an order as down, a reconnect every 60 s). The orders, rejects,
  reconnects and fills are the log's; the ``api_down`` monitor reads the log and a health prober's
  answers every 10 s (``PROBE_S``; the engine models no prober, so the drill asks the same venue, the
  fault's window, what a prober would get).
* ``rate_limits`` (seed 004): the engine's ``rate_limit`` faults (its order limit throttled, then an IP
  ban) while three symbols re-weight at the same closes; retries, backoff, limits and the ESS from the
  log's sends, refusals and execution failures.

The other drills stay on the live book: the network loss, the broker (Redis) disconnect and the
webhook path are no market or venue event the engine models; the ESS reset goes through the operator's
command line and Redis; the stuck position needs an exit the book never fills (the engine's fills
always find the bar's volume); the signal flood measures a real queue's lag; and the high slippage is
one fill 1% off its expected price, then the unprofitable strategy disabled through the live state's
kill switch (the engine's slippage moves every fill of a stressed window, and it keeps no
per-strategy switch).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd

from stress_pipeline.drills.core import EPOCH, DrillRecord, DrillResult, SimClock, alert_queue
from stress_pipeline.drills.observe import START, Observed, detect
from stress_pipeline.drills.risk_drills import DrillEnv
from stress_pipeline.drills.risk_drills import correlation_cascade_drill as live_cascade_drill
from stress_pipeline.drills.venue_drills import exchange_outage_drill as live_outage_drill
from stress_pipeline.market.synthetic import generate_bars
from stress_pipeline.monitoring.monitors import MonitorConfig, Observation
from stress_pipeline.monitoring.observation import observation_from_run
from stress_pipeline.scenarios import apply_scenario
from stress_pipeline.scenarios.model import SCENARIO_ADAPTER
from stress_pipeline.simulation.config import SimConfig
from stress_pipeline.simulation.paper import run_paper
from stress_pipeline.simulation.result import SimResult
from stress_pipeline.trading.risk.policy import TradingPolicy

SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
BAR_S = 60.0
#: Seed 002 scenario 6 on the drill's bars: the shipped pack's cascade (0.9 correlation, lags of 2 and 4
#: bars), deepened to seed 002's -30% crash, ten hours into the day.
CASCADE = {
    "name": "Drill correlation cascade", "type": "correlation_cascade", "severity": "catastrophic",
    "symbols": list(SYMBOLS), "seed": 14, "window": {"offset_bars": 600},
    "parameters": {"drop_pct": 0.30, "correlation": 0.9, "lag_bars": [2, 4], "duration_bars": 5, "recovery_bars": 30},
}  # fmt: skip
OUTAGE_AT_S = 36_030.0  # 10:00:30 of the drill's day
OUTAGE_S = 900.0  # seed 002 scenario 2: 15 minutes
PROBE_S = 10.0  # the health prober's period
DETECT_WITHIN_S = 60.0  # seed 002 scenario 2: detected within 60 s
RECONNECT_S = 60.0  # ... and a reconnect tried every 60 s
THROTTLE = {"at_s": 36_000.0, "duration_s": 600.0, "limit_mult": 1 / 300}  # 1 order per 10 s: -1015
BAN = {"at_s": 36_900.0, "duration_s": 300.0, "limit_mult": 0.0}  # an IP ban (no request weight): -1003
SEED_RETRIES, SEED_BACKOFF_S = 3, 0.1  # seed 004: at most 3 retries, backoff from 0.1 s doubling
RECOVER_WITHIN_S = 25.0  # seed 001: recovery within 25 s
HALT_DRAWDOWN = 0.15  # seed 002 scenario 6: a drawdown beyond 15% halts new trades
MAX_LOSS = 0.20  # ... and the loss stays below 20%


def cascade_policy(policy: TradingPolicy | None = None) -> TradingPolicy:
    """The policy the cascade drill trades: ``policy`` (default: the default policy) without per-position
    stop-losses. With them each position leaves at -5% on its own, before the portfolio drawdown
    reaches the ESS, so the drill would never see the halt it is about."""
    policy = policy or TradingPolicy()
    data = policy.model_dump()
    data["risk"]["stop_loss"]["enabled"] = False
    return TradingPolicy.model_validate(data)


def correlation_cascade_drill(env: DrillEnv, *, policy: TradingPolicy | None = None) -> DrillResult:
    """Correlation cascade (seed 002 scenario 6) through the paper engine: every strategy long, the
    market falls together; no equity mark beyond 15% drawdown finds the ESS armed, no risk-adding fill
    from the halt to the operator's reset, and the mark-to-market loss stays below 20%."""
    if env.decider:
        return live_cascade_drill(env)
    policy = cascade_policy(policy)
    clock = SimClock()
    record = DrillRecord("correlation_cascade", clock.now, alert_queue(env.alerts_dir))
    try:
        scenario = SCENARIO_ADAPTER.validate_python(CASCADE)
        bars = apply_scenario(scenario, drill_bars(env.seed))
        result = run_paper(bars, DipBuyers(), SimConfig(position_scale=1.0, seed=env.seed), policy=policy,
                           scenario_name=scenario.name)  # fmt: skip
        events = result.events
        stressed = bars.loc[bars["stressed"], "ts"]
        fault_s = seconds(stressed.min())
        record.mark("fault", f"{scenario.name}: BTCUSDT -30%, ETHUSDT and SOLUSDT 0.9 of it, 2 and 4 bars later",
                    fault_s)  # fmt: skip
        ess = ess_transitions(events)
        for row in ess.itertuples(index=False):
            record.mark("action", f"ESS {row.from_state} -> {row.to_state} ({row.reason}, drawdown {row.drawdown:.1%})",
                        seconds(row.ts))  # fmt: skip
        halts = ess[ess["to_state"].isin(("TRIPPED", "HALTED"))]
        halt = halts.iloc[0] if len(halts) else None
        resets = ess[(ess["to_state"] == "ARMED") & (ess["ts"] > halt["ts"])] if halt is not None else ess.iloc[:0]
        reset_ts = resets["ts"].iloc[0] if len(resets) else None
        trip = policy.risk.safety.trip_drawdown
        config = MonitorConfig(drawdown_limit=min(trip, HALT_DRAWDOWN))  # the tighter of the seed's and the system's
        observed = PaperRun(observation_from_run(events, result.equity, bars))
        found = detect(observed, seconds(observed.run.as_of), ["drawdown_exceeded", "ess_tripped", "balance_anomaly"],
                       config, record, "paper/correlation_cascade")  # fmt: skip
        balance = found[found["failure_mode"] == "balance_anomaly"]
        found = found[found["failure_mode"] != "balance_anomaly"]
        marks = equity_marks(result)
        armed = armed_at(marks["ts"], ess)
        halted_at = "never halted" if halt is None else f"{halt['reason']} at {seconds(halt['ts']):.0f} s"
        record.check("ESS halt: drawdown at the trip", None if halt is None else halt["drawdown"], ">=", trip,
                     halted_at)  # fmt: skip
        # until the operator's reset: the reset re-arms the ESS on purpose (and re-bases its peak)
        before_reset = np.ones(len(marks), dtype=bool) if reset_ts is None else (marks["ts"] < reset_ts).to_numpy()
        over = (marks["drawdown"].to_numpy() > HALT_DRAWDOWN) & before_reset
        record.check("equity marks beyond 15% drawdown with the ESS armed", float((over & armed).sum()), "==", 0.0,
                     f"{int(over.sum())} marks beyond 15% before any reset, deepest {marks['drawdown'].max():.1%}")
        adding, filled = risk_adding(events, halt["ts"] if halt is not None else None, reset_ts)
        record.check("risk-adding fills from the halt to the reset", float(filled) if adding else None, "==", 0.0,
                     f"{adding} risk-adding signals in the halt")  # fmt: skip
        record.check("back to ARMED only by the operator reset",
                     float((resets["reason"] == "OPERATOR_RESET").all()) if len(resets) else None, "==", 1.0,
                     ", ".join(resets["reason"]) or "never re-armed")  # fmt: skip
        loss = float(marks["drawdown"].max())
        final = f"final equity {result.equity['equity'].iloc[-1]:,.0f} of {SimConfig().initial_capital:,.0f}"
        record.check("loss contained (max drawdown)", loss, "<", MAX_LOSS, final)
        first = found["detected_at"].min() if len(found) else None
        record.check("detected by the monitors at the halt (s after the trip)",
                     None if first is None or halt is None else (first - halt["ts"]).total_seconds(), "<=", 0.0,
                     "the monitors' first detection against the ESS trip")  # fmt: skip
        dropped = f"balance_anomaly monitor: drop {balance['value'].iloc[0]:.1%}" if len(balance) else "none seen"
        record.check("balance drop > 10% within an hour alerted (s after the fault)",
                     seconds(balance["detected_at"].iloc[0]) - fault_s if len(balance) else None, "<=",
                     config.balance_window_s, dropped)  # fmt: skip
        if reset_ts is not None:
            record.mark("recovery", "ESS re-armed by the operator: orders allowed again", seconds(reset_ts))
        record.mark("end", "drill over", seconds(observed.run.as_of))
        return record.result()
    finally:
        record.close()


def session_policy(policy: TradingPolicy | None = None) -> TradingPolicy:
    """The policy the outage drill trades: ``policy`` (default: the default policy) with the exchange
    session of seed 002 (``router.pause_on_outage``), whose behaviour the drill judges."""
    data = (policy or TradingPolicy()).model_dump()
    data["router"]["pause_on_outage"] = True
    return TradingPolicy.model_validate(data)


def exchange_outage_drill(env: DrillEnv, *, outage_s: float = OUTAGE_S, policy: TradingPolicy | None = None,
                          session: bool = True) -> DrillResult:  # fmt: skip
    """Exchange API outage (seed 002 scenario 2) through the paper engine: detected < 60 s, no order
    sent after the exchange was found down while it is, a reconnect every 60 s, trading resumes after,
    and the positions equal the fills of the log. ``session=False`` trades ``policy`` as it is."""
    if env.decider:
        return live_outage_drill(env, outage_s=outage_s)
    policy = session_policy(policy) if session else policy or TradingPolicy()
    clock = SimClock()
    record = DrillRecord("exchange_outage", clock.now, alert_queue(env.alerts_dir))
    try:
        bars = drill_bars(env.seed)
        fault = {"kind": "exchange_outage", "at_s": OUTAGE_AT_S, "duration_s": outage_s}
        result = run_paper(bars, Rebalancer(), SimConfig(seed=env.seed), policy=policy, faults=[fault],
                           scenario_name="exchange outage drill")  # fmt: skip
        events = result.events
        down_from, down_until = OUTAGE_AT_S, OUTAGE_AT_S + outage_s
        record.mark("fault", f"exchange API unreachable for {outage_s / 60:g} min", down_from)
        probes = prober(bars, down_from, down_until)
        observed = PaperRun(observation_from_run(events, result.equity, bars, probes=probes))
        found = detect(observed, seconds(observed.run.as_of), ["api_down"], MonitorConfig(), record,
                       "paper/exchange_outage")  # fmt: skip
        t = events["ts"].map(seconds)
        refused = events[(events["kind"] == "reject") & (events["reason"] == "EXCHANGE_OUTAGE")]
        found_down = float(t[refused.index].min()) if len(refused) else math.nan
        if math.isfinite(found_down):
            record.mark("action", "first order refused as EXCHANGE_OUTAGE: the exchange is known down", found_down)
        reconnects = events[events["kind"] == "reconnect"]
        for i, ok in zip(reconnects.index, reconnects["reason"] != "EXCHANGE_OUTAGE", strict=True):
            record.mark("action", f"reconnect {'succeeded' if ok else 'failed'}", float(t[i]))
        orders = events[events["kind"] == "order"]
        fills = events[events["kind"] == "fill"]
        resumed = t[fills.index][t[fills.index] >= down_until]
        back = t[reconnects.index][((reconnects["reason"] != "EXCHANGE_OUTAGE") & (t[reconnects.index] >= down_until))
                                   .to_numpy()]  # fmt: skip
        if len(back):
            record.mark("recovery", "reconnected: orders are sent again", float(back.iloc[0]))
        detected = (found["detected_at"].min() - START).total_seconds() if len(found) else None
        record.check("detection delay (s)", None if detected is None else detected - down_from, "<",
                     DETECT_WITHIN_S, "api_down monitor: the log's rejects and the prober's answers")  # fmt: skip
        sent_down = (t[orders.index] > found_down) & (t[orders.index] < down_until)
        waited = reconnects["details"].map(lambda d: json.loads(d)["waiting"]).sum() if len(reconnects) else 0
        wanted = int(sent_down.sum()) + int(waited)  # something to send while down: the criterion is exercised
        record.check("orders sent while the exchange was known down", float(sent_down.sum()) if wanted else None,
                     "==", 0.0, f"{len(refused)} refused as EXCHANGE_OUTAGE, {len(reconnects)} reconnects with "
                     f"{waited} orders waiting")  # fmt: skip
        failed = t[reconnects.index][(reconnects["reason"] == "EXCHANGE_OUTAGE").to_numpy()]
        tries = t[reconnects.index].to_numpy()
        gaps = np.diff(tries)
        record.check("reconnect interval (s, max deviation from 60)",
                     float(np.abs(gaps - RECONNECT_S).max()) if len(failed) and len(gaps) else None, "<=", 1.0,
                     f"{len(failed)} failed and {len(tries) - len(failed)} successful reconnects")  # fmt: skip
        record.check("recovery_s", float(back.iloc[0]) - down_until if len(back) else None, "<=", RECONNECT_S,
                     "API back to the session's successful reconnect")  # fmt: skip
        record.check("trading resumes: fills after the outage", float(len(resumed)) if len(back) else None, ">", 0.0,
                     f"the first {float(resumed.iloc[0]) - down_until:.1f} s after the API came back" if len(resumed)
                     else "no fill after the outage")  # fmt: skip
        held = result.details["positions"].iloc[-1]
        booked = fills.groupby("symbol")["qty"].sum().reindex(held.index, fill_value=0.0)
        record.check("positions equal the log's fills (max difference)", float((held - booked).abs().max()), "<=",
                     1e-9, ", ".join(f"{s} {q:.6g}" for s, q in held.items()))  # fmt: skip
        record.mark("end", "drill over", seconds(observed.run.as_of))
        return record.result()
    finally:
        record.close()


def rate_limits_drill(env: DrillEnv, *, policy: TradingPolicy | None = None) -> DrillResult:
    """Rate limits -1015 / -1003 (seed 004) through the paper engine: the venue's order limit throttled
    to one order per 10 s for 10 minutes while three symbols re-weight at the same closes, then a
    5-minute IP ban. Every retry is the engine's client, judged against the seed's rule: at most 3 retries,
    each after max(Retry-After, 0.1 s x 2^n); the limiter holds the rate in force; no more than 1 + 3
    requests per order during the ban; the exhausted orders alerted once per symbol by the ``order_placement_failed``
    monitor; the ESS does not trip; orders are accepted again within 25 s of the ban's end. No
    decider is involved (the retry rule is the client's), so a user's decider changes nothing here."""
    policy = policy or TradingPolicy()
    limits = policy.exchange.rate_limits
    clock = SimClock()
    record = DrillRecord("rate_limits", clock.now, alert_queue(env.alerts_dir))
    try:
        faults = [{"kind": "rate_limit", "at_s": w["at_s"], "duration_s": w["duration_s"],
                   "params": {"limit_mult": w["limit_mult"]}} for w in (THROTTLE, BAN)]  # fmt: skip
        bars = drill_bars(env.seed)
        result = run_paper(bars, Rebalancer(stagger=False), SimConfig(seed=env.seed), policy=policy, faults=faults,
                           scenario_name="rate limits drill")  # fmt: skip
        events = result.events
        t = events["ts"].map(seconds)
        record.mark("fault", "order limit throttled to 1 per 10 s (-1015) for 10 min", THROTTLE["at_s"])
        record.mark("fault", "IP ban: no request weight for 5 min (-1003)", BAN["at_s"])
        observed = PaperRun(observation_from_run(events, result.equity, bars))
        found = detect(observed, seconds(observed.run.as_of), ["order_placement_failed"], MonitorConfig(), record,
                       "paper/rate_limits")  # fmt: skip
        sends = sends_of(events, SEED_BACKOFF_S)
        rejects = events[events["kind"] == "reject"]
        codes = rejects["details"].map(lambda d: json.loads(d)["code"])
        for code in (-1015, -1003):
            first = t[rejects.index][(codes == code).to_numpy()]
            if len(first):
                record.mark("action", f"first {code} refusal: retried after its Retry-After", float(first.iloc[0]))
        record.check("max retries per order", float(sends["attempt"].max()), "<=", float(SEED_RETRIES))
        retried = sends[sends["attempt"] > 0]
        record.check("backoff: wait / required (min)", float(retried["waited_ratio"].min()) if len(retried) else None,
                     ">=", 1.0, f"{len(retried)} retries, each after max(Retry-After, 0.1 s x 2**n)")  # fmt: skip
        accepted = sends[sends["accepted"]]
        throttled = accepted[(accepted["t_s"] >= THROTTLE["at_s"])
                             & (accepted["t_s"] < THROTTLE["at_s"] + THROTTLE["duration_s"])]  # fmt: skip
        in_force = int(limits.orders_per_10s * THROTTLE["limit_mult"])
        per_10s = float(throttled.groupby(throttled["t_s"] // 10.0).size().max()) if len(throttled) else None
        record.check("orders accepted per 10 s under the throttle (max)", per_10s, "<=", float(in_force),
                     f"the limit in force: {limits.orders_per_10s} x {THROTTLE['limit_mult']:.4f}")  # fmt: skip
        everywhere = accepted.groupby(accepted["t_s"] // 10.0).size().max()
        record.check("orders accepted per 10 s (max)", float(everywhere), "<=", float(limits.orders_per_10s))
        record.check("-1015 seen", float((codes == -1015).sum()), ">", 0.0)
        record.check("-1003 seen", float((codes == -1003).sum()), ">", 0.0)
        banned = sends[(sends["t_s"] >= BAN["at_s"]) & (sends["t_s"] < BAN["at_s"] + BAN["duration_s"])]
        record.check("requests during the ban", float(len(banned)), "<=",
                     float(banned["order_id"].nunique() * (SEED_RETRIES + 1)),
                     f"{banned['order_id'].nunique()} orders: at most 1 + retries each")  # fmt: skip
        incidents = len(set(record.raised))  # PagerDuty opens one incident per dedup key
        record.check("dependency incidents alerted", float(incidents) if incidents else None, "<=",
                     float(len(SYMBOLS)), f"order_placement_failed: {len(found)} detections, one incident per "
                     "symbol whose retries ran out")  # fmt: skip
        ess = ess_transitions(events)
        record.check("ESS not tripped", float(ess.empty), "==", 1.0, ", ".join(ess["to_state"]) or "ARMED throughout")
        ban_end = BAN["at_s"] + BAN["duration_s"]
        resumed = accepted[accepted["t_s"] >= ban_end]
        if len(resumed):
            record.mark("recovery", "orders accepted again", float(resumed["t_s"].iloc[0]))
        record.check("recovery_s", float(resumed["t_s"].iloc[0]) - ban_end if len(resumed) else None, "<=",
                     RECOVER_WITHIN_S, "ban end to the first accepted order")  # fmt: skip
        record.mark("end", "drill over", seconds(observed.run.as_of))
        return record.result()
    finally:
        record.close()


# ---------------------------------------------------------------------------------------- helpers


class DipBuyers:
    """Long strategies on every symbol that buy the dip: weight 0.6, plus 3x the fall from the symbol's
    running high, up to 0.95, in steps of 0.05 (each step is a new signal, so the router is asked to add
    risk while the market falls)."""

    name = "all_long_dip_buyers"

    def target_weights(self, panel) -> np.ndarray:
        close = np.asarray(panel.close, dtype=float)
        fall = 1.0 - close / np.fmax.accumulate(close, axis=0)
        return np.round(np.clip(0.6 + 3.0 * np.nan_to_num(fall), 0.6, 0.95) / 0.05) * 0.05

    def target_positions(self, bars: pd.DataFrame) -> pd.DataFrame:
        raise NotImplementedError("DipBuyers trades prepared panels (target_weights)")


class Rebalancer:
    """Long every symbol and re-weighted every 5 bars (0.3 or 0.5 in turn), so each symbol sends an
    order every 5 minutes: the symbols out of step (``stagger``), or all at the same close."""

    name = "rebalancer"

    def __init__(self, stagger: bool = True) -> None:
        self.stagger = stagger

    def target_weights(self, panel) -> np.ndarray:
        n_bars, n_symbols = np.asarray(panel.close).shape
        phase = np.arange(n_bars)[:, None] // 5 + np.arange(n_symbols)[None, :] * int(self.stagger)
        return 0.3 + 0.2 * (phase % 2)

    def target_positions(self, bars: pd.DataFrame) -> pd.DataFrame:
        raise NotImplementedError("Rebalancer trades prepared panels (target_weights)")


def prober(bars: pd.DataFrame, down_from_s: float, down_until_s: float) -> pd.DataFrame:
    """A health prober's answers every :data:`PROBE_S` over the bars' span: failed in [down_from,
    down_until) on the drill's clock, the exchange fault's window."""
    end = seconds(bars["ts"].max()) + BAR_S
    t = np.arange(0.0, end + PROBE_S / 2, PROBE_S)
    ok = ~((t >= down_from_s) & (t < down_until_s))
    return pd.DataFrame({"ts": START + pd.to_timedelta(t, unit="s"), "target": "exchange_api", "ok": ok,
                         "latency_ms": np.where(ok, 1.0, np.nan),
                         "error": np.where(ok, "", "exchange_api: timed out")})  # fmt: skip


class PaperRun(Observed):
    """A finished paper run as the monitors see it (``observe.detect`` reads ``observation``)."""

    def __init__(self, run: Observation) -> None:
        super().__init__()
        self.run = run

    def observation(self, as_of_s: float) -> Observation:
        return self.run


def drill_bars(seed: int, days: int = 1) -> pd.DataFrame:
    """Synthetic 1-minute bars of :data:`SYMBOLS` from the drills' epoch."""
    return generate_bars(SYMBOLS, start=pd.Timestamp(EPOCH), days=days, seed=seed)


def seconds(ts: pd.Timestamp) -> float:
    """A run timestamp on the drill's clock (seconds since the epoch)."""
    return (pd.Timestamp(ts) - START).total_seconds()


def sends_of(events: pd.DataFrame, backoff_base_s: float) -> pd.DataFrame:
    """Every send attempt of the log (``order`` events): order id, attempt, time on the drill's clock,
    whether the venue took it (a refused send has its ``reject`` at the same attempt) and, for a retry,
    its wait over the one required, max(Retry-After, ``backoff_base_s`` x 2**n) of the refusal before."""
    orders = events[events["kind"] == "order"]
    rejects = events[events["kind"] == "reject"]
    refused = [json.loads(d) for d in rejects["details"]]
    refusals = pd.DataFrame({"order_id": rejects["order_id"].to_numpy(), "attempt": [d["attempt"] for d in refused],
                             "retry_after_s": [d["retry_after_s"] or 0.0 for d in refused]})  # fmt: skip
    sends = pd.DataFrame({"order_id": orders["order_id"].to_numpy(),
                          "attempt": [json.loads(d)["attempt"] for d in orders["details"]],
                          "t_s": orders["ts"].map(seconds).to_numpy()})  # fmt: skip
    sends = sends.merge(refusals, on=["order_id", "attempt"], how="left")
    sends["accepted"] = sends["retry_after_s"].isna()
    previous = sends.groupby("order_id")[["t_s", "retry_after_s", "attempt"]].shift()
    required = np.maximum(previous["retry_after_s"].to_numpy(dtype=float),
                          backoff_base_s * 2.0 ** previous["attempt"].to_numpy(dtype=float))  # fmt: skip
    sends["waited_ratio"] = (sends["t_s"] - previous["t_s"]).to_numpy(dtype=float) / required
    return sends


def ess_transitions(events: pd.DataFrame) -> pd.DataFrame:
    """The ESS transitions of an event log: ts, from_state, to_state, reason, drawdown."""
    rows = events[events["kind"] == "ess_transition"]
    details = [json.loads(d) for d in rows["details"]]
    return pd.DataFrame({"ts": rows["ts"].to_numpy(), "from_state": [d["from"] for d in details],
                         "to_state": [d["to"] for d in details], "reason": rows["reason"].astype(str).to_numpy(),
                         "drawdown": [float(d["drawdown"]) for d in details]})  # fmt: skip


def equity_marks(result: SimResult) -> pd.DataFrame:
    """Each bar's equity mark at its close (ts) with its drawdown from the running peak (the curve's own)."""
    curve = result.equity
    return pd.DataFrame({"ts": pd.DatetimeIndex(curve.index) + pd.Timedelta(seconds=BAR_S),
                         "equity": curve["equity"].to_numpy(dtype=float),
                         "drawdown": curve["drawdown"].to_numpy(dtype=float)})  # fmt: skip


def armed_at(times: pd.Series, ess: pd.DataFrame) -> np.ndarray:
    """Whether the ESS is ARMED after each of ``times`` (the last transition at or before it)."""
    if not len(ess):
        return np.ones(len(times), dtype=bool)
    stamps = pd.DatetimeIndex(ess["ts"]).as_unit("ns").asi8
    at = np.searchsorted(stamps, pd.DatetimeIndex(times).as_unit("ns").asi8, side="right") - 1
    states = np.array(["ARMED", *ess["to_state"]], dtype=object)
    return states[at + 1] == "ARMED"


def risk_adding(events: pd.DataFrame, begin: pd.Timestamp | None, end: pd.Timestamp | None) -> tuple[int, int]:
    """Signals that raise a symbol's exposure, and fills that do, in [begin, end) (end None: the run's
    end): (signals, fills). A fill adds risk when it moves the symbol's position away from zero."""
    if begin is None:
        return 0, 0
    end = end if end is not None else events["ts"].max() + pd.Timedelta(seconds=1)
    inside = (events["ts"] >= begin) & (events["ts"] < end)
    signals = events[inside & (events["kind"] == "signal")]
    previous = np.array([json.loads(d)["previous_weight"] for d in signals["details"]], dtype=float)
    adding_signals = int((np.abs(signals["qty"].to_numpy(dtype=float)) > np.abs(previous)).sum())
    fills = events[events["kind"] == "fill"]
    position = fills.groupby("symbol")["qty"].cumsum().to_numpy(dtype=float)
    before = position - fills["qty"].to_numpy(dtype=float)
    grows = np.abs(position) > np.abs(before) + 1e-12
    fill_inside = ((fills["ts"] >= begin) & (fills["ts"] < end)).to_numpy()
    return adding_signals, int((grows & fill_inside).sum())
