"""Network connectivity loss drill (seed 002): 5 minutes without a network, alerts batched on reconnect.

The trading timeline runs on a :class:`~stress_pipeline.drills.core.SimClock` (health probes of the
network every 10 s, orders through the system's decider, by default the risk stack in Redis); the alert path is real:
PagerDuty Events v2 triggers go into the durable alert queue and out over HTTP, through the project's
TCP fault proxy, to the embedded alert receiver recording into PostgreSQL. The proxy is down for as
long as the network is, so the alerts raised during the loss wait in the queue.

The reference system's behaviour under test: the monitors (``connectivity_lost``) detect the loss;
the system tries to close its positions at once (the venue is behind the same network, so the attempt
fails and is logged); every event during the loss goes to a local append-only log (fsynced JSON
lines); on reconnect it closes the positions before anything else, syncs the decision state, and
the queued alerts go out in one round, in order, once each.

Why not through the paper engine: the network between the system and everything else (the venue,
the alert path) is no market or venue event the engine models; the drill cuts a real alert path.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections import Counter
from pathlib import Path

from stress_pipeline.drills.core import DrillConfigError, DrillRecord, DrillResult, SimClock
from stress_pipeline.drills.observe import Observed, detect
from stress_pipeline.drills.risk_drills import EQUITY, DrillEnv, check_book, system_decider
from stress_pipeline.drills.venue_drills import TICK_S, Venue, _decide
from stress_pipeline.faults.proxy import FaultProxy
from stress_pipeline.monitoring.alert_store import deliveries_of, incidents_of
from stress_pipeline.monitoring.delivery import AlertSender, Endpoint, RetryPolicy
from stress_pipeline.monitoring.monitors import MonitorConfig
from stress_pipeline.monitoring.queue import AlertQueue
from stress_pipeline.monitoring.receiver import ENQUEUE_PATH, AlertReceiver
from stress_pipeline.services import redis_client
from stress_pipeline.state.risk_decisions import RiskDecisionState


class LocalLog:
    """The system's local event log while it is cut off: one fsynced JSON line per event."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

    def write(self, t_s: float, kind: str, **fields: object) -> None:
        os.write(self._fd, (json.dumps({"t_s": t_s, "kind": kind, **fields}, sort_keys=True) + "\n").encode())
        os.fsync(self._fd)

    def lines(self) -> list[dict]:
        return [json.loads(line) for line in self.path.read_text().splitlines()]

    def close(self) -> None:
        os.close(self._fd)


