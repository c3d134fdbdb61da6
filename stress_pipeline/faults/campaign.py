"""A seeded random fault campaign over the live write path (Jepsen / VOPR style).

Each schedule is drawn from its own seed (schedule ``i`` of a campaign seeded ``N`` uses ``N + i``,
so ``--seed N+i --schedules 1`` replays it exactly): a stream of fills (exact decimals, several
symbols, both sides), how they are delivered (duplicated at a rate, permuted within a window and put
back in order by a reorder buffer as a live consumer does) and a list of faults, each at a write of
the stream:

* ``planned_kill``: a drill stops the server (SIGKILL or clean stop of an embedded server, the proxy
  for an external one) and brings it back a few writes later;
* ``unplanned_kill``: the server dies and nobody says so (SIGKILL of the embedded processes; an
  external server's proxy goes down and comes back on its own after a random delay): the writer finds
  out at its next write and the server's :class:`~stress_pipeline.state.supervisor.Supervisor` must
  get it back;
* ``writer_crash``: the writer dies between the ledger write and the Redis write, a new one recovers;
* ``latency``, ``reset``, ``proxy_outage``: network faults on the fault proxy every connection of the
  run goes through (Toxiproxy-like latency, TCP resets, refused connections) for a few writes.

Faults on one server never overlap. The writes go to the real PostgreSQL ledger and Redis hot state
of the settings (embedded or external) through a :class:`~stress_pipeline.faults.proxy.FaultProxy`
each. After the last write every fault is over, the buffers are flushed and the exchange's fills are
reconciled with the ledger and Redis: a schedule passes only with 0 lost, 0 duplicated and 0
unexpected fills, no break and empty buffers. Anything else (an exception included) fails it, and its
seed is reported.
"""

from __future__ import annotations

import contextlib
import dataclasses
import heapq
import random
import shutil
import signal
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

from stress_pipeline.faults.plan import duplicate, shuffle_window
from stress_pipeline.faults.proxy import FaultProxy
from stress_pipeline.faults.servers import ServerOutage
from stress_pipeline.services import embedded, postgres_engine, redis_client, resolve_service_urls
from stress_pipeline.services.connections import check_postgres, check_redis
from stress_pipeline.services.errors import ServiceUnavailableError
from stress_pipeline.services.processes import processes_in, send_signal, wait_gone
from stress_pipeline.services.urls import mask_url
from stress_pipeline.settings import Settings
from stress_pipeline.state.hot_state import HotState
from stress_pipeline.state.ledger import Ledger
from stress_pipeline.state.reconcile import HotView, LedgerView, reconcile
from stress_pipeline.state.records import Fill, Mark, fill_from_values
from stress_pipeline.state.supervisor import Supervisor, SupervisorPolicy, supervised
from stress_pipeline.state.writer import StateWriter, WriterCrash

TARGETS = ("postgres", "redis")
SERVER_KINDS = ("planned_kill", "unplanned_kill", "latency", "reset", "proxy_outage")
FAULT_KINDS = (*SERVER_KINDS, "writer_crash")
DELIVERY_KINDS = ("duplicate_delivery", "reorder_delivery")
SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
NS = 1_000_000_000


@dataclass(frozen=True)
class CampaignConfig:
    min_fills: int = 20
    max_fills: int = 80
    max_batch: int = 8  # fills per write at most
    max_faults: int = 4
    max_fault_writes: int = 4  # how many writes a fault lasts at most
    schema: str = "fault_campaign"  # ledger schema
    supervisor: SupervisorPolicy = field(default_factory=lambda: SupervisorPolicy(outage_budget_s=20.0))
    initial_cash: Decimal = Decimal("1000000")


@dataclass(frozen=True)
class Fault:
    kind: str  # one of FAULT_KINDS
    target: str | None  # "postgres" / "redis"; None for a writer crash
    write: int  # the write it begins before
    writes: int  # how many writes it lasts (0: instantaneous)
    detail: str = ""  # how the server is stopped, the latency in ms, or the unplanned delay in ms

    @property
    def end(self) -> int:
        return self.write + self.writes


