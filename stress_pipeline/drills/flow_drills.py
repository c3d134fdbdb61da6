"""Drills of the order flow: a signal flood through the decider, and the venue's rate limits.

* ``signal_flood`` runs in real time: 50 strategy signals arrive in 5 seconds on a real queue, a
  consumer thread drains it into the system's decider (by default the risk stack, state in Redis), and every signal's
  queue lag is measured from its arrival to its decision.
* ``rate_limits`` runs on a :class:`~stress_pipeline.drills.core.SimClock`: a burst of orders against
  the venue's own limiter (``exchange.rate_limits.rate_check``, Binance's fixed windows) answered with
  -1015, then an IP ban (weight limit 0, -1003) for a minute; every refused order is retried by the
  client's own rule (``exchange.client.retry_delay_ns``: max(Retry-After, 0.1 s * 2**n), at most
  ``max_retries``), in time order, so the limiter sees requests exactly as the venue would.
"""

from __future__ import annotations

import heapq
import math
import queue
import threading
import time

import numpy as np
import pandas as pd

from stress_pipeline.drills.core import DrillRecord, DrillResult, SimClock, alert_queue
from stress_pipeline.drills.ess import LiveGovernor
from stress_pipeline.drills.risk_drills import EQUITY, DrillEnv, system_decider
from stress_pipeline.services import redis_client
from stress_pipeline.state.risk_decisions import RiskDecisionState
from stress_pipeline.trading.exchange.client import retry_delay_ns
from stress_pipeline.trading.exchange.config import RateLimitConfig
from stress_pipeline.trading.exchange.rate_limits import MINUTE_NS, TEN_SECONDS_NS, new_state, rate_check
from stress_pipeline.trading.exchange.reasons import BINANCE_CODES, NONE
from stress_pipeline.trading.risk.decision import BUY, SELL, DecisionRequest
from stress_pipeline.trading.risk.policy import RiskPolicy

FLOOD_SIGNALS, FLOOD_SECONDS = 50, 5.0
MAX_LAG_S = 5.0


