"""Replay a paper run's fills through the live write path while the scenario's faults hit the servers.

The paper engine decides what trades; this replays its fills in sim-time order, as the trading
system would have written them, to the real PostgreSQL ledger and Redis hot state a run uses, with a
mark (heartbeat and equity) every ``heartbeat_s`` of sim time. Fault actions fire when the sim
clock reaches them: server outages stop the real server process (embedded: a run with planned
outages uses an embedded pair of its own, ``services/outages/``, so the servers every other run shares
stay up) or take a fault proxy down (external servers), a writer crash kills the writer between its
two writes, delivery faults duplicate or reorder the fill stream. A reorder buffer as deep as the
plan's reordering window puts the stream back into event order before it reaches the writer, as a
live consumer would.

Marks are coalesced to one per batch while both servers answer (a heartbeat overwrites the last
one); while a server is down the system tries one per ``heartbeat_s`` and the writer keeps the newest
(one pending mark per target). At the end every fault is over, the buffers are flushed and the three
views are reconciled.

A server lost outside the plan's outages (a crash, an operator) is got back by its
:class:`~stress_pipeline.state.supervisor.Supervisor` (an embedded one restarted with bounded
attempts, an external one given ``outage_budget_s``), or the run fails with
:class:`~stress_pipeline.state.supervisor.ServerLostError` naming it. The run holds its buffer
directory's lock while it runs, repairs the leftovers of dead runs first
(:mod:`~stress_pipeline.state.leftovers`) and marks its ledger run ``finished`` (or ``failed``).
"""

from __future__ import annotations

import contextlib
import heapq
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlparse

import pandas as pd

from stress_pipeline.faults.plan import FaultPlan
from stress_pipeline.faults.proxy import FaultProxy
from stress_pipeline.faults.servers import outage
from stress_pipeline.services import embedded, postgres_engine, redis_client, resolve_service_urls
from stress_pipeline.services.connections import check_postgres, check_redis
from stress_pipeline.services.errors import ServiceUnavailableError
from stress_pipeline.services.server_use import run_server_use
from stress_pipeline.services.urls import mask_url
from stress_pipeline.settings import Settings
from stress_pipeline.simulation.result import SimResult
from stress_pipeline.state.hot_state import HotState
from stress_pipeline.state.ledger import Ledger
from stress_pipeline.state.leftovers import LeftoverReport, repair_leftovers, run_lock
from stress_pipeline.state.live_run_batches import coalesce_writes
from stress_pipeline.state.reconcile import HotView, LedgerView, ReconciliationReport, reconcile
from stress_pipeline.state.records import Fill, Mark, fill_from_values, money
from stress_pipeline.state.supervisor import Supervisor, SupervisorPolicy, supervised
from stress_pipeline.state.writer import StateWriter, WriterCrash, WriterStats

NS = 1_000_000_000
OUTAGE_SERVERS = "outages"  # the run directory's record of a run on the pair planned outages stop


@dataclass(frozen=True)
class LiveStateConfig:
    batch_fills: int = 200  # fills per write at most
    heartbeat_s: float = 1.0  # a mark every second of sim time
    namespace: str = "stress"  # Redis key namespace
    schema: str = "stress_ledger"  # PostgreSQL schema of the ledger
    max_buffer_bytes: int | None = 256 * 1024**2  # cap of each disk buffer
    # restarts of an embedded server, outage budget of an external one, after an unplanned loss
    supervisor: SupervisorPolicy = field(default_factory=SupervisorPolicy)

    @classmethod
    def from_settings(cls, settings: Settings) -> LiveStateConfig:
        """The defaults, with the outage budget and the buffer cap of the settings."""
        return cls(max_buffer_bytes=settings.buffer_max_bytes,
                   supervisor=SupervisorPolicy(outage_budget_s=settings.outage_budget_s))  # fmt: skip


