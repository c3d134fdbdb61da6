"""What a killed run leaves behind, repaired by the next run on the same STRESS_HOME.

Each live-state run holds an exclusive ``flock`` on ``<buffer root>/<run id>/.lock`` while it runs
(:func:`run_lock`); the kernel drops it when the process dies, however it dies. A run directory
whose lock nobody holds therefore belongs to a dead run, and :func:`repair_leftovers` (called by
the next run before it starts) repairs it:

* its disk buffers (``postgres`` and ``redis``, see :mod:`~stress_pipeline.state.disk_buffer`) are
  replayed into the ledger: both hold only fills and marks the ledger may lack, and the ledger's
  writes are idempotent (run id + fill id), so a replay adds exactly what is missing. A buffer that
  cannot be replayed (damaged, or a run the ledger never registered) is left on disk and reported
  by run, buffer and record count, with the reason;
* its ledger run, if still ``running``, is marked ``aborted``;
* its directory is removed once everything in it was replayed.

Runs with planned outages write to an embedded pair of their own (``services/outages/``): their run
directory names that pair (``.servers``), and only a run on the same servers repairs it (a run on the
shared servers lists it in ``LeftoverReport.other_servers`` and leaves it).

The Redis hot state of a dead run is not rebuilt: it belongs to a run nobody reads any more, and the
ledger (the system of record) is whole again.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from stress_pipeline.paths import private_dir
from stress_pipeline.state.disk_buffer import FILE_NAME, DiskBuffer, DiskBufferError
from stress_pipeline.state.ledger import Ledger
from stress_pipeline.state.records import Fill, Mark

LOCK_NAME = ".lock"
SERVERS_NAME = ".servers"  # which servers the run wrote to: absent for the shared pair
TARGETS = ("postgres", "redis")
ABORTED = "aborted"
REPLAY_BATCH = 5_000


class RunInUseError(RuntimeError):
    """Another live process holds the run's lock."""


@dataclass
class LeftoverReport:
    replayed: dict[str, int] = field(default_factory=dict)  # run id -> records replayed into the ledger
    unreplayed: dict[str, str] = field(default_factory=dict)  # "run/buffer" -> "N record(s): reason"
    aborted: list[str] = field(default_factory=list)  # ledger runs marked aborted
    skipped_live: list[str] = field(default_factory=list)  # run directories whose run is alive
    other_servers: list[str] = field(default_factory=list)  # dead runs on other servers, left for their runs

    def summary(self) -> str:
        parts = [f"replayed {sum(self.replayed.values())} record(s) of {len(self.replayed)} dead run(s)"]
        if self.aborted:
            parts.append(f"marked {len(self.aborted)} run(s) aborted: {', '.join(self.aborted)}")
        for key, why in self.unreplayed.items():
            parts.append(f"NOT replayed {key}: {why}")
        if self.other_servers:
            parts.append(f"left {len(self.other_servers)} dead run(s) of other servers for a run on those: "
                         f"{', '.join(self.other_servers)}")  # fmt: skip
        return "; ".join(parts)


@contextlib.contextmanager
def run_lock(buffer_root: Path, run_id: str, *, servers: str = "") -> Iterator[Path]:
    """Hold the run's lock (its buffer directory, created 0700) for the block; raises RunInUseError
    when a live process holds it. ``servers`` names the servers the run writes to ("" the shared pair,
    ``"outages"`` the pair planned outages stop), recorded for :func:`repair_leftovers`."""
    directory = Path(buffer_root) / run_id
    private_dir(directory)
    fd = os.open(directory / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunInUseError(f"live-state run {run_id} is in use by another process ({directory})") from None
        if servers:
            marker = directory / SERVERS_NAME
            marker.write_text(servers + "\n")
            marker.chmod(0o600)
        yield directory
    finally:
        os.close(fd)


def repair_leftovers(
    buffer_root: Path, ledger: Ledger, *, current: str | None = None, servers: str = ""
) -> LeftoverReport:
    """Replay the buffers of every dead run under ``buffer_root`` that wrote to ``servers`` (as
    :func:`run_lock` names them) into ``ledger`` and mark those runs aborted (see the module docstring);
    ``current`` (the caller's own run) is left alone."""
    report = LeftoverReport()
    root = Path(buffer_root)
    if not root.is_dir():
        return report
    for directory in sorted(path for path in root.iterdir() if path.is_dir()):
        run_id = directory.name
        if run_id == current:
            continue
        with _dead_run(directory) as dead:
            if not dead:
                report.skipped_live.append(run_id)
                continue
            if _servers(directory) != servers:
                report.other_servers.append(run_id)
                continue
            complete = _replay(directory, run_id, ledger, report)
            if ledger.run_status(run_id) == "running":
                ledger.finish_run(run_id, ABORTED)
                report.aborted.append(run_id)
            if complete:
                shutil.rmtree(directory)
    return report


def _servers(directory: Path) -> str:
    try:
        return (directory / SERVERS_NAME).read_text().strip()
    except FileNotFoundError:
        return ""


@contextlib.contextmanager
def _dead_run(directory: Path) -> Iterator[bool]:
    """True (and the lock held for the block) when no live process holds the run's lock."""
    lock = directory / LOCK_NAME
    try:
        fd = os.open(lock, os.O_RDWR)
    except FileNotFoundError:
        yield True  # no lock file: a run directory that was never locked is nobody's
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


def _replay(directory: Path, run_id: str, ledger: Ledger, report: LeftoverReport) -> bool:
    """Replay the run's buffers into the ledger; False when one had to be left on disk."""
    complete = True
    for target in TARGETS:
        if not (directory / target / FILE_NAME).exists():
            continue
        buffer = DiskBuffer(directory / target)
        key = f"{run_id}/{target}"
        try:
            count = len(buffer)
            if count and ledger.run_status(run_id) is None:
                report.unreplayed[key] = f"{count} record(s): the ledger has no run {run_id!r}"
                complete = False
                continue
            for batch in buffer.batches(REPLAY_BATCH):
                fills = [record for record in batch if isinstance(record, Fill)]
                marks = [record for record in batch if isinstance(record, Mark)]
                if fills:
                    ledger.record_fills(fills)
                if marks:
                    ledger.record_marks(marks)
            buffer.truncate(count)
        except DiskBufferError as err:
            report.unreplayed[key] = f"{_count_lines(buffer.file)} line(s): {err}"
            complete = False
            continue
        report.replayed[run_id] = report.replayed.get(run_id, 0) + count
    return complete


def _count_lines(file: Path) -> int:
    with open(file, "rb") as source:
        return sum(block.count(b"\n") for block in iter(lambda: source.read(1 << 20), b""))


__all__ = ["ABORTED", "LeftoverReport", "RunInUseError", "repair_leftovers", "run_lock"]
