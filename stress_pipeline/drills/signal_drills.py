"""Drills of the strategy signal path and of execution quality: webhook signal lost, high slippage.

Both run on a :class:`~stress_pipeline.drills.core.SimClock` with the system's decider (by default the
risk stack, state in Redis). What the system exposes (webhooks, orders, fills, flags) is recorded as the monitors'
observation (``drills/observe.py``), and the monitors of ``monitoring/monitors.py`` detect the failure
from it; their detections are the drill's detection times and alerts.

* ``webhook_lost``: a strategy's webhook every 60 s; one never arrives, one arrives twice, one
  arrives malformed. The intake takes each signal id once (SET NX in Redis), so a duplicate opens
  nothing; a malformed one fails to process and opens nothing.
* ``high_slippage``: two round trips; one entry fills 1% worse than expected. Per-fill slippage is
  recorded, the strategy's PnL recomputed on the real fills, and when that is no longer profitable the
  strategy is disabled (the run's kill switch: this run trades one strategy).

Why not through the paper engine: a webhook is no market or venue event (the engine takes its
strategies' weights whole). The engine does model slippage (half the bar's spread, square-root
impact, latency along the bar's path), but it moves every fill of a stressed window, where the seed's
case is one fill 1% off; and the seed's last criterion, disabling the strategy once unprofitable, is
the kill switch of the live state, which the engine does not keep per strategy.
"""

from __future__ import annotations

import json
import time

import pandas as pd

from stress_pipeline.drills.core import DrillRecord, DrillResult, SimClock, alert_queue
from stress_pipeline.drills.observe import START, Observed, detect
from stress_pipeline.drills.risk_drills import EQUITY, DrillEnv, check_book, system_decider
from stress_pipeline.monitoring.monitors import MonitorConfig
from stress_pipeline.services import redis_client
from stress_pipeline.state.risk_decisions import RiskDecisionState
from stress_pipeline.trading.risk.decision import BUY, SELL, DecisionRequest

INTERVAL_S = 60.0
TOLERANCE = 0.10


def webhook_lost_drill(env: DrillEnv) -> DrillResult:
    """Webhook signal lost (seed 002): the gap is detected within the interval + 10%, alerted, and no
    position comes from a phantom (malformed) or duplicated signal."""
    clock = SimClock()
    client = redis_client(env.redis_url)
    state = RiskDecisionState(client, f"webhook_lost-{time.time_ns()}", namespace=env.namespace)
    record = DrillRecord("webhook_lost", clock.now, alert_queue(env.alerts_dir))
    observed = Observed()
    seen_key = f"{state.hot.keys.prefix}:signals"
    try:
        state.init(EQUITY)
        decider = system_decider(env, state)
        deliveries: list[tuple[float, int, str]] = []  # (time, signal number, payload)
        for k in range(1, 13):
            payload = json.dumps({"id": f"trend-{k}", "side": BUY if k % 2 else SELL, "qty": 0.1})
            if k == 5:
                continue  # lost: never delivered
            if k == 9:
                payload = payload[:-7]  # truncated in transit: not valid JSON
            deliveries.append((k * INTERVAL_S, k, payload))
            if k == 7:
                deliveries.append((k * INTERVAL_S + 1.0, k, payload))  # delivered twice
        record.mark("fault", "signal 5 never delivered", 5 * INTERVAL_S)
        record.mark("fault", "signal 7 delivered twice", 7 * INTERVAL_S + 1.0)
        record.mark("fault", "signal 9 malformed", 9 * INTERVAL_S)
        expected = 0.0
        for t_s, k, payload in deliveries:
            clock.advance_to(t_s)
            try:
                signal = json.loads(payload)
            except json.JSONDecodeError:
                observed.webhook(t_s, "trend", "failed")
                continue
            observed.webhook(t_s, "trend", "received")
            if not client.set(f"{seen_key}:{signal['id']}", "1", nx=True):
                continue  # this signal id was taken already: a duplicate delivery
            decision = decider.decide(DecisionRequest("BTCUSDT", signal["side"], signal["qty"], 50_000.0,
                                                      round(t_s * 1e9), k))  # fmt: skip
            observed.event(t_s, "order", "BTCUSDT", k, signal["qty"], 50_000.0)
            observed.webhook(t_s, "trend", "processed")
            if decision.allowed:
                expected += decision.qty if signal["side"] == BUY else -decision.qty
        end_s = 13 * INTERVAL_S
        clock.advance_to(end_s)
        config = MonitorConfig(webhook_intervals_s={"trend": INTERVAL_S}, webhook_tolerance=TOLERANCE)
        found = detect(observed, end_s, ["webhook_lost"], config, record, state.hot.keys.prefix)
        gaps = found[found["summary"] == "expected webhook not received"]
        failed = found[found["summary"] != "expected webhook not received"]
        last_before_gap = 4 * INTERVAL_S
        delay = (gaps["detected_at"].iloc[0] - START).total_seconds() - last_before_gap if len(gaps) else None
        record.check("gap detected after the last signal (s)", delay, "<=", INTERVAL_S * (1 + TOLERANCE),
                     f"{len(gaps)} gap(s) detected")  # fmt: skip
        record.check("gaps detected", float(len(gaps)), "==", 1.0, "only the lost signal")
        record.check("failed signal detected", float(len(failed)), "==", 1.0)
        record.check("alerts raised", float(len(record.raised)), "==", 2.0, ", ".join(record.raised))
        check_book(record, decider, "BTCUSDT", expected, "position equals the distinct valid signals",
                   "the distinct valid signals'")  # fmt: skip
        record.check("orders sent (no phantom, no duplicate)", float(decider.answered), "==", 10.0,
                     "12 signals - 1 lost - 1 malformed = 10 distinct valid; the second delivery of 7 sends nothing")
        record.mark("end", "drill over")
        return record.result()
    finally:
        record.close()
        state.close()
        state.clear()
        for key in client.scan_iter(match=f"{seen_key}:*"):
            client.delete(key)
        client.close()