@dataclass
class LiveStateOutcome:
    run_id: str
    report: ReconciliationReport
    writer: dict[str, object]
    outages: list[dict[str, object]] = field(default_factory=list)
    health: list[dict[str, object]] = field(default_factory=list)  # changes of health, in sim time
    seconds: float = 0.0
    recoveries: list[dict[str, object]] = field(default_factory=list)  # unplanned losses got back
    leftovers: LeftoverReport = field(default_factory=LeftoverReport)  # dead runs repaired first

    def summary_row(self) -> dict[str, object]:
        """One row for the reconciliation table: the verdict, the counts, the buffering."""
        report, writer = self.report, self.writer
        flushes = [o["flush_seconds"] for o in writer["outages"] if o.get("flush_seconds") is not None]
        recoveries = [t["recovery_s"] for t in writer["outage_timings"] if t.get("recovery_s") is not None]
        cash = report.breaks[report.breaks["field"] == "cash"]["delta"]
        return {
            "run_id": self.run_id,
            "passed": report.passed,
            "exchange_fills": report.exchange_fills,
            "ledger_fills": report.ledger_fills,
            "lost": len(report.lost_fills),
            "duplicated": len(report.duplicated_fills),
            "unexpected": len(report.unexpected_fills),
            "breaks": len(report.breaks),
            "buffered_postgres": writer["buffered"]["postgres"],
            "buffered_redis": writer["buffered"]["redis"],
            "max_flush_seconds": max(flushes, default=0.0),
            "writer_crashes": writer["crashes"],
            # the largest cash difference between exchange, ledger and Redis, in the quote currency
            "cash_delta": float(max(map(Decimal, cash), default=Decimal(0))),
            # planned server outages and the seconds from each one's end until the server answered again
            "outages_recovered": len(recoveries),
            "recovery_s_sum": float(sum(recoveries)),
            "recovery_s_max": float(max(recoveries, default=0.0)),
        }


def exchange_fills(paper: SimResult, run_id: str) -> list[Fill]:
    """The paper run's fills as exact records, in event order (exchange truth)."""
    fills = paper.fills
    events = paper.events
    ids = _fill_event_ids(fills, events)
    return [
        fill_from_values(run_id, row.fill_id, ids[i], int(pd.Timestamp(row.ts).value), row.symbol, row.order_id,
                         row.qty, row.price, row.fee)
        for i, row in enumerate(fills.itertuples(index=False))
    ]  # fmt: skip


