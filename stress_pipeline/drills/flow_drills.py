"""The signal flood: 50 strategy signals in 5 seconds through the system's decider.

``signal_flood`` runs in real time: the signals arrive on a real queue, a consumer thread drains it
into the system's decider (by default the risk stack, state in Redis), and every signal's queue lag is
measured from its arrival to its decision. It stays on the live book (not the paper engine): what it
measures is a real queue's lag behind a real decider, which a simulated clock cannot show.

The rate-limit drill runs through the paper engine (``paper_drills.py``): its limiter and its client's
retry rule are the engine's.
"""

from __future__ import annotations

import math
import queue
import threading
import time

from stress_pipeline.drills.core import DrillRecord, DrillResult, alert_queue
from stress_pipeline.drills.risk_drills import EQUITY, DrillEnv, system_decider
from stress_pipeline.services import redis_client
from stress_pipeline.state.risk_decisions import RiskDecisionState
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
