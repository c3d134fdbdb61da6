"""Monitoring coverage (seed 002, US-004 and test 2): every failure mode of the checklist, whether a
monitor watches it, whether its alert fired when its drill made the failure happen, and how fast.

A mode's driver is the drill that makes it happen (``drills.registry.FAILURE_MODE_DRILLS``): the
drill ran the mode's monitor on what its system exposed and stored each detection with the alert it
raised (:mod:`~stress_pipeline.monitoring.drill_detections`). The mode's row (``source`` ``drill``)
passes only if that drill's stored run holds a detection of the mode, the drill raised its alert, and
the slowest of its detections took no longer than the mode's limit
(:data:`~stress_pipeline.monitoring.crafted.DETECTION_LIMITS_S`, from first evidence to conclusion).

A mode no drill makes happen, or whose drill has not been run, is driven by its crafted stream
(:mod:`~stress_pipeline.monitoring.crafted`, ``drill`` ``crafted:<mode>``, ``source`` ``crafted``):
every monitor runs on it and the detections' alerts go to the endpoint. Such a row never passes:
the mode was not made to happen to the system by a drill, so it is ``not_run`` when its monitor
detected the crafted failure in time and the endpoint accepted the alert, and ``fail`` when it did
not. Coverage is the share of passing rows, 100% the only pass: it counts drills only.

A calm stream is run too: a monitor that fires on it raises false alarms, and its mode's row fails
however it did in its drill.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from stress_pipeline.drills.registry import FAILURE_MODE_DRILLS
from stress_pipeline.monitoring.alerts import Alert
from stress_pipeline.monitoring.crafted import DETECTION_LIMITS_S, calm_stream, crafted_stream, monitor_config
from stress_pipeline.monitoring.drill_detections import validate_detection_table
from stress_pipeline.monitoring.monitors import FAILURE_MODES, MONITORS, MonitorConfig, alerts_for, run_monitors

COVERAGE_COLUMNS = ("failure_mode", "monitored", "drill", "source", "fired", "detection_s", "limit_s", "outcome",
                    "detail")  # fmt: skip
OUTCOMES = ("pass", "fail", "not_run")
SOURCES = ("drill", "crafted")

#: Sends alerts, returns for each whether the endpoint accepted it.
Send = Callable[[list[Alert]], Sequence[bool]]


@dataclass(frozen=True)
class CoverageReport:
    table: pd.DataFrame  # COVERAGE_COLUMNS
    detections: pd.DataFrame  # every detection of every crafted stream run, with its stream
    false_alarms: pd.DataFrame  # detections on the calm stream
    alerts_sent: int  # alerts of the crafted streams sent to the endpoint
    alerts_accepted: int

    @property
    def percent(self) -> float:
        return coverage_percent(self.table)

    @property
    def passed(self) -> bool:
        return self.percent == 100.0 and not len(self.false_alarms)

    @property
    def by_source(self) -> dict[str, list[str]]:
        """The failure modes each source drove."""
        return {s: self.table.loc[self.table["source"] == s, "failure_mode"].tolist() for s in SOURCES}


def measure_coverage(
    send: Send, *, drills: Mapping[str, pd.DataFrame] | None = None, seed: int = 0,
    source: str = "stress-pipeline", tag: str = "coverage", config: MonitorConfig | None = None,
    modes: Sequence[str] = FAILURE_MODES, monitors: Mapping[str, Callable] | None = None,
    mode_drills: Mapping[str, str] = FAILURE_MODE_DRILLS,
) -> CoverageReport:  # fmt: skip
    """The coverage of ``modes``: each judged on the stored detections of its drill (``drills``: drill
    name -> its ``drill_detections`` table, for the drills that ran; ``mode_drills``: which drill makes
    each mode happen), else driven by its crafted stream through ``monitors`` (default: all) with
    ``config``, each detection's alert sent with ``send``. The calm stream runs through ``monitors``.

    ``tag`` prefixes every alert subject, so the events of one report are never folded into another's.
    """
    config = config or monitor_config()
    monitors = MONITORS if monitors is None else monitors
    stored = {name: validate_detection_table(table) for name, table in (drills or {}).items()}
    rows, found, sent, accepted = [], [], 0, 0
    calm = calm_stream(seed)
    false_alarms = run_monitors(calm.observation, config, monitors).assign(stream=calm.name)
    noisy = set(false_alarms["failure_mode"])
    for mode in modes:
        monitored, limit = mode in monitors, DETECTION_LIMITS_S[mode]
        drill = mode_drills.get(mode)
        if drill in stored:
            row = _from_drill(mode, drill, stored[drill], limit)
        else:
            row, detections, delivered = _from_crafted(mode, send, seed, source, tag, config, monitors, limit)
            sent, accepted = sent + len(delivered), accepted + int(delivered.sum())
            found.append(detections.assign(delivered=delivered))
            why = f"drill {drill} has not run" if drill else "no drill makes it happen"
            row["detail"] = f"{why}; {row['detail']}"
        if mode in noisy:  # a monitor raising false alarms does not pass either
            row.update(outcome="fail", detail=f"false alarm on the calm stream; {row['detail']}")
        if not monitored:
            row.update(outcome="fail", detail=f"no monitor; {row['detail']}")
        rows.append({"failure_mode": mode, "monitored": monitored, "limit_s": limit, **row})
    table = pd.DataFrame(rows, columns=list(COVERAGE_COLUMNS))
    validate_coverage(table)
    detections = pd.concat(found, ignore_index=True) if found else false_alarms.iloc[:0]
    return CoverageReport(table, detections, false_alarms, sent, accepted)


def coverage_percent(table: pd.DataFrame) -> float:
    """100 x the share of failure modes whose outcome is pass (0 for an empty table)."""
    return float(100.0 * (table["outcome"] == "pass").mean()) if len(table) else 0.0


def validate_coverage(table: pd.DataFrame) -> None:
    """Raise ValueError naming the column and row of the first value outside the contract."""
    missing = [c for c in COVERAGE_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"monitoring_coverage: missing column(s) {', '.join(missing)}")
    for column in ("monitored", "fired"):
        _check(table, column, table[column].map(lambda v: isinstance(v, bool | np.bool_)), "a bool")
    for column in ("failure_mode", "drill"):
        _check(table, column, table[column].map(lambda v: isinstance(v, str) and bool(v)), "a name")
    _check(table, "detail", table["detail"].map(lambda v: isinstance(v, str)), "a string")
    _check(table, "source", table["source"].isin(SOURCES), f"one of {', '.join(SOURCES)}")
    _check(table, "outcome", table["outcome"].isin(OUTCOMES), f"one of {', '.join(OUTCOMES)}")
    crafted = table["source"] == "crafted"
    _check(table, "drill", ~crafted | (table["drill"] == "crafted:" + table["failure_mode"]),
           "crafted:<failure_mode> on a crafted row")  # fmt: skip
    seconds = pd.to_numeric(table["detection_s"], errors="coerce")
    _check(table, "detection_s", ~(seconds < 0) & (seconds.notna() | ~table["fired"].astype(bool)),
           "seconds >= 0 (NaN only when not detected)")  # fmt: skip
    limits = pd.to_numeric(table["limit_s"], errors="coerce")
    _check(table, "limit_s", limits > 0, "seconds > 0")
    passed = table["outcome"] == "pass"
    _check(table, "outcome", ~(passed & ~(table["monitored"].astype(bool) & table["fired"].astype(bool))),
           "pass only when monitored and fired")  # fmt: skip
    _check(table, "outcome", ~(passed & crafted), "pass on a crafted row (only a drill can cover a mode)")
    _check(table, "outcome", ~(passed & (seconds > limits + 1e-9)), "pass when slower than limit_s")
    _check(table, "failure_mode", ~table["failure_mode"].duplicated(), "each failure mode once")


def _from_drill(mode: str, drill: str, detections: pd.DataFrame, limit_s: float) -> dict[str, object]:
    """The row of ``mode`` from the detections its drill stored."""
    mine = detections[detections["failure_mode"] == mode]
    if not len(mine):
        return {"drill": drill, "source": "drill", "fired": False, "detection_s": float("nan"), "outcome": "fail",
                "detail": f"its monitor detected nothing while {drill} ran"}  # fmt: skip
    alerted = int((mine["alert"] != "").sum())
    fired = alerted == len(mine)
    slowest = float(mine["detection_s"].max())
    ok = fired and slowest <= limit_s + 1e-9
    detail = (f"{len(mine)} detection(s) in {drill}, slowest {slowest:.3g} s (limit {limit_s:g} s), "
              f"{alerted} alert(s) raised")  # fmt: skip
    return {"drill": drill, "source": "drill", "fired": fired, "detection_s": slowest,
            "outcome": "pass" if ok else "fail", "detail": detail}  # fmt: skip


def _from_crafted(
    mode: str, send: Send, seed: int, source: str, tag: str, config: MonitorConfig,
    monitors: Mapping[str, Callable], limit_s: float,
) -> tuple[dict[str, object], pd.DataFrame, np.ndarray]:  # fmt: skip
    """The row of ``mode`` driven by its crafted stream, the stream's detections and which were delivered."""
    stream = crafted_stream(mode, seed)
    detections = run_monitors(stream.observation, config, monitors).assign(stream=stream.name)
    alerts = alerts_for(detections, source=source, subject_prefix=f"{tag}/{stream.name}")
    delivered = np.asarray(list(send(alerts)) if alerts else [], dtype=bool)
    mine = (detections["failure_mode"] == mode).to_numpy()
    after = (detections["detected_at"] >= stream.fault_at).to_numpy()
    own, early = mine & after, mine & ~after  # before the failure began: a false alarm
    fired = bool(delivered[own].any()) if own.any() else False
    first = detections.loc[own, "detected_at"].min() if own.any() else None
    detection_s = (first - stream.fault_at).total_seconds() if first is not None else float("nan")
    ok = fired and not early.any() and detection_s <= limit_s + 1e-9
    if ok:
        detail = f"crafted stream: detected in {detection_s:.3g} s, alert accepted"
    elif early.any():
        detail = "crafted stream: fired before the failure began"
    elif not own.any():
        detail = "crafted stream: its monitor missed the failure"
    else:
        detail = f"crafted stream: detected in {detection_s:.3g} s (limit {limit_s:g} s), alert " + (
            "accepted" if fired else "refused")  # fmt: skip
    row = {"drill": stream.name, "source": "crafted", "fired": fired, "detection_s": detection_s,
           "outcome": "not_run" if ok else "fail", "detail": detail}  # fmt: skip
    return row, detections, delivered


def _check(table: pd.DataFrame, column: str, good: pd.Series, expected: str) -> None:
    bad = np.flatnonzero(~good.to_numpy(dtype=bool))
    if len(bad):
        row = int(bad[0])
        value = table[column].iloc[row]
        value = value.item() if isinstance(value, np.generic) else value
        raise ValueError(f"monitoring_coverage: column {column!r}, row {row}: {value!r} "
                         f"is not {expected}")  # fmt: skip