def run_live_state(
    paper: SimResult, *, run_id: str, faults: Sequence, settings: Settings, initial_cash: float,
    buffer_root: Path, config: LiveStateConfig = LiveStateConfig(), seed: int = 0,
) -> LiveStateOutcome:  # fmt: skip
    """Write ``paper``'s fills live under ``faults``, then reconcile; see the module docstring."""
    started = time.perf_counter()
    truth = exchange_fills(paper, run_id)
    start_ns = int(paper.equity.index[0].value) if len(paper.equity) else 0
    end_ns = int(paper.equity.index[-1].value) if len(paper.equity) else start_ns
    plan = FaultPlan.from_scenario(faults, start_ns, seed=seed)
    cash0 = money(initial_cash)
    equity = paper.equity["equity"]
    stopped = {action.target for action in plan.actions if action.target}  # servers its outages take away
    external = {embedded.POSTGRES: settings.postgres_url, embedded.REDIS: settings.redis_url}
    servers = ""
    if any(external[embedded.check_name(target)] is None for target in stopped):
        # An embedded server it stops is one of its own: the servers other runs share stay up.
        settings, servers = settings.for_planned_outages(), OUTAGE_SERVERS
    with (
        run_server_use(settings, run_id, stopped),
        _connections(settings, plan) as (postgres_url, redis_url, proxies),
        run_lock(buffer_root, run_id, servers=servers),
    ):
        supervisors = _supervisors(settings, postgres_url, redis_url, config.supervisor)
        by_service = _by_service(supervisors)
        ledger = Ledger(postgres_engine(postgres_url), schema=config.schema)
        supervised(by_service, ledger.migrate)
        leftovers = supervised(
            by_service, lambda: repair_leftovers(buffer_root, ledger, current=run_id, servers=servers)
        )
        supervised(by_service, lambda: ledger.start_run(run_id, paper.scenario_name))
        hot = HotState(redis_client(redis_url), run_id, namespace=config.namespace)
        supervised(by_service, lambda: (hot.clear(), hot.init(cash0)))
        buffer_dir = buffer_root / run_id
        clock = _Clock(
            run_id, equity, start_ns, config, plan, settings, proxies,
            writer=lambda recovering: _writer(
                run_id, ledger, hot, buffer_dir, cash0, plan, recovering=recovering, config=config
            ),
            supervisors=supervisors,
        )  # fmt: skip
        try:
            writes = _batches(plan.deliver(truth), config, end_ns, plan.reorder_window)
            for now_ns, batch in coalesce_writes(writes, plan.actions, config.batch_fills):
                clock.advance(now_ns)
                clock.write(batch, now_ns)
            clock.advance(end_ns + 1)
            clock.finish(end_ns)
            ledger_view = supervised(by_service, lambda: LedgerView(
                fills=ledger.fills(run_id), positions=ledger.positions(run_id), cash=ledger.cash(run_id, cash0)
            ))  # fmt: skip
            # a Redis restarted empty is rebuilt from the ledger first (as the writer does)
            hot_view = supervised(
                by_service, lambda: (clock.writer.recover_after_crash(end_ns), _hot_view(hot.snapshot()))[1]
            )
        except BaseException:
            with contextlib.suppress(Exception):  # the ledger may be the server that was lost
                ledger.finish_run(run_id, "failed")
            raise
        report = reconcile(truth, ledger_view, hot_view, initial_cash=cash0)
        supervised(by_service, lambda: ledger.finish_run(run_id, "finished"))
    stats = clock.stats()
    return LiveStateOutcome(
        run_id=run_id, report=report, writer=stats, outages=stats["outages"], health=clock.health,
        seconds=time.perf_counter() - started, leftovers=leftovers,
        recoveries=[r.__dict__ for s in clock.supervisors.values() for r in s.recoveries],
    )  # fmt: skip


# --------------------------------------------------------------------------------------- helpers


def _writer(
    run_id, ledger, hot, buffer_dir, cash0, plan: FaultPlan, *, recovering: bool = False, config: LiveStateConfig
) -> StateWriter:
    return StateWriter(
        run_id, ledger, hot, buffer_dir, initial_cash=cash0, recovering=recovering,
        crash=lambda point, now_ns: plan.take_crash(point, now_ns) is not None,
        max_buffer_bytes=config.max_buffer_bytes,
    )  # fmt: skip


def _supervisors(
    settings: Settings, postgres_url: str, redis_url: str, policy: SupervisorPolicy
) -> dict[str, Supervisor]:
    """One supervisor per server, probing the URL the run uses; embedded servers are restarted."""
    urls = resolve_service_urls(settings, start=False)
    result = {}
    for target, url, is_embedded, check in (
        ("postgres", postgres_url, urls.postgres_embedded, check_postgres),
        ("redis", redis_url, urls.redis_embedded, check_redis),
    ):
        name = f"{'embedded ' if is_embedded else ''}{embedded.DISPLAY_NAMES[target]} at {mask_url(url)}"
        restart = (lambda target=target: embedded.start(settings, [target])) if is_embedded else None
        result[target] = Supervisor(name, lambda url=url, check=check: check(url, 2.0), restart, policy)
    return result


def _by_service(supervisors: dict[str, Supervisor]) -> dict[str, Supervisor]:
    """The supervisors by the service name a ServiceUnavailableError carries ("PostgreSQL", "Redis")."""
    return {embedded.DISPLAY_NAMES[target]: supervisor for target, supervisor in supervisors.items()}