@dataclass(frozen=True)
class Schedule:
    seed: int
    fills: tuple[Fill, ...]  # the exchange's fills (the truth)
    delivered: tuple[Fill, ...]  # as delivered: duplicated and permuted
    reorder_window: int
    batches: tuple[int, ...]  # fills per write
    faults: tuple[Fault, ...]
    duplicate_rate: float

    def injected(self) -> Counter[str]:
        counts = Counter(fault.kind for fault in self.faults)
        if self.duplicate_rate:
            counts["duplicate_delivery"] += 1
        if self.reorder_window:
            counts["reorder_delivery"] += 1
        return counts


@dataclass
class ScheduleResult:
    seed: int
    injected: Counter[str]
    exchange_fills: int = 0
    lost: int = 0
    duplicated: int = 0
    unexpected: int = 0
    breaks: int = 0
    buffered: int = 0  # records the writers kept on disk while a server was away
    outages: int = 0  # stretches of time the writers found a server away
    recoveries_s: list[float] = field(default_factory=list)
    seconds: float = 0.0
    error: str | None = None

    @property
    def passed(self) -> bool:
        return self.error is None and not (self.lost or self.duplicated or self.unexpected or self.breaks)

    def as_dict(self) -> dict[str, object]:
        return {
            "seed": self.seed, "passed": self.passed, "faults": dict(self.injected),
            "exchange_fills": self.exchange_fills, "lost": self.lost, "duplicated": self.duplicated,
            "unexpected": self.unexpected, "breaks": self.breaks, "buffered": self.buffered, "outages": self.outages,
            "slowest_recovery_s": round(max(self.recoveries_s, default=0.0), 3),
            "seconds": round(self.seconds, 3), "error": self.error,
        }  # fmt: skip


def make_schedule(seed: int, config: CampaignConfig = CampaignConfig()) -> Schedule:
    """The schedule of ``seed``: the same seed always gives the same fills, delivery and faults."""
    rng = random.Random(seed)
    count = rng.randint(config.min_fills, config.max_fills)
    run = f"s{seed}"
    fills = tuple(
        fill_from_values(
            run, i, i, NS * (i + 1), rng.choice(SYMBOLS), i, rng.choice((-1, 1)) * rng.randint(1, 400) / 100,
            rng.randint(1_000, 6_000_000) / 100, rng.randint(0, 500) / 10_000,
        )
        for i in range(count)
    )  # fmt: skip
    generator = np.random.default_rng(seed)
    duplicate_rate = rng.choice((0.0, 0.0, 0.1, 0.3))
    window = rng.choice((0, 0, 3, 8))
    delivered = list(fills)
    if duplicate_rate:
        delivered = duplicate(delivered, duplicate_rate, generator)
    if window:
        delivered = shuffle_window(delivered, window, generator)
    batches = []
    left = len(delivered)
    while left:
        batches.append(min(left, rng.randint(1, config.max_batch)))
        left -= batches[-1]
    faults: list[Fault] = []
    for _ in range(rng.randint(1, config.max_faults)):
        kind = rng.choice(FAULT_KINDS)
        write = rng.randrange(len(batches))
        if kind == "writer_crash":
            faults.append(Fault(kind, None, write, 0))
            continue
        target = rng.choice(TARGETS)
        writes = 0 if kind == "unplanned_kill" else rng.randint(1, config.max_fault_writes)
        detail = {"planned_kill": rng.choice(("kill", "stop")), "latency": str(rng.choice((2, 10, 40))),
                  "unplanned_kill": str(rng.choice((50, 300, 1000)))}.get(kind, "")  # fmt: skip
        fault = Fault(kind, target, write, writes, detail)
        if any(other.target == target and fault.write <= other.end and other.write <= fault.end for other in faults):
            continue  # faults on one server never overlap
        faults.append(fault)
    faults.sort(key=lambda fault: (fault.write, fault.kind))
    return Schedule(seed, fills, tuple(delivered), window, tuple(batches), tuple(faults), duplicate_rate)


