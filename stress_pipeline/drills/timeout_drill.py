"""Execution timeout drill (seed 002 test 2, "Execution timeout"): orders that the venue takes but
does not answer in time, through the paper engine.

The engine's ``latency_spike`` fault multiplies the order latency by ``SPIKE_MULT`` for ten minutes
(the default policy's 50 ms median becomes about 50 s, capped at the policy's 60 s), while a
rebalancing strategy sends market orders, each symbol every 5 minutes out of step with the others.
An order sent in the spike is taken by the venue and filled only when it arrives, so the system sees
no execution report for tens of seconds. The ``execution_timeout`` monitor reads the run's event log
(an order, then nothing for ``MonitorConfig.execution_timeout_s``) and its detections are the
drill's alerts; the drill never tells the monitor which orders it slowed down.

Criteria, judged from the log and the monitor's detections: every order whose first execution report
came later than the timeout was detected and alerted (the log's answer times against the monitor's
detections), within 30 s of the order (seed 002 test 2: alerts in under 30 s); no order answered in
time was alerted; every order was answered by the end of the run (none lost at the venue); the
positions equal the log's fills; and every order sent after the spike is answered within the timeout
again. No decider is involved (the
delay is the venue's), so a user's decider changes nothing here.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from stress_pipeline.drills.core import DrillRecord, DrillResult, SimClock, alert_queue
from stress_pipeline.drills.observe import START, detect
from stress_pipeline.drills.paper_drills import PaperRun, Rebalancer, drill_bars, seconds
from stress_pipeline.drills.risk_drills import DrillEnv
from stress_pipeline.monitoring.monitors import MonitorConfig
from stress_pipeline.monitoring.observation import observation_from_run
from stress_pipeline.simulation.config import SimConfig
from stress_pipeline.simulation.paper import run_paper
from stress_pipeline.trading.risk.policy import TradingPolicy

SPIKE = {"at_s": 36_000.0, "duration_s": 600.0}  # 10:00 to 10:10 of the drill's day
SPIKE_MULT = 1_000.0  # the policy's latency times this: tens of seconds
ALERT_WITHIN_S = 30.0  # seed 002 test 2: every alert in under 30 s
ANSWERS = ("fill", "reject", "cancel", "execution_failure")


def execution_timeout_drill(env: DrillEnv, *, mult: float = SPIKE_MULT, policy: TradingPolicy | None = None,
                            config: MonitorConfig | None = None) -> DrillResult:  # fmt: skip
    """Orders unanswered for longer than the timeout during a latency spike at the venue: each one
    detected and alerted within 30 s, none answered in time alerted, none lost, trading normal after."""
    config = config or MonitorConfig()
    clock = SimClock()
    record = DrillRecord("execution_timeout", clock.now, alert_queue(env.alerts_dir))
    try:
        bars = drill_bars(env.seed)
        faults = [{"kind": "latency_spike", **SPIKE, "params": {"mult": mult}}]
        result = run_paper(bars, Rebalancer(), SimConfig(seed=env.seed), policy=policy, faults=faults,
                           scenario_name="execution timeout drill")  # fmt: skip
        events = result.events
        spike_end = SPIKE["at_s"] + SPIKE["duration_s"]
        record.mark("fault", f"venue latency x{mult:g} for {SPIKE['duration_s'] / 60:g} min", SPIKE["at_s"])
        observed = PaperRun(observation_from_run(events, result.equity, bars))
        found = detect(observed, seconds(observed.run.as_of), ["execution_timeout"], config, record,
                       "paper/execution_timeout")  # fmt: skip
        answers = answer_times(events)
        late = answers[~(answers["answer_s"] <= config.execution_timeout_s)]  # NaN (never answered) is late
        alerted = _keys(found["subject"], found["evidence_at"].map(lambda ts: (ts - START).total_seconds()))
        caught = np.isin(_keys(late["symbol"], late["sent_s"]), alerted)
        record.check("late orders detected and alerted (share)", float(caught.mean()) if len(late) else None, "==",
                     1.0, f"{len(late)} orders answered after {config.execution_timeout_s:g} s, "
                     f"{int(caught.sum())} detected")  # fmt: skip
        delay = (pd.DatetimeIndex(found["detected_at"]) - pd.DatetimeIndex(found["evidence_at"])).total_seconds()
        record.check("alert delay after the order (s, max)", float(delay.max()) if len(found) else None, "<",
                     ALERT_WITHIN_S, "execution_timeout monitor on the run's event log")  # fmt: skip
        in_time = answers[answers["answer_s"] <= config.execution_timeout_s]
        wrong = np.isin(alerted, _keys(in_time["symbol"], in_time["sent_s"]))
        record.check("orders answered in time but alerted", float(wrong.sum()), "==", 0.0,
                     f"{len(in_time)} orders answered within {config.execution_timeout_s:g} s")  # fmt: skip
        record.check("orders never answered", float(answers["answer_s"].isna().sum()), "==", 0.0,
                     f"{len(answers)} orders sent")  # fmt: skip
        fills = events[events["kind"] == "fill"]
        held = result.details["positions"].iloc[-1]
        booked = fills.groupby("symbol")["qty"].sum().reindex(held.index, fill_value=0.0)
        record.check("positions equal the log's fills (max difference)", float((held - booked).abs().max()), "<=",
                     1e-9, ", ".join(f"{s} {q:.6g}" for s, q in held.items()))  # fmt: skip
        after = answers[answers["sent_s"] >= spike_end]
        record.check("answer time after the spike (s, max)", float(after["answer_s"].max()) if len(after) else None,
                     "<=", config.execution_timeout_s, f"{len(after)} orders after the spike")  # fmt: skip
        normal = after[after["answer_s"] <= config.execution_timeout_s]
        if len(normal):
            back = float(normal["sent_s"].iloc[0] + normal["answer_s"].iloc[0])
            record.mark("recovery", "orders answered within the timeout again", back)
        record.mark("end", "drill over", seconds(observed.run.as_of))
        return record.result()
    finally:
        record.close()


def answer_times(events: pd.DataFrame) -> pd.DataFrame:
    """Every order of the log (first send): ``sent_s`` on the drill's clock and ``answer_s``, the
    seconds to its first fill, reject, cancel or execution failure (NaN: never answered)."""
    orders = events[events["kind"] == "order"].drop_duplicates("order_id", keep="first")
    answered = events[events["kind"].isin(ANSWERS)].groupby("order_id")["ts"].min()
    first = orders["order_id"].map(answered)
    return pd.DataFrame({"order_id": orders["order_id"].to_numpy(), "symbol": orders["symbol"].astype(str).to_numpy(),
                         "sent_s": orders["ts"].map(seconds).to_numpy(),
                         "answer_s": (first - orders["ts"]).dt.total_seconds().to_numpy()})  # fmt: skip


def _keys(symbols: pd.Series, sent_s: pd.Series) -> np.ndarray:
    """An order's identity as the monitor reports it: its symbol and send time."""
    return (symbols.astype(str) + "@" + pd.Series(sent_s).round(6).astype(str).to_numpy()).to_numpy()