def high_slippage_drill(env: DrillEnv) -> DrillResult:
    """High slippage (seed 002): a fill 1% off its expected price is recorded per trade, alerted above
    0.5%, the strategy's PnL recomputed on real fills, and the strategy disabled once unprofitable."""
    clock = SimClock()
    client = redis_client(env.redis_url)
    state = RiskDecisionState(client, f"high_slippage-{time.time_ns()}", namespace=env.namespace)
    record = DrillRecord("high_slippage", clock.now, alert_queue(env.alerts_dir))
    observed = Observed()
    try:
        state.init(EQUITY)
        decider = system_decider(env, state)
        # (time, side, expected price, slippage of the fill: adverse fraction)
        plan = [(0.0, BUY, 50_000.0, 0.0002), (60.0, SELL, 50_250.0, 0.0002), (120.0, BUY, 50_000.0, 0.01),
                (180.0, SELL, 50_200.0, 0.0002)]  # fmt: skip
        record.mark("fault", "the entry at 120 s fills 1% worse than expected", 120.0)
        fills = []
        for oid, (t_s, side, price, slip) in enumerate(plan):
            clock.advance_to(t_s)
            decision = decider.decide(DecisionRequest("BTCUSDT", side, 0.5, price, round(t_s * 1e9), oid))
            observed.flag(t_s, "kill_switch", False)
            if not decision.allowed:
                continue
            sign = 1.0 if side == BUY else -1.0
            fill_price = price * (1.0 + sign * slip)
            observed.event(t_s, "order", "BTCUSDT", oid, sign * decision.qty, price)
            observed.event(t_s + 0.2, "fill", "BTCUSDT", oid, sign * decision.qty, fill_price)
            fills.append({"order_id": oid, "qty": sign * decision.qty, "expected": price, "price": fill_price})
        trades = pd.DataFrame(fills)
        trades["slippage"] = (trades["price"] - trades["expected"]) / trades["expected"] * trades["qty"].map(
            lambda q: 1.0 if q > 0 else -1.0)  # fmt: skip
        expected_pnl = float(-(trades["qty"] * trades["expected"]).sum())
        real_pnl = float(-(trades["qty"] * trades["price"]).sum())
        clock.advance_to(181.0)
        if real_pnl <= 0.0:
            state.hot.set_kill_switch(True)
            observed.flag(181.0, "kill_switch", True)
            record.mark("action", f"strategy disabled: PnL on real fills {real_pnl:,.2f}")
        found = detect(observed, 240.0, ["high_slippage", "kill_switch_set"], MonitorConfig(), record,
                       state.hot.keys.prefix)  # fmt: skip
        slipped = found[found["failure_mode"] == "high_slippage"]
        record.check("slippage recorded on the faulty fill", float(trades["slippage"].max()), ">=", 0.0099,
                     trades[["order_id", "slippage"]].to_json(orient="records"))  # fmt: skip
        record.check("fills alerted above 0.5%", float(len(slipped)), "==", 1.0, "only the 1% fill")
        record.check("detection delay (s)", (slipped["detected_at"].iloc[0] - slipped["evidence_at"].iloc[0])
                     .total_seconds() if len(slipped) else None, "<=", 1.0)  # fmt: skip
        cost = float((trades["qty"].abs() * trades["expected"] * trades["slippage"]).sum())
        record.check("PnL recomputed on real fills (error)", abs(expected_pnl - cost - real_pnl), "<=", 1e-6,
                     f"expected {expected_pnl:,.2f}, real {real_pnl:,.2f}, slippage cost {cost:,.2f}")  # fmt: skip
        blocked = decider.decide(DecisionRequest("BTCUSDT", BUY, 0.5, 50_000.0, round(240e9), 99))
        record.check("strategy disabled once unprofitable", float(real_pnl <= 0 and blocked.reason == "KILL_SWITCH"),
                     "==", 1.0, f"next order: {blocked.reason or 'allowed'}")  # fmt: skip
        record.check("disable seen by the kill switch monitor",
                     float((found["failure_mode"] == "kill_switch_set").sum()), "==", 1.0)  # fmt: skip
        record.mark("end", "drill over", 240.0)
        return record.result()
    finally:
        record.close()
        state.close()
        state.clear()
        client.close()