def reorder(delivered: Sequence[Fill], capacity: int) -> Iterator[Fill]:
    """The delivered fills through a reorder buffer of ``capacity`` (the oldest event id out first)."""
    heap: list[tuple[int, int, Fill]] = []
    for number, fill in enumerate(delivered):
        heapq.heappush(heap, (fill.event_id, number, fill))
        if len(heap) > capacity:
            yield heapq.heappop(heap)[2]
    while heap:
        yield heapq.heappop(heap)[2]


class CampaignServers:
    """The run's PostgreSQL and Redis, each behind a fault proxy, and how to restart an embedded one."""

    def __init__(self, settings: Settings, config: CampaignConfig) -> None:
        self.settings, self.config = settings, config
        urls = resolve_service_urls(settings)
        self.server_urls = {"postgres": urls.postgres_url, "redis": urls.redis_url}
        self.embedded = {"postgres": urls.postgres_embedded, "redis": urls.redis_embedded}
        self.proxies: dict[str, FaultProxy] = {}
        for target, url in self.server_urls.items():
            parts = urlsplit(url)
            self.proxies[target] = FaultProxy(parts.hostname or "127.0.0.1", parts.port or 0).start()
        self.urls = {target: self.proxies[target].url_for(url) for target, url in self.server_urls.items()}
        self.ledger = Ledger(postgres_engine(self.urls["postgres"]), schema=config.schema)
        self.ledger.migrate()
        self.redis = redis_client(self.urls["redis"])
        self._timers: list[threading.Timer] = []

    def supervisors(self) -> dict[str, Supervisor]:
        result = {}
        for target, check in (("postgres", check_postgres), ("redis", check_redis)):
            name = f"{'embedded ' if self.embedded[target] else ''}{embedded.DISPLAY_NAMES[target]} at " \
                   f"{mask_url(self.server_urls[target])}"  # fmt: skip
            restart = (lambda t=target: embedded.start(self.settings, [t])) if self.embedded[target] else None
            url = self.urls[target]
            result[target] = Supervisor(name, lambda u=url, c=check: c(u, 2.0), restart, self.config.supervisor)
        return result

    def kill(self, target: str, delay_ms: float) -> None:
        """An unplanned loss: SIGKILL the embedded server, or the external server's proxy goes down
        and comes back by itself after ``delay_ms``."""
        if not self.embedded[target]:
            proxy = self.proxies[target]
            proxy.down()
            timer = threading.Timer(delay_ms / 1000, proxy.up)
            self._timers.append(timer)
            timer.start()
            return
        record = embedded.read_state(self.settings).get(target)
        if record is None:
            raise RuntimeError(f"embedded {target} has no record under {self.settings.services_dir}")
        pids = [record.pid, *processes_in(Path(record.data_dir))]
        for pid in pids:
            send_signal(pid, signal.SIGKILL)
        wait_gone(pids, 30.0)

    def heal(self) -> None:
        """Every proxy up and clean, every embedded server running (between schedules)."""
        for timer in self._timers:
            timer.join()
        self._timers.clear()
        for proxy in self.proxies.values():
            proxy.clear()
            if proxy.is_down:
                proxy.up()
        checks = {"postgres": check_postgres, "redis": check_redis}
        for target in TARGETS:
            try:
                checks[target](self.urls[target], 2.0)
            except ServiceUnavailableError:
                if not self.embedded[target]:
                    raise
                embedded.start(self.settings, [target])

    def close(self) -> None:
        self.redis.close()
        self.ledger.engine.dispose()
        for proxy in self.proxies.values():
            proxy.stop()