@contextlib.contextmanager
def _connections(settings: Settings, plan: FaultPlan) -> Iterator[tuple[str, str, dict[str, FaultProxy]]]:
    """The run's URLs; an external server that a fault takes down is reached through a fault proxy."""
    urls = resolve_service_urls(settings)
    targets = {action.target for action in plan.actions if action.target}
    proxies: dict[str, FaultProxy] = {}
    postgres_url, redis_url = urls.postgres_url, urls.redis_url
    try:
        for target, url, embedded in (("postgres", postgres_url, urls.postgres_embedded),
                                      ("redis", redis_url, urls.redis_embedded)):  # fmt: skip
            if target in targets and not embedded:
                parsed = urlparse(url)
                proxy = FaultProxy(parsed.hostname or "127.0.0.1", parsed.port or 0).start()
                proxies[target] = proxy
                if target == "postgres":
                    postgres_url = proxy.url_for(url)
                else:
                    redis_url = proxy.url_for(url)
        yield postgres_url, redis_url, proxies
    finally:
        for proxy in proxies.values():
            proxy.stop()


class _Clock:
    """The sim clock of the replay: fires fault actions, writes marks, survives writer crashes."""

    def __init__(self, run_id, equity, start_ns, config, plan, settings, proxies, *, writer, supervisors) -> None:
        self.run_id, self.equity, self.config, self.plan = run_id, equity, config, plan
        self.settings, self.proxies = settings, proxies
        self.last_mark_ns = start_ns
        self.handles: dict[str, object] = {}
        self.health: list[dict[str, object]] = []
        self._new_writer = writer  # recovering: bool -> StateWriter
        self.writer: StateWriter = writer(False)
        self.finished: list[WriterStats] = []  # stats of writers that crashed
        self.outage_timings: list[dict[str, object]] = []
        self.supervisors: dict[str, Supervisor] = supervisors

    def advance(self, now_ns: int) -> None:
        """Fire every fault action due by ``now_ns``, each at its own sim time."""
        for action in self.plan.due(now_ns):
            self.tick(action.at_ns)
            self._act(action)

    def tick(self, now_ns: int) -> None:
        """While a server is down, the marks the system tried to write every heartbeat until now."""
        if self.handles or self.writer.health()["mode"] == "DEGRADED":
            marks = self._marks(now_ns, dense=True)
            if marks:
                self.write([], now_ns, marks=marks)
        else:
            self.last_mark_ns = max(self.last_mark_ns, now_ns)

    def write(self, fills: list[Fill], now_ns: int, marks: list[Mark] | None = None) -> None:
        if marks is None:
            self.tick(now_ns)
            marks = self._marks(now_ns, dense=False)
        try:
            self.writer.write(fills, marks, now_ns)
        except WriterCrash:
            self.finished.append(self.writer.stats)
            self.writer = self._new_writer(True)
            with contextlib.suppress(ServiceUnavailableError):  # a server is down: catch up later
                self.writer.recover_after_crash(now_ns)
        self._supervise(now_ns)
        status = self.writer.health()
        if not self.health or {k: v for k, v in self.health[-1].items() if k != "ts"} != status:
            self.health.append({"ts": pd.Timestamp(now_ns, tz="UTC").isoformat(), **status})

    def finish(self, end_ns: int) -> None:
        for target in list(self.handles):
            self._end(target)
        self.writer.flush(end_ns)
        self._supervise(end_ns)
        supervised(_by_service(self.supervisors), lambda: self.writer.recover_after_crash(end_ns))
        self.writer.flush(end_ns)

    def _supervise(self, now_ns: int) -> None:
        """A server the writer found down outside a planned outage was lost: back within the bound
        (then the buffers are flushed), or ServerLostError ends the run."""
        for target, supervisor in self.supervisors.items():
            if target not in self.handles and self.writer.health()[target] == "DOWN":
                supervisor.recover()
                self.writer.flush(now_ns)

    def stats(self) -> dict[str, object]:
        merged = self.writer.stats.as_dict()
        for earlier in self.finished:
            data = earlier.as_dict()
            for key in ("batches", "fills", "marks"):
                merged[key] += data[key]
            for target, count in data["buffered"].items():
                merged["buffered"][target] += count
            merged["outages"] = data["outages"] + merged["outages"]
        merged["crashes"] = len(self.finished)
        merged["outage_timings"] = self.outage_timings
        return merged

    def _act(self, action) -> None:
        target = action.target
        if target is None:
            return
        if action.phase == "begin":
            handle = outage(target, self.settings, self.proxies.get(target))
            self.handles[target] = handle
            timings = handle.begin()
            self.outage_timings.append({"target": target, "begin_ns": action.at_ns, "down_s": timings.down_s})
        else:
            self._end(target)
            self.writer.flush(action.at_ns)

    def _end(self, target: str) -> None:
        handle = self.handles.pop(target, None)
        if handle is not None:
            timings = handle.end()
            entry = next((t for t in reversed(self.outage_timings) if t["target"] == target), None)
            if entry is not None:
                entry.update({"recovery_s": timings.recovery_s, "outage_s": timings.outage_s})

    def _marks(self, now_ns: int, *, dense: bool) -> list[Mark]:
        marks, self.last_mark_ns = _marks(
            self.run_id, self.equity, self.last_mark_ns, now_ns, self.config.heartbeat_s, dense=dense
        )
        return marks


