"""What every drill shares: the shared clock, the timeline, the criteria table and the alert path.

A drill makes one failure happen to the system under test, watches what the system does, and judges
the outcome against the pass criteria of the seeds. Its result is:

* the ``drills`` table (:data:`DRILL_COLUMNS`, one row per criterion): the value measured, the
  comparison and threshold, and the outcome ``pass`` / ``fail`` / ``not_exercised`` (a value that was
  never measured is NaN and never passes); recovery drills add a ``recovery_s`` row;
* the timeline (:data:`TIMELINE_COLUMNS`): when the fault started, when it was detected, when the
  alert was raised, when the system recovered, in the drill's clock.

Drills that span minutes run on a :class:`SimClock` that every component of the drill shares (they
take ``clock.now`` and ``clock.sleep`` instead of the wall clock), so a 15-minute outage takes
milliseconds and its timings are exact. Alerts are PagerDuty Events v2 triggers
(``monitoring.alerts.trigger``) put in the durable alert queue of the drill's directory
(``monitoring.queue.AlertQueue``), from where the alert sender delivers them when an endpoint is
configured.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from stress_pipeline.monitoring.alerts import trigger
from stress_pipeline.monitoring.queue import AlertQueue

DRILL_COLUMNS = ("drill", "criterion", "comparison", "threshold", "value", "outcome", "detail")
TIMELINE_COLUMNS = ("t_s", "kind", "what")
TIMELINE_KINDS = ("fault", "detection", "alert", "action", "recovery", "end")
#: The monitors' detections during a drill: failure mode, first evidence and conclusion (drill seconds).
DETECTION_COLUMNS = ("failure_mode", "evidence_s", "detected_s")
OUTCOMES = ("pass", "fail", "not_exercised")
_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt, "<=": operator.le, "==": operator.eq, ">=": operator.ge, ">": operator.gt,
}  # fmt: skip
EPOCH = datetime(2026, 1, 5, tzinfo=UTC)  # the drills' simulated clock starts here (a Monday, 00:00 UTC)


class DrillConfigError(ValueError):
    """A drill asked for by a name that does not exist, or configured with a value it cannot take."""


class SimClock:
    """A clock the components of one drill share: ``now()`` in seconds, ``sleep`` advances it."""

    def __init__(self, start_s: float = 0.0) -> None:
        self._now = float(start_s)

    def now(self) -> float:
        return self._now

    def sleep(self, seconds: float) -> None:
        if seconds < 0 or not math.isfinite(seconds):
            raise ValueError(f"cannot sleep {seconds!r} s")
        self._now += seconds

    def advance_to(self, t_s: float) -> None:
        if t_s < self._now:
            raise ValueError(f"the clock does not go back: now {self._now}, asked {t_s}")
        self._now = float(t_s)

    def moment(self) -> datetime:
        """The clock's time as a date (for alert timestamps)."""
        return datetime.fromtimestamp(EPOCH.timestamp() + self._now, UTC)


