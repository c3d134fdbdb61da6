"""PostgreSQL outage drill: the ledger's server taken away mid-run, the writer degrades and buffers.

Real time, real PostgreSQL behind the project's TCP fault proxy (``faults/proxy.py``), real Redis:
a trading loop books a fill and an equity mark every ``TICK_S`` through the live system's write path
(``state/writer.py``: the ledger first, then the Redis hot state, a disk buffer for whichever is
down), and a health prober runs ``SELECT 1`` on the ledger's URL every ``probe_s``. Then the proxy goes
down for ``outage_s`` (every connection cut, new ones refused), ``env.repeats`` times. The ledger's
server is cut at its path rather than stopped because it is shared: the alert receiver and the other
drills of the run keep theirs (``faults/servers.py`` kills an embedded server for the state drills of
the scenarios, where the run owns it).

While the ledger is away the writer keeps trading in degraded mode (fills go on to Redis and into the
ledger's disk buffer); the ``postgres_down`` monitor concludes from the failed probes that PostgreSQL
is down, and its detection is the drill's alert; on the first write after the path is back the
writer flushes its buffer.

Criteria: seed 004's checks for a store that goes down (the system buffers to disk and runs
degraded, the buffer flushes on recovery, monitoring reports it down), applied to the ledger as its
"Postgres Downtime" scenario asks, with seed 001's recovery limit: recovery, the fault's start to the
writer back in NORMAL mode with an empty ledger buffer, <= 25 s (mean over the outages); the writer
buffered during each outage (trading went on, degraded); nothing lost: every fill booked is in the
ledger exactly once and the ledger's double entries balance; Redis holds the ledger's positions;
each outage detected from the probes within 30 s (seed 002 test 2) and alerted once.
"""

from __future__ import annotations

import shutil
import tempfile
import time
import uuid
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit

import sqlalchemy as sa

from stress_pipeline.drills.core import DrillConfigError, DrillRecord, DrillResult, alert_queue
from stress_pipeline.drills.observe import Observed, detect
from stress_pipeline.drills.risk_drills import DrillEnv
from stress_pipeline.faults.proxy import FaultProxy
from stress_pipeline.monitoring.monitors import MonitorConfig
from stress_pipeline.services import postgres_engine, redis_client
from stress_pipeline.services.connections import check_postgres
from stress_pipeline.services.errors import ServiceUnavailableError
from stress_pipeline.state.hot_state import HotState
from stress_pipeline.state.ledger import Ledger
from stress_pipeline.state.records import Mark, fill_from_values
from stress_pipeline.state.writer import POSTGRES, StateWriter

CASH = Decimal("100000")
TICK_S = 0.1  # a fill and a mark every tick
MAX_RECOVERY_S = 25.0  # seed 001: recovery within 25 s
ALERT_WITHIN_S = 30.0  # seed 002 test 2: alerts in under 30 s