class _Run:
    """One schedule against the servers: writes, faults, supervision, final reconciliation."""

    def __init__(self, schedule: Schedule, servers: CampaignServers, buffer_root: Path, run_id: str) -> None:
        self.schedule, self.servers, self.run_id = schedule, servers, run_id
        self.cash = servers.config.initial_cash
        self.buffer_dir = buffer_root / run_id
        servers.ledger.start_run(run_id, f"fault campaign seed {schedule.seed}")
        self.hot = HotState(servers.redis, run_id, namespace=f"fc-{run_id}")
        self.hot.clear()
        self.hot.init(self.cash)
        self.supervisors = servers.supervisors()
        self.crash_armed = False
        self.writers: list[StateWriter] = []
        self.writer = self._writer(recovering=False)
        self.active: dict[str, Callable[[], float | None]] = {}  # target -> ends the fault (recovery s)
        self.recoveries: list[float] = []

    def _writer(self, *, recovering: bool) -> StateWriter:
        writer = StateWriter(self.run_id, self.servers.ledger, self.hot, self.buffer_dir, initial_cash=self.cash,
                             crash=lambda point, now: self._take_crash(), recovering=recovering)  # fmt: skip
        self.writers.append(writer)
        return writer

    def _take_crash(self) -> bool:
        armed, self.crash_armed = self.crash_armed, False
        return armed

    def play(self) -> ScheduleResult:
        schedule = self.schedule
        stream = reorder(schedule.delivered, schedule.reorder_window)
        for number, size in enumerate(schedule.batches):
            for fault in schedule.faults:
                if fault.writes and fault.end == number and fault.target in self.active:
                    self._end(fault.target, number)
            for fault in schedule.faults:
                if fault.write == number:
                    self._begin(fault)
            batch = [next(stream) for _ in range(size)]
            self._write(batch, number)
        for target in list(self.active):
            self._end(target, len(schedule.batches))
        return self._finish(len(schedule.batches))

    def _write(self, batch: list[Fill], number: int) -> None:
        mark = Mark(self.run_id, NS * (number + 1), self.cash)
        try:
            self.writer.write(batch, [mark], number)
        except WriterCrash:
            self.writer = self._writer(recovering=True)
            with contextlib.suppress(ServiceUnavailableError):
                self.writer.recover_after_crash(number)
        self._supervise(number)

    def _supervise(self, now: int) -> None:
        for target, supervisor in self.supervisors.items():
            if target not in self.active and self.writer.health()[target] == "DOWN":
                self.recoveries.append(supervisor.recover().seconds)
                self.writer.flush(now)

    def _begin(self, fault: Fault) -> None:
        proxy = self.servers.proxies.get(fault.target or "")
        if fault.kind == "writer_crash":
            self.crash_armed = True
        elif fault.kind == "unplanned_kill":
            self.servers.kill(fault.target, float(fault.detail))
        elif fault.kind == "planned_kill":
            outage = ServerOutage(fault.target, self.servers.settings, proxy, how=fault.detail)
            outage.begin()
            self.active[fault.target] = lambda: outage.end().recovery_s
        elif fault.kind == "latency":
            proxy.latency(float(fault.detail))
            self.active[fault.target] = lambda: proxy.remove("latency")
        elif fault.kind == "reset":
            proxy.reset_peer(0.0)
            self.active[fault.target] = lambda: proxy.remove("reset_peer")
        elif fault.kind == "proxy_outage":
            proxy.down()
            self.active[fault.target] = proxy.up
        else:
            raise ValueError(f"unknown fault kind {fault.kind!r}")

    def _end(self, target: str, now: int) -> None:
        recovery = self.active.pop(target)()
        if recovery is not None:
            self.recoveries.append(recovery)
        self.writer.flush(now)

    def _finish(self, now: int) -> ScheduleResult:
        schedule, ledger = self.schedule, self.servers.ledger
        by_service = {embedded.DISPLAY_NAMES[target]: s for target, s in self.supervisors.items()}
        self.writer.flush(now)
        self._supervise(now)
        supervised(by_service, lambda: self.writer.recover_after_crash(now))
        self.writer.flush(now)
        ledger_view = supervised(by_service, lambda: LedgerView(
            fills=ledger.fills(self.run_id), positions=ledger.positions(self.run_id),
            cash=ledger.cash(self.run_id, self.cash),
        ))  # fmt: skip
        snapshot = supervised(by_service, self.hot.snapshot)
        truth = [dataclasses.replace(fill, run_id=self.run_id) for fill in schedule.fills]
        report = reconcile(truth, ledger_view, HotView(positions=dict(snapshot.positions), cash=snapshot.cash),
                           initial_cash=self.cash)  # fmt: skip
        left = self.writer.pending()
        result = ScheduleResult(
            schedule.seed, schedule.injected(), exchange_fills=report.exchange_fills, lost=len(report.lost_fills),
            duplicated=len(report.duplicated_fills), unexpected=len(report.unexpected_fills),
            breaks=len(report.breaks), recoveries_s=self.recoveries,
            buffered=sum(sum(w.stats.buffered.values()) for w in self.writers),
            outages=sum(len(w.stats.outages) for w in self.writers),
        )  # fmt: skip
        if any(left.values()):
            result.error = f"records left in the disk buffers after the final flush: {left}"
        ledger.finish_run(self.run_id, "finished")
        self.hot.clear()
        return result