@dataclass
class DrillRecord:
    """What one drill run collects while it runs."""

    drill: str
    clock: Callable[[], float]
    alerts: AlertQueue | None = None
    rows: list[dict[str, object]] = field(default_factory=list)
    timeline: list[tuple[float, str, str]] = field(default_factory=list)
    raised: list[str] = field(default_factory=list)  # dedup keys, in order
    detections: list[tuple[str, float, float]] = field(default_factory=list)  # (failure mode, evidence, detected)

    def mark(self, kind: str, what: str, t_s: float | None = None) -> float:
        if kind not in TIMELINE_KINDS:
            raise ValueError(f"timeline kind {kind!r}: expected one of {', '.join(TIMELINE_KINDS)}")
        t = self.clock() if t_s is None else float(t_s)
        self.timeline.append((t, kind, what))
        return t

    def first(self, kind: str) -> float:
        """The time of the first timeline entry of ``kind`` (NaN when there is none)."""
        return next((t for t, k, _ in self.timeline if k == kind), math.nan)

    def alert(self, failure: str, subject: str, summary: str, *, severity: str = "critical",
              moment: datetime | None = None, **details: object) -> None:  # fmt: skip
        """Raise a PagerDuty trigger: into the durable queue, and onto the timeline."""
        event = trigger(failure, subject, summary, severity=severity, source=f"stress-pipeline/drills/{self.drill}",
                        timestamp=moment, component=subject, custom_details=details)  # fmt: skip
        if self.alerts is not None:
            self.alerts.put(event.unrouted_body())
        self.raised.append(event.dedup_key)
        self.mark("alert", f"{failure}: {summary}")

    def check(self, criterion: str, value: float | bool | None, comparison: str, threshold: float | bool,
              detail: str = "") -> bool:  # fmt: skip
        """Judge ``value`` against ``threshold``; None or NaN is ``not_exercised`` (never a pass)."""
        if comparison not in _COMPARE:
            raise ValueError(f"comparison {comparison!r}: expected one of {', '.join(_COMPARE)}")
        number = math.nan if value is None else float(value)
        outcome = "not_exercised" if math.isnan(number) else (
            "pass" if _COMPARE[comparison](number, float(threshold)) else "fail")  # fmt: skip
        self.rows.append({"drill": self.drill, "criterion": criterion, "comparison": comparison,
                          "threshold": float(threshold), "value": number, "outcome": outcome, "detail": detail})
        return outcome == "pass"

    def close(self) -> None:
        """Let go of the alert queue (what was put stays on disk for the sender)."""
        if self.alerts is not None:
            self.alerts.close()
            self.alerts = None

    def result(self) -> DrillResult:
        table = validate_drill_table(pd.DataFrame(self.rows, columns=list(DRILL_COLUMNS)))
        timeline = pd.DataFrame(sorted(self.timeline, key=lambda r: r[0]), columns=list(TIMELINE_COLUMNS))
        detections = pd.DataFrame(self.detections, columns=list(DETECTION_COLUMNS))
        return DrillResult(self.drill, table, timeline, tuple(self.raised), detections)


@dataclass(frozen=True)
class DrillResult:
    drill: str
    table: pd.DataFrame
    timeline: pd.DataFrame
    alerts: tuple[str, ...]  # dedup keys raised, in order
    detections: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=list(DETECTION_COLUMNS)))

    @property
    def passed(self) -> bool:
        return bool(len(self.table)) and bool((self.table["outcome"] == "pass").all())

    def summary(self) -> str:
        counts = self.table["outcome"].value_counts().to_dict()
        verdict = "PASS" if self.passed else "FAIL"
        return f"{self.drill}: {verdict} ({', '.join(f'{v} {k}' for k, v in sorted(counts.items()))})"


def validate_drill_table(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` itself when it has the drills shape; else a ValueError naming the column and row."""
    missing = [c for c in DRILL_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"drills table: missing column(s) {', '.join(missing)}")
    for column in ("drill", "criterion", "comparison"):
        bad = table.index[~table[column].map(lambda v: isinstance(v, str) and bool(v))]
        if len(bad):
            raise ValueError(f"drills table: column {column}, row {bad[0]}: expected a non-empty string")
    bad = table.index[~table["outcome"].isin(OUTCOMES)]
    if len(bad):
        raise ValueError(f"drills table: column outcome, row {bad[0]}: {table['outcome'][bad[0]]!r} is not one of "
                         f"{', '.join(OUTCOMES)}")  # fmt: skip
    value = pd.to_numeric(table["value"], errors="coerce").to_numpy(dtype=float)
    wrong = np.flatnonzero(np.isnan(value) != (table["outcome"].to_numpy() == "not_exercised"))
    if len(wrong):
        row = table.index[wrong[0]]
        raise ValueError(f"drills table: column value, row {row}: NaN exactly when the outcome is not_exercised")
    return table


def alert_queue(directory: str | Path | None) -> AlertQueue | None:
    return None if directory is None else AlertQueue(directory)