def ledger_outage_drill(env: DrillEnv, *, outage_s: float = 10.0, probe_s: float = 1.0, gap_s: float = 2.0,
                        config: MonitorConfig | None = None) -> DrillResult:  # fmt: skip
    """The ledger's PostgreSQL away for ``outage_s``, ``env.repeats`` times, while fills are booked:
    recovery <= 25 s (mean), buffered while down, nothing lost, Redis equal to the ledger, each outage
    detected from the probes and alerted."""
    if not env.postgres_url:
        raise DrillConfigError("postgres_outage: DrillEnv.postgres_url is empty; the drill takes the ledger's "
                               "PostgreSQL away and needs its URL")  # fmt: skip
    for name, value in (("DrillEnv.repeats", env.repeats), ("outage_s", outage_s), ("probe_s", probe_s)):
        if not value > 0:
            raise DrillConfigError(f"postgres_outage: {name} {value!r}: expected > 0")
    config = config or MonitorConfig()
    target = urlsplit(env.postgres_url)
    proxy = FaultProxy(target.hostname or "127.0.0.1", target.port or 5432).start()
    via = proxy.url_for(env.postgres_url)
    run_id = f"postgres_outage-{uuid.uuid4().hex[:12]}"
    schema = f"drill_ledger_{uuid.uuid4().hex[:12]}"
    engine, direct = postgres_engine(via), postgres_engine(env.postgres_url)
    ledger, observer = Ledger(engine, schema=schema), Ledger(direct, schema=schema)  # observer: past the proxy
    hot = HotState(redis_client(env.redis_url), run_id, namespace=env.namespace)
    buffers = Path(tempfile.mkdtemp(prefix="stress-drill-buffers-"))
    start = time.monotonic()
    record = DrillRecord("postgres_outage", lambda: time.monotonic() - start, alert_queue(env.alerts_dir))
    observed = Observed()
    booked: list[str] = []
    try:
        ledger.migrate()
        ledger.start_run(run_id, "postgres outage drill")
        hot.init(CASH)
        writer = StateWriter(run_id, ledger, hot, buffers / run_id, initial_cash=CASH)
        loop = _Loop(writer, run_id, record, observed, via, probe_s, booked)
        recoveries, delays, buffered = [], [], []
        for repeat in range(env.repeats):
            loop.until(record.clock() + gap_s)
            fault_at = record.mark("fault", f"outage {repeat + 1}: the ledger's PostgreSQL unreachable for "
                                            f"{outage_s:g} s")  # fmt: skip
            before = writer.stats.buffered[POSTGRES]
            proxy.down()
            detected = False
            while record.clock() < fault_at + outage_s:
                if loop.tick() is False and not detected:  # a failed probe: the monitor decides
                    found = detect(observed, record.clock(), ["postgres_down"], config, record,
                                   f"{run_id}/outage-{repeat + 1}", since_s=fault_at)  # fmt: skip
                    if len(found):
                        detected = True
                        delays.append(record.detections[-1][2] - fault_at)
            proxy.up()
            record.mark("action", f"outage {repeat + 1}: the path is back")
            while writer.health()["mode"] != "NORMAL" or writer.pending()[POSTGRES]:
                loop.tick()
                if record.clock() > fault_at + outage_s + 2 * MAX_RECOVERY_S:
                    break  # never recovered: judged below
            else:
                recoveries.append(record.clock() - fault_at)
                record.mark("recovery", f"outage {repeat + 1}: ledger buffer flushed, writer NORMAL")
            buffered.append(writer.stats.buffered[POSTGRES] - before)
        loop.until(record.clock() + gap_s)
        writer.flush(time.time_ns())
        mean = sum(recoveries) / len(recoveries) if len(recoveries) == env.repeats else None
        record.check("recovery_s", mean, "<=", MAX_RECOVERY_S,
                     f"mean of {len(recoveries)}: {', '.join(f'{r:.1f}' for r in recoveries)} s")  # fmt: skip
        record.check("records buffered per outage (min)", float(min(buffered)), ">", 0.0,
                     f"fills and marks kept on disk while the ledger was away: {buffered}")  # fmt: skip
        stored = [fill.fill_id for fill in observer.fills(run_id)]
        lost = len(set(booked) - set(stored))
        record.check("fills lost", float(lost), "==", 0.0, f"{len(booked)} booked, {len(stored)} in the ledger")
        record.check("fills stored twice", float(len(stored) - len(set(stored))), "==", 0.0)
        record.check("ledger entries balanced", float(observer.entries_balanced(run_id)), "==", 1.0)
        held = {s: q for s, q in hot.snapshot().positions.items() if q}
        record.check("Redis positions equal the ledger's", float(held == observer.positions(run_id)), "==", 1.0,
                     ", ".join(f"{s} {q}" for s, q in held.items()))  # fmt: skip
        record.check("outages alerted", float(len(record.raised)), "==", float(env.repeats), "postgres_down monitor")
        record.check("detection delay (s, max)", max(delays) if len(delays) == env.repeats else None, "<",
                     ALERT_WITHIN_S, f"{probe_s:g} s probes, {config.probe_failures} failed in a row")  # fmt: skip
        record.mark("end", "drill over")
        return record.result()
    finally:
        record.close()
        proxy.stop()
        hot.clear()
        hot.client.close()
        engine.dispose()
        with direct.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        direct.dispose()
        shutil.rmtree(buffers, ignore_errors=True)


class _Loop:
    """The trading loop: a fill and a mark per tick through the writer, a health probe of the ledger's
    URL every ``probe_s``."""

    def __init__(self, writer: StateWriter, run_id: str, record: DrillRecord, observed: Observed, url: str,
                 probe_s: float, booked: list[str]) -> None:  # fmt: skip
        self.writer, self.run_id, self.record, self.observed = writer, run_id, record, observed
        self.url, self.probe_s, self.booked = url, probe_s, booked
        self.next_probe = 0.0

    def tick(self) -> bool | None:
        """One fill and mark; the probe's outcome when one was due, else None."""
        n = len(self.booked)
        now = time.time_ns()
        fill = fill_from_values(self.run_id, n, n, now, "BTCUSDT", n, 0.01 if n % 3 else -0.01, 50_000.0 + n % 7, 0.01)
        self.writer.write([fill], [Mark(run_id=self.run_id, ts_ns=now, equity=CASH)], now)
        self.booked.append(fill.fill_id)
        outcome = None
        t = self.record.clock()
        if t >= self.next_probe:
            self.next_probe = t + self.probe_s
            try:
                check_postgres(self.url, timeout=2.0)
                outcome = True
            except ServiceUnavailableError as exc:
                outcome = False
                self.observed.probe(t, "postgres", False, str(exc)[:200])
            if outcome:
                self.observed.probe(t, "postgres", True)
        time.sleep(TICK_S)
        return outcome

    def until(self, t_s: float) -> None:
        while self.record.clock() < t_s:
            self.tick()