def network_loss_drill(env: DrillEnv, *, loss_s: float = 300.0) -> DrillResult:
    if not env.postgres_url or not env.alerts_dir:
        raise DrillConfigError("network_loss drill: needs DrillEnv.postgres_url (the alert receiver's database) "
                               "and DrillEnv.alerts_dir (the alert queue and the local event log)")  # fmt: skip
    folder = Path(env.alerts_dir) / f"network_loss-{uuid.uuid4().hex[:8]}"
    receiver = AlertReceiver(env.postgres_url, schema=env.alerts_schema).start()
    proxy = FaultProxy("127.0.0.1", receiver.port).start()
    queue = AlertQueue(folder / "queue")
    sender = AlertSender(Endpoint(f"http://127.0.0.1:{proxy.port}{ENQUEUE_PATH}", uuid.uuid4().hex), queue,
                         RetryPolicy(max_attempts=2, base_delay_s=0.05, max_delay_s=0.1, timeout_s=2.0))  # fmt: skip
    local = LocalLog(folder / "events.jsonl")
    clock = SimClock()
    client = redis_client(env.redis_url)
    state = RiskDecisionState(client, f"network_loss-{time.time_ns()}", namespace=env.namespace)
    record = DrillRecord("network_loss", clock.now, queue)
    observed = Observed()
    venue = Venue(down_from=60.0, down_until=60.0 + loss_s)  # the venue is behind the same network
    config = MonitorConfig()
    try:
        state.init(EQUITY)
        decider = system_decider(env, state)
        oid = 1
        _decide(decider, "BTCUSDT", 0.5, 50_000.0, 0.0, oid)
        venue.fill(0.0, 0.5, 50_000.0)
        observed.event(0.0, "order", "BTCUSDT", oid, 0.5, 50_000.0)
        observed.event(0.05, "fill", "BTCUSDT", oid, 0.5, 50_000.0)
        record.mark("fault", f"network lost for {loss_s / 60:g} min", venue.down_from)
        detected = reconnected = None
        logged_during_loss = 0
        first_after_detection = first_after_reconnect = ""
        delivered_at_reconnect: list = []
        undelivered_during_loss = 0
        t = 0.0
        while t <= venue.down_until + 120.0:
            clock.advance_to(t)
            up = venue.up(t)
            observed.probe(t, "network", up, "" if up else "network: unreachable")
            if not up:
                local.write(t, "probe", target="network", ok=False)
                logged_during_loss += 1
            if detected is None:
                if len(detect(observed, t, ["connectivity_lost"], config, record, state.hot.keys.prefix)):
                    detected = t
                    first_after_detection = "close"  # the first thing tried: take the risk off
                    oid += 1
                    observed.event(t, "order", "BTCUSDT", oid, -venue.position, float("nan"))
                    observed.event(t + 0.1, "reject", "BTCUSDT", oid, -venue.position, float("nan"),
                                   "NETWORK_UNREACHABLE", will_retry=False)  # fmt: skip
                    detect(observed, t + 0.1, ["order_placement_failed"], config, record, state.hot.keys.prefix)
                    local.write(t, "close_failed", order_id=oid, qty=-venue.position, reason="NETWORK_UNREACHABLE")
                    logged_during_loss += 1
                    proxy.down()
                    sender.deliver_pending()  # the path is gone: the alert stays queued
                    undelivered_during_loss = len(queue)
            elif reconnected is None and up:
                reconnected = t
                record.mark("action", "network back: close positions first, then sync, then alerts", t)
                oid += 1
                decision = _decide(decider, "BTCUSDT", -venue.position, 49_000.0, t, oid)
                venue.fill(t, -decision.qty, 49_000.0)
                first_after_reconnect = "close" if venue.position == 0 else "other"
                observed.event(t, "order", "BTCUSDT", oid, -decision.qty, float("nan"))
                observed.event(t + 0.1, "fill", "BTCUSDT", oid, -decision.qty, 49_000.0)
                proxy.up()
                delivered_at_reconnect = sender.deliver_pending()
                record.mark("recovery", f"positions closed, {len(delivered_at_reconnect)} alerts delivered", t)
            t += TICK_S
        record.check("detection delay (s)", None if detected is None else detected - venue.down_from, "<", 60.0,
                     "connectivity_lost monitor")  # fmt: skip
        record.check("positions closed first (tried at detection)", float(first_after_detection == "close"), "==",
                     1.0, "the venue is unreachable too: the attempt is logged")  # fmt: skip
        record.check("positions closed first on reconnect", float(first_after_reconnect == "close"), "==", 1.0)
        lines = local.lines()
        record.check("events logged locally", float(len(lines)) if lines else None, "==", float(logged_during_loss),
                     str(local.path.name))  # fmt: skip
        check_book(record, decider, "BTCUSDT", venue.position, "state synced (decider book equals the venue)")
        record.check("alerts held while the network was down", float(undelivered_during_loss), ">=", 1.0)
        ids = [d.alert_id for d in delivered_at_reconnect]
        deliveries = deliveries_of(receiver.engine, receiver.tables, ids) if ids else []
        record.check("alerts delivered on reconnect", float(len(ids)) if ids else None, "==",
                     float(undelivered_during_loss))  # fmt: skip
        record.check("delivered in the order raised", float([d.dedup_key for d in delivered_at_reconnect]
                                                             == list(record.raised)), "==", 1.0)  # fmt: skip
        record.check("deliveries per alert (max)", float(max(Counter(d["alert_id"] for d in deliveries).values()))
                     if deliveries else None, "==", 1.0)  # fmt: skip
        keys = sorted({d.dedup_key for d in delivered_at_reconnect})
        incidents = incidents_of(receiver.engine, receiver.tables, keys) if keys else []
        record.check("incidents per alert", float(len(incidents)) / len(keys) if keys else None, "==", 1.0)
        record.mark("end", "drill over")
        return record.result()
    finally:
        record.close()
        local.close()
        proxy.stop()
        receiver.stop()
        state.close()
        state.clear()
        client.close()
