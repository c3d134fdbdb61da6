"""Drills at the venue: a 15-minute exchange API outage, and a position stuck behind an unfilled exit.

Both run on a :class:`~stress_pipeline.drills.core.SimClock`, the orders through the system's decider
(``risk_drills.system_decider``: the user's, else the risk stack with its state in Redis), and the
failure is detected by the monitors (``monitoring/monitors.py``) from what the trading system exposes
(health probes, orders, fills, rejects, cancels), evaluated every 10 s as a live watcher would.

The exchange session these drills exercise is the reference trading system's (seed 002): it sends
nothing while the monitors say the API is down, tries to reconnect every 60 s, and resumes once a
reconnect succeeds; an exit limit order found stuck is cancelled and replaced at market, and a market
order that fails too raises a manual-intervention alert and is tried again.

Why not through the paper engine: the stuck position needs an exit that the book never fills, and
the engine's fills always find part of the bar's volume. The exchange outage of the registry runs
through the paper engine (``paper_drills.py``, with the engine's own exchange session); the live-book
outage here is the one a user's decider is judged by, since the compiled engine cannot call it.
"""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass, field

from stress_pipeline.drills.core import DrillRecord, DrillResult, SimClock, alert_queue
from stress_pipeline.drills.observe import START, Observed, detect
from stress_pipeline.drills.risk_drills import EQUITY, DrillEnv, check_book, system_decider
from stress_pipeline.monitoring.monitors import MonitorConfig
from stress_pipeline.services import redis_client
from stress_pipeline.state.risk_decisions import RiskDecisionState
from stress_pipeline.trading.risk.decision import BUY, SELL, CheckedDecider, DecisionRequest

TICK_S = 10.0
RECONNECT_S = 60.0


@dataclass
class Venue:
    """The simulated exchange: down in [down_from, down_until), positions from its fills."""

    down_from: float = math.inf
    down_until: float = math.inf
    position: float = 0.0
    fills: list[tuple[float, float, float]] = field(default_factory=list)

    def up(self, t_s: float) -> bool:
        return not (self.down_from <= t_s < self.down_until)

    def fill(self, t_s: float, qty: float, price: float) -> None:
        self.position += qty
        self.fills.append((t_s, qty, price))


def _decide(decider: CheckedDecider, symbol: str, qty: float, price: float, t_s: float, oid: int):
    side = BUY if qty > 0 else SELL
    return decider.decide(DecisionRequest(symbol, side, abs(qty), price, round(t_s * 1e9), oid))


def exchange_outage_drill(env: DrillEnv, *, outage_s: float = 900.0) -> DrillResult:
    """Exchange API outage, 15 minutes (seed 002): detected < 60 s, no order attempted while down,
    a reconnect tried every 60 s, trading resumes after, and no corrupt state (the decider's book in
    Redis equals the venue's position)."""
    clock = SimClock()
    client = redis_client(env.redis_url)
    state = RiskDecisionState(client, f"exchange_outage-{time.time_ns()}", namespace=env.namespace)
    record = DrillRecord("exchange_outage", clock.now, alert_queue(env.alerts_dir))
    observed = Observed()
    venue = Venue(down_from=120.0, down_until=120.0 + outage_s)
    end_s = venue.down_until + 300.0
    try:
        state.init(EQUITY)
        decider = system_decider(env, state)
        record.mark("fault", f"exchange API unreachable for {outage_s / 60:g} min", venue.down_from)
        session_up, detected_at, last_try = True, math.nan, -math.inf
        reconnects: list[float] = []
        attempted_while_down = 0
        resumed_at = math.nan
        oid = 0
        config = MonitorConfig()
        t = 0.0
        while t <= end_s:
            clock.advance_to(t)
            if session_up:
                observed.probe(t, "exchange_api", venue.up(t), "" if venue.up(t) else "exchange_api: timed out")
                if t % 30.0 == 0.0:  # the strategy trades every 30 s
                    oid += 1
                    qty = 0.01  # a strategy building a position
                    if not math.isnan(detected_at) and not venue.up(t):
                        attempted_while_down += 1
                    decision = _decide(decider, "BTCUSDT", qty, 50_000.0, t, oid)
                    if decision.allowed:
                        observed.event(t, "order", "BTCUSDT", oid, qty, math.nan)
                        if venue.up(t):
                            venue.fill(t + 0.05, qty, 50_000.0)
                            observed.event(t + 0.05, "fill", "BTCUSDT", oid, qty, 50_000.0)
                            if math.isnan(resumed_at) and t >= venue.down_until:
                                resumed_at = t
                                record.mark("recovery", "orders fill again", t)
                        else:
                            observed.event(t + 0.05, "reject", "BTCUSDT", oid, qty, math.nan, "EXCHANGE_OUTAGE",
                                           will_retry=False)  # fmt: skip
                            decider.release("BTCUSDT", qty)
                found = detect(observed, t, ["api_down"], config, record, state.hot.keys.prefix) \
                    if math.isnan(detected_at) else []  # fmt: skip
                if len(found):
                    detected_at = (found["detected_at"].iloc[0] - START).total_seconds()
                    session_up = False
                    record.mark("action", "session down: no orders until a reconnect succeeds", t)
            elif t - last_try >= RECONNECT_S or not reconnects:
                last_try = t
                reconnects.append(t)
                ok = venue.up(t)
                observed.probe(t, "exchange_api", ok, "" if ok else "exchange_api: reconnect failed")
                record.mark("action", f"reconnect {'succeeded' if ok else 'failed'}", t)
                session_up = ok
            t += TICK_S
        record.check("detection delay (s)", detected_at - venue.down_from, "<", 60.0, "api_down monitor")
        record.check("orders attempted after detection while down", float(attempted_while_down)
                     if not math.isnan(detected_at) else None, "==", 0.0)  # fmt: skip
        gaps = [b - a for a, b in itertools.pairwise(reconnects)]
        record.check("reconnect interval (s, max deviation from 60)", max(abs(g - RECONNECT_S) for g in gaps)
                     if gaps else None, "<=", TICK_S, f"{len(reconnects)} reconnect attempts")  # fmt: skip
        record.check("recovery_s", resumed_at - venue.down_until, "<=", RECONNECT_S + TICK_S,
                     "API back to the first fill")  # fmt: skip
        check_book(record, decider, "BTCUSDT", venue.position, "decider book equals the venue position")
        record.mark("end", "drill over", end_s)
        return record.result()
    finally:
        record.close()
        state.close()
        state.clear()
        client.close()


