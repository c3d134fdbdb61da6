"""Broker failure drill (seed 001): the connection to the live state cut for 10 s, repeated.

Real time, real Redis behind the project's TCP fault proxy (``faults/proxy.py``): the proxy goes down
(every connection cut, new ones refused) for ``outage_s`` and comes back. Meanwhile the trading loop
keeps running: a market data feed writes a tick to Redis every 50 ms, a strategy queues an order
intent every 100 ms, and the trader sends the queued intents to the system's decider (by default the
risk stack, its state in Redis behind the proxy; a user's decider keeps its state where it likes).
When Redis fails the trader keeps its queue, tries again every ``reconnect_s``, and
after the reconnect resumes only once the market data it reads is fresher than 500 ms.

Criteria: recovery (fault start to the first decision after it) <= 25 s, mean over the repeats; the
approved book in Redis is the same before and after each outage (positions held); every intent is
decided exactly once (the queue is intact: none lost, none twice, and the risk stack's Redis counted
each once; not exercised for a user's decider, whose state is not in that Redis); the
market data was fresher than 500 ms at every resume; the ``redis_down`` monitor detected each
outage from the failed calls (health probes of the live state) and it was alerted once per outage.

Why not through the paper engine: the failure is the live state's connection (real Redis behind a
real proxy, real time), which the engine does not have.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from urllib.parse import urlsplit

import redis

from stress_pipeline.drills.core import DrillRecord, DrillResult, alert_queue
from stress_pipeline.drills.observe import Observed, detect
from stress_pipeline.drills.risk_drills import EQUITY, DrillEnv, system_decider
from stress_pipeline.faults.proxy import FaultProxy
from stress_pipeline.monitoring.monitors import MonitorConfig
from stress_pipeline.services import redis_client
from stress_pipeline.services.errors import ServiceUnavailableError
from stress_pipeline.state.risk_decisions import REQUESTS, RiskDecisionState
from stress_pipeline.trading.risk.decision import BUY, SELL, CheckedDecider, DecisionRequest

MAX_RECOVERY_S = 25.0
MAX_DATA_AGE_S = 0.5


def broker_failure_drill(env: DrillEnv, *, outage_s: float = 10.0, reconnect_s: float = 0.5,
                         gap_s: float = 2.0) -> DrillResult:  # fmt: skip
    target = urlsplit(env.redis_url)
    proxy = FaultProxy(target.hostname or "127.0.0.1", target.port or 6379).start()
    direct = redis_client(env.redis_url)
    via = proxy.url_for(env.redis_url)
    client = redis_client(via, socket_timeout=1.0, retry_on_timeout=False)
    feed_client = redis_client(via, socket_timeout=1.0)
    run_id = f"broker_failure-{time.time_ns()}"
    state = RiskDecisionState(client, run_id, namespace=env.namespace)
    observer = RiskDecisionState(direct, run_id, namespace=env.namespace)  # reads past the proxy
    tick_key = f"{state.hot.keys.prefix}:md:BTCUSDT"
    start = time.monotonic()
    record = DrillRecord("broker_failure", lambda: time.monotonic() - start, alert_queue(env.alerts_dir))
    stop = threading.Event()
    intents: deque[DecisionRequest] = deque()
    produced: list[int] = []
    lock = threading.Lock()

    def feed() -> None:
        while not stop.is_set():
            with contextlib.suppress(redis.exceptions.RedisError, OSError):  # reconnects on its next tick
                feed_client.set(tick_key, repr(time.time()))
            stop.wait(0.05)

    def strategy() -> None:
        n = 0
        while not stop.is_set():
            side = BUY if n % 2 == 0 else SELL
            with lock:
                intents.append(DecisionRequest("BTCUSDT", side, 0.01, 50_000.0, time.time_ns(), n))
                produced.append(n)
            n += 1
            stop.wait(0.1)

    threads = [threading.Thread(target=feed, daemon=True), threading.Thread(target=strategy, daemon=True)]
    recoveries: list[float] = []
    delays: list[float] = []
    observed = Observed()
    ages: list[float] = []
    held: list[bool | None] = []  # None: the decider shows no book
    try:
        state.init(EQUITY)
        decider = system_decider(env, state)
        # the approved book, read past the proxy for the risk stack; the user's decider shows its own
        book = decider.positions if env.decider else (lambda: observer.read().positions)
        trader = _Trader(decider, intents, lock)
        decided = trader.decided
        for thread in threads:
            thread.start()
        for repeat in range(env.repeats):
            trader.until(time.monotonic() + gap_s)
            fault_at = record.mark("fault", f"outage {repeat + 1}: Redis unreachable for {outage_s:g} s")
            proxy.down()
            before = book()  # no commit can land after the cut
            up_at = time.monotonic() + outage_s
            detected = False
            while True:
                if time.monotonic() >= up_at and proxy.is_down:
                    held.append(None if before is None else book() == before)
                    proxy.up()
                    record.mark("action", f"outage {repeat + 1}: the path is back")
                try:
                    age = time.time() - float(client.get(tick_key) or 0.0)
                    observed.probe(record.clock(), "redis", True)
                    if age > MAX_DATA_AGE_S:
                        time.sleep(0.05)
                        continue
                    if trader.once():
                        ages.append(age)
                        recoveries.append(record.clock() - fault_at)
                        record.mark("recovery", f"outage {repeat + 1}: trading again, market data "
                                                f"{age * 1e3:.0f} ms old")  # fmt: skip
                        break
                except (ServiceUnavailableError, OSError, redis.exceptions.RedisError) as exc:
                    observed.probe(record.clock(), "redis", False, type(exc).__name__)
                    if not detected:  # the monitors decide, from the failed calls, that Redis is down
                        found = detect(observed, record.clock(), ["redis_down"], MonitorConfig(), record,
                                       f"{run_id}/outage-{repeat + 1}", since_s=fault_at)  # fmt: skip
                        if len(found):
                            detected = True
                            delays.append(record.detections[-1][2] - fault_at)
                    time.sleep(reconnect_s)
        trader.until(time.monotonic() + gap_s)
        stop.set()
        for thread in threads:
            thread.join(timeout=5)
        trader.until(time.monotonic())  # what the strategy queued last
        mean = sum(recoveries) / len(recoveries) if recoveries else None
        record.check("recovery_s", mean, "<=", MAX_RECOVERY_S,
                     f"mean of {len(recoveries)}: {', '.join(f'{r:.1f}' for r in recoveries)} s")  # fmt: skip
        shown = bool(held) and None not in held
        record.check("positions held through every outage", float(all(held)) if shown else None, "==", 1.0,
                     "" if shown else f"decider {decider.name!r}: no positions() to compare")  # fmt: skip
        intact = sorted(decided) == produced and len(set(decided)) == len(decided)
        record.check("order queue intact (each intent decided once)", float(intact), "==", 1.0,
                     f"{len(produced)} queued, {len(decided)} decided, {len(set(decided))} distinct")  # fmt: skip
        counted = None if env.decider else float(observer.counts().get(REQUESTS, 0))
        record.check("Redis counted each intent once", counted, "==", float(len(produced)),
                     f"decider {decider.name!r} keeps no state in this Redis" if env.decider else "")  # fmt: skip
        record.check("market data age at resume (s, max)", max(ages) if ages else None, "<", MAX_DATA_AGE_S)
        record.check("outages alerted", float(len(record.raised)), "==", float(env.repeats), "redis_down monitor")
        record.check("detection delay (s, max)", max(delays) if len(delays) == env.repeats else None, "<", 30.0)
        record.mark("end", "drill over")
        return record.result()
    finally:
        stop.set()
        record.close()
        proxy.stop()
        state.close()
        observer.clear()
        direct.delete(tick_key)
        for c in (client, feed_client, direct):
            c.close()


class _Trader:
    """Sends the queued intents to the decider; a batch that failed is sent again, as it was, before
    any newer intent (the decider then counts it once whether its first commit was stored or not)."""

    def __init__(self, decider: CheckedDecider, intents: deque, lock: threading.Lock) -> None:
        self.decider = decider
        self.intents = intents
        self.lock = lock
        self.inflight: list[DecisionRequest] = []
        self.decided: list[int] = []

    def once(self) -> bool:
        """True when a batch was decided; raises (keeping the batch) when the decider cannot answer."""
        if not self.inflight:
            with self.lock:
                self.inflight = list(self.intents)
                self.intents.clear()
        if not self.inflight:
            time.sleep(0.01)
            return False
        self.decider.decide_batch(self.inflight)
        self.decided.extend(request.request_id for request in self.inflight)
        self.inflight = []
        return True

    def until(self, deadline: float) -> None:
        while True:
            self.once()
            if time.monotonic() >= deadline:
                with self.lock:
                    if not self.intents and not self.inflight:
                        return