def run_schedule(schedule: Schedule, servers: CampaignServers, buffer_root: Path, nonce: str) -> ScheduleResult:
    """Play one schedule; never raises for what the schedule did (the error is in the result)."""
    started = time.perf_counter()
    run_id = f"fc-{nonce}-{schedule.seed}"
    delivered = tuple(dataclasses.replace(fill, run_id=run_id) for fill in schedule.delivered)
    schedule = dataclasses.replace(schedule, delivered=delivered)
    try:
        result = _Run(schedule, servers, buffer_root, run_id).play()
    except Exception as err:  # a failing schedule is reported with its seed
        result = ScheduleResult(schedule.seed, schedule.injected(), error=f"{type(err).__name__}: {err}")
    finally:
        servers.heal()
    result.seconds = time.perf_counter() - started
    if result.passed:
        shutil.rmtree(buffer_root / run_id, ignore_errors=True)
    return result


@dataclass
class CampaignResult:
    seed: int
    results: list[ScheduleResult]

    @property
    def injected(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for result in self.results:
            total.update(result.injected)
        return total

    @property
    def failing(self) -> list[ScheduleResult]:
        return [result for result in self.results if not result.passed]

    def totals(self) -> dict[str, object]:
        return {
            "seed": self.seed,
            "schedules": len(self.results),
            "faults_injected": sum(self.injected.values()),
            "faults_by_kind": dict(sorted(self.injected.items())),
            "fills": sum(r.exchange_fills for r in self.results),
            "fills_lost": sum(r.lost for r in self.results),
            "fills_duplicated": sum(r.duplicated for r in self.results),
            "fills_unexpected": sum(r.unexpected for r in self.results),
            "breaks": sum(r.breaks for r in self.results),
            "records_buffered": sum(r.buffered for r in self.results),
            "outages_seen": sum(r.outages for r in self.results),
            "slowest_recovery_s": round(max((max(r.recoveries_s, default=0.0) for r in self.results), default=0.0), 3),
            "failing_seeds": [r.seed for r in self.failing],
            "errors": {str(r.seed): r.error for r in self.failing if r.error},
        }


def run_campaign(
    settings: Settings, seed: int, schedules: int, config: CampaignConfig = CampaignConfig(), *,
    buffer_root: Path, on_result: Callable[[ScheduleResult], None] | None = None,
) -> CampaignResult:  # fmt: skip
    """Run ``schedules`` schedules seeded ``seed``, ``seed + 1``, ... against the settings' servers."""
    if schedules < 1:
        raise ValueError(f"schedules must be at least 1, got {schedules}")
    servers = CampaignServers(settings, config)
    nonce = uuid.uuid4().hex[:6]
    results = []
    try:
        for index in range(schedules):
            result = run_schedule(make_schedule(seed + index, config), servers, buffer_root, nonce)
            results.append(result)
            if on_result is not None:
                on_result(result)
    finally:
        servers.close()
    return CampaignResult(seed, results)


__all__ = [
    "FAULT_KINDS", "CampaignConfig", "CampaignResult", "CampaignServers", "Fault", "Schedule", "ScheduleResult",
    "make_schedule", "reorder", "run_campaign", "run_schedule",
]  # fmt: skip
