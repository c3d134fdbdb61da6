"""Drills of the risk stack with its state in Redis: ESS trip and operator reset, correlation cascade.

Both run on a :class:`~stress_pipeline.drills.core.SimClock` (minutes of market in milliseconds): the
prices move, every open position is marked, the equity goes to the hot state and to the live safety
governor (``drills/ess.py``), and every order goes through the system's decider, exactly as a live
system would send it.

The decider every drill calls is :func:`system_decider`: the user's decision function or risk governor
when ``DrillEnv.decider`` names one ("package.module:callable", built afresh for each drill), else
the default decider, the risk stack over the drill's state in Redis (``state/risk_decisions.py``).

Why not through the paper engine: the ESS reset is an operator's command (a real ``stress-pipeline drills
reset-ess`` process against the run's state in Redis), which the engine's scheduled reset does not
exercise. The correlation cascade of the registry runs through the paper engine
(``paper_drills.py``); the live-book cascade here is the one a user's decider is judged by, since the
compiled engine cannot call it.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from stress_pipeline.drills.core import DrillRecord, DrillResult, SimClock, alert_queue
from stress_pipeline.drills.ess import LiveGovernor
from stress_pipeline.drills.observe import Observed, at, detect
from stress_pipeline.monitoring.monitors import MonitorConfig
from stress_pipeline.services import redis_client
from stress_pipeline.state.risk_decisions import RiskDecisionState, RiskStackDecider
from stress_pipeline.trading.risk.decision import (
    BUY,
    SELL,
    CheckedDecider,
    Decision,
    DecisionRequest,
    as_decider,
    load_decider,
)
from stress_pipeline.trading.risk.policy import RiskPolicy, SafetyConfig
from stress_pipeline.trading.risk.stack import compile_stack

EQUITY = 100_000.0


@dataclass(frozen=True)
class DrillEnv:
    """Where a drill runs: the Redis of the live state, the alert queue's folder (None: alerts are only
    recorded), the operator's command line (``stress-pipeline`` as a list), a seed, and for the drills
    that deliver alerts over HTTP the PostgreSQL of the alert receiver. ``decider``: the system's
    decision function or risk governor, "package.module:callable"; empty: the risk stack in Redis."""

    redis_url: str
    alerts_dir: str | None = None
    operator_cli: Sequence[str] = ()
    seed: int = 0
    namespace: str = "stress-drills"
    repeats: int = 3  # drills that judge a mean over repeats (broker failure)
    postgres_url: str | None = None  # the alert receiver's database (network loss)
    alerts_schema: str = "stress_drill_alerts"  # where the receiver records the drills' alerts
    decider: str = ""


def system_decider(env: DrillEnv, state: RiskDecisionState, policy: RiskPolicy | None = None) -> CheckedDecider:
    """The decider the drill's orders go to: the user's at ``env.decider``, built for this drill (a bad
    path is a :class:`~stress_pipeline.trading.risk.decision.DecisionSpecError` naming it), else the
    risk stack with ``policy`` over ``state`` (compiled now, so the first order is not the one that
    waits for it)."""
    if env.decider:
        return load_decider(env.decider)
    compile_stack()
    return as_decider(RiskStackDecider(state, policy), name=RiskStackDecider.name)


def check_book(record: DrillRecord, decider: CheckedDecider, symbol: str, expected: float, criterion: str,
               what: str = "venue") -> None:  # fmt: skip
    """Judge the decider's approved position in ``symbol`` against ``expected`` (the ``what``'s); not
    exercised, naming the decider, when it keeps no book it can show (no ``positions()``)."""
    book = decider.positions()
    if book is None:
        record.check(criterion, None, "<=", 1e-12, f"decider {decider.name!r} has no positions(): no book to compare")
        return
    held = book.get(symbol, 0.0)
    record.check(criterion, abs(held - expected), "<=", 1e-12, f"book {held}, {what} {expected}")


class Book:
    """The trading system of a drill: cash, positions and prices, orders through the decider."""

    def __init__(self, decider: CheckedDecider, clock: SimClock, prices: dict[str, float]) -> None:
        self.decider = decider
        self.clock = clock
        self.prices = dict(prices)
        self.cash = EQUITY
        self.positions = dict.fromkeys(prices, 0.0)
        self.sent = 0
        self.observed = Observed()  # what the system exposes to the monitors

    @property
    def equity(self) -> float:
        return self.cash + sum(q * self.prices[s] for s, q in self.positions.items())

    @property
    def flat(self) -> bool:
        return all(abs(q) < 1e-12 for q in self.positions.values())

    def order(self, symbol: str, signed_qty: float) -> Decision:
        """Ask the decider; fill what it approves at the current price."""
        self.sent += 1
        side = BUY if signed_qty > 0 else SELL
        request = DecisionRequest(symbol, side, abs(signed_qty), self.prices[symbol], round(self.clock.now() * 1e9),
                                  self.sent)  # fmt: skip
        decision = self.decider.decide(request)
        if decision.allowed:
            fill = decision.qty if side == BUY else -decision.qty
            self.positions[symbol] += fill
            self.cash -= fill * self.prices[symbol]
        return decision


def _setup(env: DrillEnv, name: str, policy: RiskPolicy, prices: dict[str, float], clock: SimClock):
    client = redis_client(env.redis_url)
    run_id = f"{name}-{uuid.uuid4().hex[:10]}"
    state = RiskDecisionState(client, run_id, namespace=env.namespace)
    try:
        state.init(EQUITY)
        book = Book(system_decider(env, state, policy), clock, prices)
    except Exception:  # a decider that does not load: nothing of the drill is left behind
        state.clear()
        client.close()
        raise
    governor = LiveGovernor(state.hot, policy.safety, EQUITY, clock.now)
    record = DrillRecord(name, clock.now, alert_queue(env.alerts_dir))
    return client, run_id, state, book, governor, record


def _mark(book: Book, state: RiskDecisionState, governor: LiveGovernor, record: DrillRecord) -> list:
    """Mark the equity (hot state, governor, and what the monitors see); ESS transitions are events."""
    state.set_equity(book.equity)
    now = book.clock.now()
    book.observed.equity.append({"ts": at(now), "equity": book.equity})
    taken = governor.mark(book.equity, flat=book.flat)
    for t in taken:
        record.mark("action", f"ESS {t.from_state} -> {t.to_state} ({t.reason}, drawdown {t.drawdown:.1%})")
        book.observed.event(now, "ess_transition", None, None, 0.0, float("nan"), t.reason,
                            **{"from": t.from_state, "to": t.to_state})  # fmt: skip
    return taken


def _flatten(book: Book) -> None:
    for symbol, qty in book.positions.items():
        if abs(qty) > 1e-12:
            book.order(symbol, -qty)


def ess_reset_drill(env: DrillEnv) -> DrillResult:
    """ESS trip and manual reset (seed 004): trips above its drawdown threshold, orders blocked,
    cooldown enforced (a reset before it ends is refused), the operator's CLI reset returns it to
    ARMED, orders allowed again."""
    clock = SimClock()
    safety = SafetyConfig(trip_drawdown=0.10, cooldown_s=300.0, halt_drawdown=0.30, operator_reset_delay_s=None)
    policy = RiskPolicy(safety=safety)
    client, run_id, state, book, governor, record = _setup(env, "ess_reset", policy, {"BTCUSDT": 50_000.0}, clock)
    try:
        book.order("BTCUSDT", 1.6)  # 80,000 of BTC
        record.mark("fault", "BTCUSDT falls 1.5% every 10 s")
        tripped = None
        while tripped is None and clock.now() < 600:
            clock.sleep(10.0)
            book.prices["BTCUSDT"] *= 0.985
            tripped = next((t for t in _mark(book, state, governor, record) if t.to_state == "TRIPPED"), None)
        record.check("trip drawdown", tripped.drawdown if tripped else None, ">", safety.trip_drawdown,
                     "drawdown from the peak when the ESS tripped")  # fmt: skip
        if tripped:
            detect(book.observed, clock.now(), ["ess_tripped"], MonitorConfig(), record, run_id)
        blocked = book.order("BTCUSDT", 0.1)
        record.check("risk-adding order blocked while tripped", float(not blocked.allowed), "==", 1.0, blocked.reason)
        _flatten(book)
        record.mark("action", "positions flattened at market")
        clock.sleep(1.0)
        _mark(book, state, governor, record)
        early = _operator_reset(env, run_id)
        record.mark("action", f"operator reset during the cooldown: exit {early.returncode}")
        record.check("reset refused during the cooldown", float(early.returncode != 0), "==", 1.0,
                     (early.stderr or early.stdout).strip()[-200:])  # fmt: skip
        clock.sleep(safety.cooldown_s)
        _mark(book, state, governor, record)
        waiting = book.order("BTCUSDT", 0.1)
        record.check("orders blocked until the reset", float(not waiting.allowed), "==", 1.0,
                     f"state {governor.state}, decision {waiting.reason}")  # fmt: skip
        reset = _operator_reset(env, run_id)
        record.mark("action", f"operator reset: exit {reset.returncode}")
        clock.sleep(1.0)
        _mark(book, state, governor, record)
        armed = state.hot.snapshot().ess_state
        record.check("ARMED after the operator reset", float(armed == "ARMED" and governor.state == "ARMED"), "==",
                     1.0, f"Redis {armed}, governor {governor.state}")  # fmt: skip
        cooldown = [t for t in governor.transitions if t.to_state == "COOLDOWN"]
        awaiting = [t for t in governor.transitions if t.to_state == "AWAITING_RESET"]
        record.check("cooldown enforced (s)", awaiting[0].t_s - cooldown[0].t_s if cooldown and awaiting else None,
                     ">=", safety.cooldown_s)  # fmt: skip
        after = book.order("BTCUSDT", 0.1)
        if after.allowed:
            record.mark("recovery", "orders allowed again")
        record.check("order allowed after the reset", float(after.allowed), "==", 1.0, after.reason)
        record.mark("end", "drill over")
        return record.result()
    finally:
        record.close()
        state.close()
        state.clear()
        client.close()


def _operator_reset(env: DrillEnv, run_id: str) -> subprocess.CompletedProcess:
    if not env.operator_cli:
        raise ValueError("ess_reset drill: no operator command line configured (DrillEnv.operator_cli)")
    command = [*env.operator_cli, "drills", "reset-ess", run_id, "--namespace", env.namespace,
               "--redis-url", env.redis_url]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def correlation_cascade_drill(env: DrillEnv) -> DrillResult:
    """Correlation cascade (seed 002): every strategy long, the whole market falls together; the
    portfolio drawdown beyond 15% halts new trades until reset, and the loss stays below 20%."""
    clock = SimClock()
    safety = SafetyConfig(trip_drawdown=0.15, cooldown_s=300.0, halt_drawdown=0.30, operator_reset_delay_s=None)
    policy = RiskPolicy(safety=safety)
    symbols = {"BTCUSDT": 50_000.0, "ETHUSDT": 3_000.0, "SOLUSDT": 150.0, "BNBUSDT": 600.0, "XRPUSDT": 0.6}
    client, run_id, state, book, governor, record = _setup(env, "correlation_cascade", policy, symbols, clock)
    rng = np.random.default_rng(env.seed)
    try:
        for symbol, price in symbols.items():
            book.order(symbol, 18_000.0 / price)  # five strategies, all long: 90% of equity
        record.mark("fault", "the market falls together: about -1% every 10 s on every symbol")
        returns: list[list[float]] = []
        tripped = None
        mean_corr = None
        drawdown_seen = None
        buys_after_trip = allowed_after_trip = 0
        while clock.now() < 600:
            clock.sleep(10.0)
            common = rng.normal(-0.01, 0.004)
            step = [common + rng.normal(0, 0.001) for _ in symbols]
            returns.append(step)
            for symbol, r in zip(symbols, step, strict=True):
                book.prices[symbol] *= 1.0 + r
            taken = _mark(book, state, governor, record)
            if tripped is None:
                tripped = next((t for t in taken if t.to_state in ("TRIPPED", "HALTED")), None)
                if tripped:
                    corr = np.corrcoef(np.array(returns).T)
                    mean_corr = float(corr[np.triu_indices(len(symbols), 1)].mean())
                    found = detect(book.observed, clock.now(), ["balance_anomaly", "drawdown_exceeded", "ess_tripped"],
                                   MonitorConfig(drawdown_limit=safety.trip_drawdown), record, run_id)  # fmt: skip
                    drawdown_seen = found[found["failure_mode"] == "drawdown_exceeded"]
                    _flatten(book)
                    record.mark("action", "positions flattened at market")
                    continue
            for symbol in symbols:  # the strategies keep buying the dip
                decision = book.order(symbol, 1_000.0 / book.prices[symbol])
                if tripped is not None:
                    buys_after_trip += 1
                    allowed_after_trip += int(decision.allowed)
            if tripped is not None and book.flat and clock.now() - tripped.t_s >= 120:
                break
        record.check("halt at drawdown > 15%", tripped.drawdown if tripped else None, ">", safety.trip_drawdown,
                     f"tripped at {tripped.t_s:.0f} s" if tripped else "never tripped")  # fmt: skip
        record.check("drawdown detected by the monitors at the halt (s after)",
                     None if drawdown_seen is None or not len(drawdown_seen) else
                     (drawdown_seen["detected_at"].iloc[0] - at(tripped.t_s)).total_seconds(), "<=", 0.0)  # fmt: skip
        record.check("mean pairwise correlation at the halt", mean_corr, ">", 0.8, "returns of the five symbols")
        record.check("new trades after the halt", float(allowed_after_trip) if buys_after_trip else None, "==", 0.0,
                     f"{buys_after_trip} buy orders sent after the halt")  # fmt: skip
        loss = 1.0 - book.equity / EQUITY
        record.check("loss contained", loss, "<", 0.20, f"equity {book.equity:,.0f} of {EQUITY:,.0f}")
        record.check("still halted (until reset)", float(state.hot.snapshot().ess_state != "ARMED"), "==", 1.0,
                     state.hot.snapshot().ess_state)  # fmt: skip
        record.mark("end", "drill over")
        return record.result()
    finally:
        record.close()
        state.close()
        state.clear()
        client.close()