def signal_flood_drill(env: DrillEnv) -> DrillResult:
    """Signal flood (seed 002): 50 signals in 5 s; every one processed, trade intents limited by the
    policy (at most ``max_open_positions`` opened), queue lag < 5 s, normal processing after."""
    policy = RiskPolicy()
    client = redis_client(env.redis_url)
    state = RiskDecisionState(client, f"signal_flood-{time.time_ns()}", namespace=env.namespace)
    start = time.monotonic()
    record = DrillRecord("signal_flood", lambda: time.monotonic() - start, alert_queue(env.alerts_dir))
    try:
        state.init(EQUITY)
        decider = system_decider(env, state, policy)  # warm (compiled) when the signals arrive
        inbox: queue.Queue = queue.Queue()
        lags: dict[int, float] = {}
        allowed: dict[int, bool] = {}

        def consume() -> None:
            while True:
                items = [inbox.get()]
                while not inbox.empty():
                    items.append(inbox.get_nowait())
                live = [item for item in items if item is not None]
                if live:
                    decisions = decider.decide_batch([request for _, request in live])
                    done = time.monotonic()
                    for (arrived, request), decision in zip(live, decisions, strict=True):
                        lags[request.request_id] = done - arrived
                        allowed[request.request_id] = decision.allowed
                if len(live) < len(items):
                    return

        worker = threading.Thread(target=consume, name="signal-consumer", daemon=True)
        worker.start()
        record.mark("fault", f"{FLOOD_SIGNALS} signals in {FLOOD_SECONDS:g} s")
        arrivals: list[float] = []
        for i in range(FLOOD_SIGNALS):
            time.sleep(max(start + i * FLOOD_SECONDS / FLOOD_SIGNALS - time.monotonic(), 0.0))
            now = time.monotonic()
            arrivals.append(now)
            recent = sum(1 for a in arrivals if now - a <= 1.0)
            if recent > 5 and math.isnan(record.first("detection")):
                record.mark("detection", f"signal rate {recent}/s above the normal 5/s")
                record.alert("signal_flood", state.hot.keys.prefix, f"{recent} strategy signals in the last second",
                             severity="warning")  # fmt: skip
            inbox.put((now, DecisionRequest(f"S{i:02d}", BUY, 1_000.0 / 100.0, 100.0, time.time_ns(), i)))
        while len(lags) < FLOOD_SIGNALS and time.monotonic() - start < FLOOD_SECONDS + 30:
            time.sleep(0.01)
        record.mark("recovery", "flood drained")
        opened = [i for i, ok in allowed.items() if ok]
        after = DecisionRequest(f"S{opened[0]:02d}" if opened else "S00", SELL, 1.0, 100.0, time.time_ns(), 1_000)
        inbox.put((time.monotonic(), after))
        inbox.put(None)
        worker.join(timeout=30)
        record.check("signals processed", float(len(lags) - (1000 in lags)), "==", float(FLOOD_SIGNALS),
                     f"{decider.answered} requests answered by {decider.name}")  # fmt: skip
        record.check("trade intents opened", float(len(opened)), "<=", float(policy.guard.max_open_positions),
                     "the guard's max_open_positions")  # fmt: skip
        record.check("max queue lag (s)", max((lags[i] for i in range(FLOOD_SIGNALS) if i in lags), default=None), "<",
                     MAX_LAG_S)  # fmt: skip
        record.check("normal signal after the flood: lag (s)", lags.get(1000), "<", 1.0,
                     f"allowed={allowed.get(1000)}")  # fmt: skip
        record.check("normal signal after the flood: allowed", float(allowed.get(1000, False)), "==", 1.0)
        record.mark("end", "drill over")
        return record.result()
    finally:
        record.close()
        state.close()
        state.clear()
        client.close()