def _batches(
    fills: Sequence[Fill], config: LiveStateConfig, end_ns: int, capacity: int
) -> Iterator[tuple[int, list[Fill]]]:
    """The delivered fills back in event order: a reorder buffer of ``capacity`` fills releases the
    oldest once it is full (0: pass-through); released fills go out at most ``batch_fills`` a write,
    at the sim time of the newest fill delivered, and at the end of each bar."""
    heap: list[tuple[int, int, Fill]] = []
    clock = 0
    pending: list[Fill] = []
    for number, fill in enumerate(fills):
        clock = max(clock, fill.ts_ns)
        heapq.heappush(heap, (fill.event_id, number, fill))
        while len(heap) > capacity:
            pending.append(heapq.heappop(heap)[2])
        bar_ends = number + 1 >= len(fills) or fills[number + 1].ts_ns > clock
        if pending and (len(pending) >= config.batch_fills or bar_ends):
            yield clock, pending
            pending = []
    pending.extend(heapq.heappop(heap)[2] for _ in range(len(heap)))
    for start in range(0, len(pending), config.batch_fills):
        yield max(clock, end_ns), pending[start : start + config.batch_fills]


def _marks(
    run_id: str, equity: pd.Series, last_ns: int, now_ns: int, heartbeat_s: float, *, dense: bool
) -> tuple[list[Mark], int]:
    """Marks since ``last_ns`` up to ``now_ns``: one per heartbeat while a server is down, else the last."""
    step = int(heartbeat_s * NS)
    if now_ns <= last_ns:
        return [], last_ns
    times = range(last_ns + step, now_ns + 1, step) if dense else [now_ns]
    values = equity.to_numpy()
    index = equity.index.asi8
    marks = []
    for ts in times:
        position = max(int(index.searchsorted(ts, side="right")) - 1, 0)
        marks.append(Mark(run_id=run_id, ts_ns=int(ts), equity=money(float(values[position]))))
    return marks, now_ns


def _hot_view(snapshot) -> HotView:
    return HotView(positions=dict(snapshot.positions), cash=Decimal(snapshot.cash))


def _fill_event_ids(fills: pd.DataFrame, events: pd.DataFrame | None) -> list[int]:
    """The event id of each fill, from the paper event log (fills in the same order)."""
    if events is None or events.empty:
        return list(range(len(fills)))
    ids = events.loc[events["kind"] == "fill", "event_id"].to_list()
    if len(ids) != len(fills):
        raise ValueError(f"the event log has {len(ids)} fill events for {len(fills)} fills")
    return [int(i) for i in ids]
