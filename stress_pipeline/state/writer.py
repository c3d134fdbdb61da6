"""The live system's write path: ledger first, then Redis; a disk buffer for whichever is down.

Every batch of fills and marks (heartbeats with equity) goes to the PostgreSQL ledger (the system of
record), then to the Redis hot state. When a
server does not answer, the batch is appended to that server's fsynced disk buffer under
``$STRESS_HOME/buffers/<run_id>/<target>`` and trading goes on in degraded mode; each later write
first tries to flush the buffer, in order, and truncates it once the server took it. Writes are
idempotent on both sides (the ledger by run id + fill id, Redis by event id), so a batch written
twice, or replayed after a crash, changes nothing.

Redis after an outage may come back empty (the embedded server keeps nothing on disk, like a cache
that lost its data): the writer then rebuilds it from the ledger (positions, cash, last event id)
before flushing its buffer, whose fills the rebuild already holds are skipped by event id.

A writer crash between the two writes (the ``after_ledger_before_redis`` fault) loses nothing: the
restarted writer (``recovering=True``) first flushes its ledger buffer and catches Redis up from the
ledger, fills above Redis' last applied event id; until that catch-up succeeded it sends Redis no
newer fill (they wait in the Redis buffer), since a newer event id would hide the older ones.

While a server is down its marks coalesce: a mark overwrites the equity of its run (Redis) and the
ledger keeps marks only as a curve of heartbeats, so the writer holds one pending mark per target (the
newest) instead of a line per heartbeat. The pending mark is appended to the disk buffer behind the
fills of the next buffered batch (so a restarted writer still has it) and sent after the backlog. A
flush streams the backlog from disk ``flush_batch`` records at a time and truncates the buffer once,
after the server took all of it (a crash half-way sends some again: writes are idempotent). A buffer
that reaches ``max_buffer_bytes`` refuses the append with an error naming its file.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from stress_pipeline.services.errors import ServiceUnavailableError
from stress_pipeline.state.disk_buffer import DiskBuffer
from stress_pipeline.state.hot_state import HotState
from stress_pipeline.state.ledger import Ledger
from stress_pipeline.state.records import Fill, Mark

POSTGRES, REDIS = "postgres", "redis"
CRASH_POINT = "after_ledger_before_redis"
#: Records sent per write when a buffer is flushed (read from disk that many at a time).
FLUSH_BATCH = 5_000


class WriterCrash(RuntimeError):
    """The writer process died at a named point (an injected fault)."""


@dataclass
class Outage:
    """One stretch of time a server refused writes, as the writer saw it."""

    target: str
    first_failure_ns: int  # sim time of the first failed write
    buffered: int = 0  # updates appended to the disk buffer during it
    recovered_ns: int | None = None  # sim time of the write that flushed the buffer
    flush_seconds: float | None = None  # wall time of that flush
    flushed: int = 0
    marks_tried: int = 0  # marks that arrived while it lasted (coalesced to the newest)


@dataclass
class WriterStats:
    batches: int = 0
    fills: int = 0
    marks: int = 0
    buffered: dict[str, int] = field(default_factory=lambda: {POSTGRES: 0, REDIS: 0})
    outages: list[Outage] = field(default_factory=list)
    crashes: int = 0
    redis_rebuilds: int = 0

    def as_dict(self) -> dict[str, object]:
        return {
            "batches": self.batches, "fills": self.fills, "marks": self.marks, "buffered": dict(self.buffered),
            "crashes": self.crashes, "redis_rebuilds": self.redis_rebuilds,
            "outages": [outage.__dict__ for outage in self.outages],
        }  # fmt: skip


class StateWriter:
    """Writes one run's fills and marks to the ledger and the hot state, surviving outages."""

    def __init__(
        self, run_id: str, ledger: Ledger, hot: HotState, buffer_dir: Path, *, initial_cash: Decimal,
        crash: Callable[[str, int], bool] | None = None, recovering: bool = False,
        max_buffer_bytes: int | None = None, flush_batch: int = FLUSH_BATCH,
    ) -> None:  # fmt: skip
        self.run_id = run_id
        self.ledger = ledger
        self.hot = hot
        self.initial_cash = initial_cash
        self.buffers = {
            target: DiskBuffer(buffer_dir / target, max_bytes=max_buffer_bytes) for target in (POSTGRES, REDIS)
        }
        self.flush_batch = flush_batch
        self._pending_mark: dict[str, Mark] = {}  # the newest mark not yet taken, per target
        self.stats = WriterStats()
        self._crash = crash or (lambda point, now_ns: False)
        self._open: dict[str, Outage] = {}
        self._catch_up_pending = recovering

    # ----------------------------------------------------------------------------------- health

    def health(self) -> dict[str, str]:
        """UP or DOWN per server, as the last write found it; DEGRADED overall while any is down."""
        status = {target: "DOWN" if target in self._open else "UP" for target in (POSTGRES, REDIS)}
        status["mode"] = "DEGRADED" if self._open else "NORMAL"
        return status

    # ------------------------------------------------------------------------------------ writes

    def write(self, fills: Sequence[Fill], marks: Sequence[Mark], now_ns: int) -> None:
        """One batch: fills and marks to the ledger, then to Redis."""
        self.stats.batches += 1
        self.stats.fills += len(fills)
        self.stats.marks += len(marks)
        self._deliver(POSTGRES, [*fills, *marks], now_ns)
        if fills and self._crash(CRASH_POINT, now_ns):
            self.stats.crashes += 1
            raise WriterCrash(f"writer crashed after the ledger write, before Redis, at sim time {now_ns}")
        self._deliver(REDIS, [*fills, *marks], now_ns)

    def flush(self, now_ns: int) -> None:
        """Try to flush every non-empty buffer (called after an outage ends and at the end of a run)."""
        for target in (POSTGRES, REDIS):
            if len(self.buffers[target]) or target in self._pending_mark:
                self._deliver(target, [], now_ns)

    def pending(self) -> dict[str, int]:
        """Records waiting per target: the disk buffer plus a pending mark."""
        return {target: len(self.buffers[target]) + (target in self._pending_mark) for target in (POSTGRES, REDIS)}

    def recover_after_crash(self, now_ns: int = 0) -> int:
        """Flush the ledger buffer, then catch Redis up from the ledger; returns the fills applied.

        Raises ServiceUnavailableError while a server is down (the catch-up stays pending)."""
        if len(self.buffers[POSTGRES]):
            self._deliver(POSTGRES, [], now_ns)
            if len(self.buffers[POSTGRES]):
                raise ServiceUnavailableError("PostgreSQL", None, "the ledger buffer could not be flushed yet")
        self._ensure_redis_state()
        last = self.hot.last_event_id()
        missing = [fill for fill in self.ledger.fills(self.run_id) if fill.event_id > last]
        applied = self.hot.apply_fills(missing)
        self._catch_up_pending = False
        return applied

    # --------------------------------------------------------------------------------- internals

    def _deliver(self, target: str, records: list[Fill | Mark], now_ns: int) -> None:
        buffer = self.buffers[target]
        try:
            if target == REDIS and self._catch_up_pending:
                self.recover_after_crash(now_ns)
            if len(buffer) or target in self._pending_mark:
                started = time.perf_counter()
                sent = 0
                for batch in buffer.batches(self.flush_batch):
                    self._send(target, batch)
                    sent += len(batch)
                mark = self._pending_mark.get(target)
                if mark is not None:
                    self._send(target, [mark])
                    sent += 1
                buffer.truncate(sent - (mark is not None))
                self._pending_mark.pop(target, None)
                self._closed(target, now_ns, time.perf_counter() - started, sent)
            if records:
                self._send(target, records)
                self._closed(target, now_ns, None, 0)
        except ServiceUnavailableError:
            self._buffer(target, records, now_ns)

    def _buffer(self, target: str, records: list[Fill | Mark], now_ns: int) -> None:
        """Keep what the server did not take: fills on disk, marks coalesced to the newest one."""
        outage = self._failure(target, now_ns)
        fills = [record for record in records if isinstance(record, Fill)]
        for record in records:
            if isinstance(record, Mark):
                outage.marks_tried += 1
                current = self._pending_mark.get(target)
                if current is None or record.ts_ns >= current.ts_ns:
                    self._pending_mark[target] = record
        if fills:
            mark = self._pending_mark.get(target)
            kept = [*fills, mark] if mark is not None else fills
            self.buffers[target].append(kept)  # raises DiskBufferFullError at the cap, naming the file
            self._pending_mark.pop(target, None)
            self.stats.buffered[target] += len(kept)
            outage.buffered += len(kept)

    def _send(self, target: str, records: Sequence[Fill | Mark]) -> None:
        if target == POSTGRES:
            fills = [r for r in records if isinstance(r, Fill)]
            marks = [r for r in records if isinstance(r, Mark)]
            if fills:
                self.ledger.record_fills(fills)
            if marks:
                self.ledger.record_marks(marks)
            return
        self._ensure_redis_state()
        # In order: fills are idempotent by event id, marks are plain overwrites.
        run: list[Fill] = []
        for record in records:
            if isinstance(record, Fill):
                run.append(record)
                continue
            if run:
                self.hot.apply_fills(run)
                run = []
            self.hot.apply_marks([record])
        if run:
            self.hot.apply_fills(run)

    def _ensure_redis_state(self) -> None:
        """Rebuild the hot state from the ledger when Redis lost it (a restart of a cache)."""
        if self.hot.exists():
            return
        self.stats.redis_rebuilds += 1
        fills = self.ledger.fills(self.run_id)
        self.hot.init(
            self.ledger.cash(self.run_id, self.initial_cash),
            positions=self.ledger.positions(self.run_id),
            last_event_id=max((f.event_id for f in fills), default=-1),
        )

    def _failure(self, target: str, now_ns: int) -> Outage:
        outage = self._open.get(target)
        if outage is None:
            outage = Outage(target=target, first_failure_ns=now_ns)
            self._open[target] = outage
            self.stats.outages.append(outage)
        return outage

    def _closed(self, target: str, now_ns: int, flush_seconds: float | None, flushed: int) -> None:
        outage = self._open.pop(target, None)
        if outage is not None:
            outage.recovered_ns = now_ns
            outage.flush_seconds = flush_seconds
            outage.flushed = flushed


__all__ = ["CRASH_POINT", "Outage", "StateWriter", "WriterCrash", "WriterStats"]