def rate_limits_drill(env: DrillEnv) -> DrillResult:
    """Rate limits -1003 / -1015 (seed 004): retries bounded (3, exponential backoff), the venue's
    limiter holds its configured rates, one dependency alert, the ESS does not trip on its own."""
    config = RateLimitConfig()
    clock = SimClock()
    client = redis_client(env.redis_url)
    state = RiskDecisionState(client, f"rate_limits-{time.time_ns()}", namespace=env.namespace)
    record = DrillRecord("rate_limits", clock.now, alert_queue(env.alerts_dir))
    try:
        state.init(EQUITY)
        governor = LiveGovernor(state.hot, RiskPolicy().safety, EQUITY, clock.now)
        burst = [int(i * 10e6) for i in range(400)]  # 400 orders in 4 s: above 300 per 10 s (-1015)
        ban_start, ban_end = 30 * 10**9, 90 * 10**9
        during_ban = [ban_start + i * 10**9 for i in range(60)]  # one order a second through a 60 s IP ban
        after_ban = [ban_end + 5 * 10**9 + i * 10**9 for i in range(5)]
        record.mark("fault", "burst of 400 orders in 4 s (limit 300 per 10 s)", 0.0)
        record.mark("fault", "IP ban: request weight limit 0 for 60 s (-1003)", ban_start / 1e9)
        log = _submit(burst + during_ban + after_ban, config, ban_start, ban_end)
        refused = log[log["code"] != 0]
        first_refusal = float(refused["t_ns"].iloc[0]) / 1e9 if len(refused) else None
        if first_refusal is not None:
            clock.advance_to(first_refusal)
            record.mark("detection", f"first refusal {int(refused['code'].iloc[0])}")
            record.alert("exchange_rate_limited", "exchange_api", "the venue refuses requests (-1003/-1015)",
                         severity="error", moment=clock.moment())  # fmt: skip
        for t_s in np.arange(0.0, 120.0, 1.0):  # equity marks while it happens: nothing filled at a loss
            clock.advance_to(max(clock.now(), t_s))
            governor.mark(EQUITY, flat=True)
        retries = log.groupby("order")["attempt"].max()
        waits = log[log["attempt"] > 0]
        record.check("max retries per order", float(retries.max()), "<=", float(config.max_retries))
        record.check("backoff: wait / required (min)", float(waits["waited_ratio"].min()) if len(waits) else None,
                     ">=", 1.0, "each retry waited max(Retry-After, 0.1 s * 2**n)")  # fmt: skip
        accepted = log[log["code"] == 0]
        per_10s = accepted.groupby(accepted["t_ns"] // TEN_SECONDS_NS).size().max()
        per_min = accepted.groupby(accepted["t_ns"] // MINUTE_NS).size().max() * config.order_weight
        record.check("orders accepted per 10 s (max)", float(per_10s), "<=", float(config.orders_per_10s))
        record.check("request weight per minute (max)", float(per_min), "<=", float(config.weight_per_minute))
        record.check("-1015 seen", float((log["code"] == -1015).sum()), ">", 0.0)
        record.check("-1003 seen", float((log["code"] == -1003).sum()), ">", 0.0)
        record.check("requests during the ban", float(((log["t_ns"] >= ban_start) & (log["t_ns"] < ban_end)).sum()),
                     "<=", float(len(during_ban) * (config.max_retries + 1)), "no spam: at most 1 + retries per order")
        record.check("dependency alerts raised", float(len(record.raised)), "==", 1.0, ", ".join(record.raised))
        record.check("detection delay (s)", record.first("alert") - first_refusal if first_refusal is not None
                     else None, "<", 60.0)  # fmt: skip
        resumed = accepted[accepted["t_ns"] >= ban_end]
        recovery = (float(resumed["t_ns"].iloc[0]) - ban_end) / 1e9 if len(resumed) else None
        if recovery is not None:
            record.mark("recovery", "orders accepted again", ban_end / 1e9 + recovery)
        record.check("recovery_s", recovery, "<=", 25.0, "ban end to the first accepted order")
        ess = state.hot.snapshot().ess_state
        record.check("ESS not tripped", float(ess == "ARMED"), "==", 1.0, ess)
        record.mark("end", "drill over", max(clock.now(), 120.0))
        return record.result()
    finally:
        record.close()
        state.close()
        state.clear()
        client.close()


def _submit(times_ns: list[int], config: RateLimitConfig, ban_start: int, ban_end: int) -> pd.DataFrame:
    """Every order sent at its time and retried by the client's rule, in time order against one limiter."""
    limiter = new_state()
    base_ns = int(config.backoff_base_s * 1e9)
    pending = [(t, order, 0, 0) for order, t in enumerate(times_ns)]
    heapq.heapify(pending)
    rows = []
    while pending:
        t_ns, order, attempt, required = heapq.heappop(pending)
        banned = ban_start <= t_ns < ban_end
        weight_limit = 0 if banned else config.weight_per_minute
        reason, retry_after = rate_check(limiter, t_ns, config.order_weight, True, weight_limit, config.orders_per_10s)
        code = BINANCE_CODES.get(int(reason), 0) if reason != NONE else 0
        rows.append((order, attempt, t_ns, code, required))
        if reason != NONE and attempt < config.max_retries:
            delay = int(retry_delay_ns(attempt, int(retry_after), base_ns))
            needed = max(int(retry_after), base_ns * (1 << attempt))
            heapq.heappush(pending, (t_ns + delay, order, attempt + 1, needed))
    log = pd.DataFrame(rows, columns=["order", "attempt", "t_ns", "code", "required_ns"])
    log = log.sort_values(["order", "attempt"])
    previous = log.groupby("order")["t_ns"].shift()
    log["waited_ratio"] = (log["t_ns"] - previous) / log["required_ns"].where(log["required_ns"] > 0)
    return log.sort_values("t_ns", kind="stable").reset_index(drop=True)
