"""What a run of the CLI's runner reports: each (asset, partition) outcome, each check verdict, the
timing of each run and the summary of a whole call (see :mod:`~stress_pipeline.defs.runner`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

# Check verdicts, as the CLI prints them and the UI shows them.
PASSED, FAILED, WARNED, ERRORED, SKIPPED = "passed", "failed", "warn", "error", "skipped"


@dataclass(frozen=True)
class CheckVerdict:
    """One check's verdict on one partition (``partition`` is None for an unpartitioned check).

    ``status``: passed; failed; warn (failed with WARN severity); error (the check's step raised, or it
    was planned in a run that failed and never evaluated: what the Dagster UI shows as "Execution
    failed"); skipped (not evaluated although nothing in its run failed).
    """

    asset: str
    check: str
    partition: str | None
    status: str
    description: str | None = None
    metadata: Mapping[str, object] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status in (PASSED, WARNED)


@dataclass
class StepOutcome:
    """What happened to one asset partition in a run.

    ``step_seconds`` is the time of the asset's step, which covers every partition of its run;
    ``seconds`` is that time shared out over those partitions.
    """

    asset: str
    partition: str | None
    status: str  # materialized | failed | skipped
    seconds: float
    metadata: dict[str, object] = field(default_factory=dict)
    checks: dict[str, bool] = field(default_factory=dict)
    check_metadata: dict[str, dict[str, object]] = field(default_factory=dict)
    warnings: set[str] = field(default_factory=set)  # checks that failed with WARN severity
    error: str | None = None
    step_seconds: float = 0.0
    verdicts: list[CheckVerdict] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Materialised, and every check passed or failed only with WARN severity."""
        return self.status == "materialized" and all(verdict.ok for verdict in self.verdicts)


@dataclass(frozen=True)
class StepDone:
    """A step that just finished: what it ran (assets or checks), for which partitions, in how long."""

    names: tuple[str, ...]
    kind: str  # asset | check
    partitions: tuple[str | None, ...]
    seconds: float
    ok: bool
    error: str | None = None


@dataclass(frozen=True)
class RunTiming:
    """One in-process run: its label, wall time, and the time its steps took."""

    label: str
    seconds: float
    step_seconds: float


@dataclass
class RunSummary:
    """Everything a call of :meth:`Runner.run` did."""

    steps: list[StepOutcome] = field(default_factory=list)
    checks: list[CheckVerdict] = field(default_factory=list)
    runs: list[RunTiming] = field(default_factory=list)
    group_seconds: dict[str, float] = field(default_factory=dict)  # asset group -> its steps' time
    # The other processes' steps' time by asset group, and the longest wall time of those running beside
    # (see defs/beside.py).
    beside_seconds: dict[str, float] = field(default_factory=dict)
    beside_wall_seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return bool(self.steps) and all(step.ok for step in self.steps) and all(v.ok for v in self.checks)

    def merge(self, theirs: RunSummary) -> None:
        """Add another process's summary; its time by group ran meanwhile (``beside_seconds``)."""
        self.steps.extend(theirs.steps)
        self.checks.extend(theirs.checks)
        self.runs.extend(theirs.runs)
        for group, seconds in theirs.group_seconds.items():
            self.beside_seconds[group] = self.beside_seconds.get(group, 0.0) + seconds

    @property
    def overhead_seconds(self) -> float:
        """Wall time of the runs not spent in a step: Dagster's run start, planning, event writes."""
        return sum(run.seconds - run.step_seconds for run in self.runs)
