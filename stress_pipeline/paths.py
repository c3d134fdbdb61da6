"""Every storage path of the project, built in one place.

Under ``$STRESS_HOME``::

    storage/<asset path>/<partition>.parquet       a table asset's partition (bars, reports)
    storage/<asset path>.parquet                   an unpartitioned table asset
    storage/<asset path>/<partition>.simresult     a simulation result bundle (record, curves, fills,
                                                   trades, events) in one file
    buffers/<run id>/<target>/                     the live-state writer's disk buffers
    steps/<run id>/<step>/<output>                 values passed between the steps of a sweep run
    reports/                                       generated reports
    reports/<report>/<partition>.html              a report of one partition (the certification report)
    alerts/<sender>/                               durable queues of alerts not yet delivered
    metrics/stress_pipeline.prom                   Prometheus metrics for node_exporter's textfile collector
    services/                                      the embedded PostgreSQL and Redis
    services/outages/                              the embedded pair planned outages stop (live-state runs)
    services/alert_receiver/                       the embedded alert receiver (record, log)

The IO managers, the live-state writer and the CLI ask this module; nothing else joins these names.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

TABLE_SUFFIX = ".parquet"
RESULT_SUFFIX = ".simresult"


class PartitionKeyError(ValueError):
    """A partition key that cannot name a file."""


@dataclass(frozen=True)
class StoragePaths:
    """The layout under one STRESS_HOME."""

    home: Path

    @property
    def storage(self) -> Path:
        return self.home / "storage"

    @property
    def buffers(self) -> Path:
        return self.home / "buffers"

    @property
    def step_outputs(self) -> Path:
        return self.home / "steps"

    @property
    def reports(self) -> Path:
        return self.home / "reports"

    @property
    def services(self) -> Path:
        return self.home / "services"

    @property
    def outage_services(self) -> Path:
        """The embedded PostgreSQL and Redis a live-state run with planned outages uses and stops."""
        return self.services / "outages"

    @property
    def alerts(self) -> Path:
        """Durable alert queues, one folder per sender."""
        return self.home / "alerts"

    @property
    def metrics_textfile(self) -> Path:
        """The Prometheus textfile node_exporter's textfile collector reads (point it at ``metrics/``)."""
        return self.home / "metrics" / "stress_pipeline.prom"

    @property
    def alert_receiver(self) -> Path:
        """The embedded alert receiver's record and log."""
        return self.services / "alert_receiver"

    def asset_file(self, asset_path: Sequence[str], partition: str | None, suffix: str = TABLE_SUFFIX) -> Path:
        """The file of one asset partition (or of an unpartitioned asset when ``partition`` is None)."""
        folder = self.storage.joinpath(*asset_path)
        if partition is None:
            return folder.with_name(folder.name + suffix)
        return folder / f"{checked_partition(partition)}{suffix}"

    def result_file(self, asset_path: Sequence[str], partition: str | None) -> Path:
        """The simulation result bundle of one asset partition."""
        return self.asset_file(asset_path, partition, RESULT_SUFFIX)

    def report_file(self, report: str, partition: str, suffix: str = ".html") -> Path:
        """One partition's generated report: ``reports/<report>/<partition><suffix>``."""
        return self.reports / checked_partition(report) / f"{checked_partition(partition)}{suffix}"

    def buffer_dir(self, run_id: str) -> Path:
        """The disk buffers of one live-state run."""
        return self.buffers / checked_partition(run_id)


def file_stamp(path: Path) -> tuple[int, int, int]:
    """What tells one version of a file from another without reading it: its inode, size and modification
    time (a file written in place or replaced by a rename gets a new stamp). FileNotFoundError if absent."""
    stat = Path(path).stat()
    return stat.st_ino, stat.st_size, stat.st_mtime_ns


def checked_partition(key: str) -> str:
    """``key`` if it can name a file on its own; otherwise a clear error."""
    if not key or key in {".", ".."} or "/" in key or "\\" in key or "\x00" in key:
        raise PartitionKeyError(f"partition key {key!r} cannot name a file")
    return key


def private_dir(path: Path) -> Path:
    """Create ``path`` and every missing folder above it as 0700 (``mkdir(parents=True)`` would give
    the folders above the umask's mode, 0755 by default); folders that exist keep their mode."""
    missing = []
    current = path
    while not current.exists():
        missing.append(current)
        current = current.parent
    for folder in reversed(missing):
        folder.mkdir(mode=0o700, exist_ok=True)
    return path