def stuck_position_drill(env: DrillEnv, *, stuck_after_s: float = 240.0) -> DrillResult:
    """Stuck position (seed 002): an exit limit order that the thin book never fills is detected
    < 5 min after it was sent, replaced at market; the first market order fails too (no liquidity),
    which raises a manual-intervention alert; the next one closes the position."""
    clock = SimClock()
    client = redis_client(env.redis_url)
    state = RiskDecisionState(client, f"stuck_position-{time.time_ns()}", namespace=env.namespace)
    record = DrillRecord("stuck_position", clock.now, alert_queue(env.alerts_dir))
    observed = Observed()
    venue = Venue()
    config = MonitorConfig(stuck_after_s=stuck_after_s)
    try:
        state.init(EQUITY)
        decider = system_decider(env, state)
        _decide(decider, "BTCUSDT", 1.0, 50_000.0, 0.0, 1)
        observed.event(0.0, "order", "BTCUSDT", 1, 1.0, 50_000.0)
        venue.fill(0.1, 1.0, 50_000.0)
        observed.event(0.1, "fill", "BTCUSDT", 1, 1.0, 50_000.0)
        exit_at = 60.0
        clock.advance_to(exit_at)
        _decide(decider, "BTCUSDT", -1.0, 50_500.0, exit_at, 2)
        observed.event(exit_at, "order", "BTCUSDT", 2, -1.0, 50_500.0, tif="GTC")
        record.mark("fault", "exit limit order at 50,500 on a thin book: never filled", exit_at)
        detected_at = closed_at = math.nan
        market_orders = failures = 0
        oid = 2
        t = exit_at
        while t <= 1_200.0 and math.isnan(closed_at):
            t += TICK_S
            clock.advance_to(t)
            if math.isnan(detected_at):
                found = detect(observed, t, ["stuck_position"], config, record, state.hot.keys.prefix)
                if len(found):
                    detected_at = (found["detected_at"].iloc[0] - START).total_seconds()
                    observed.event(t, "cancel", "BTCUSDT", 2, -1.0, 50_500.0, "STUCK_EXIT")
                    decider.release("BTCUSDT", -1.0)  # the limit order is off the book
                    record.mark("action", "limit exit cancelled, market fallback", t)
                else:
                    continue
            oid += 1
            market_orders += 1
            decision = _decide(decider, "BTCUSDT", -venue.position, 49_900.0, t, oid)
            observed.event(t, "order", "BTCUSDT", oid, -decision.qty, math.nan, tif="IOC")
            if market_orders == 1:  # the book is empty on this side: the market order fails too
                observed.event(t + 0.1, "reject", "BTCUSDT", oid, -decision.qty, math.nan, "NO_LIQUIDITY",
                               will_retry=False)  # fmt: skip
                decider.release("BTCUSDT", -decision.qty)
                failures += len(detect(observed, t + 0.1, ["order_placement_failed"], config, record,
                                       state.hot.keys.prefix))  # fmt: skip
                if failures:  # the monitors saw the fallback fail: a person has to look at it
                    record.alert("manual_intervention", f"{state.hot.keys.prefix}/BTCUSDT",
                                 "stuck position: limit exit and market fallback both failed", moment=clock.moment())
                continue
            venue.fill(t + 0.1, -decision.qty, 49_900.0)
            observed.event(t + 0.1, "fill", "BTCUSDT", oid, -decision.qty, 49_900.0)
            closed_at = t + 0.1
            record.mark("recovery", "position closed at market", closed_at)
        record.check("detection delay (s)", detected_at - exit_at, "<", 300.0, "stuck_position monitor")
        record.check("market fallback orders", float(market_orders) if not math.isnan(detected_at) else None, ">=",
                     1.0)  # fmt: skip
        record.check("failed fallback detected", float(failures), "==", 1.0, "order_placement_failed monitor")
        record.check("manual-intervention alert", float(sum("manual_intervention" in a for a in record.raised)), "==",
                     1.0)  # fmt: skip
        record.check("position closed", abs(venue.position) if not math.isnan(closed_at) else None, "<=", 1e-12)
        record.check("recovery_s", closed_at - exit_at, "<=", 600.0, "exit sent to position closed")
        check_book(record, decider, "BTCUSDT", venue.position, "decider book equals the venue position")
        record.mark("end", "drill over", max(t, closed_at) if not math.isnan(closed_at) else t)
        return record.result()
    finally:
        record.close()
        state.close()
        state.clear()
        client.close()
