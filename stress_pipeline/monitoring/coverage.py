"""Monitoring coverage (seed 002, US-004 and test 2): every failure mode of the checklist, whether a
monitor watches it, whether its alert fired when the failure was made to happen, and how fast.

Each failure mode is driven by a stream in which it happens (until the drills produce their own
streams, the crafted ones of :mod:`~stress_pipeline.monitoring.crafted`, named ``crafted:<mode>``);
every monitor runs on what the stream exposes, every detection becomes a PagerDuty trigger sent
through the real delivery path, and the mode's row passes only if its own monitor detected it
within its limit (:data:`~stress_pipeline.monitoring.crafted.DETECTION_LIMITS_S`) and the endpoint
accepted the alert. Coverage is the share of passing rows; 100% is the only pass. A calm stream is
run too: a monitor that fires on it raises false alarms, and its mode's row fails as surely as a miss.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from stress_pipeline.monitoring.alerts import Alert
from stress_pipeline.monitoring.crafted import DETECTION_LIMITS_S, calm_stream, crafted_stream, monitor_config
from stress_pipeline.monitoring.monitors import FAILURE_MODES, MONITORS, MonitorConfig, alerts_for, run_monitors

COVERAGE_COLUMNS = ("failure_mode", "monitored", "drill", "fired", "detection_s", "outcome")
OUTCOMES = ("pass", "fail", "not_run")
#: What drives the modes here until drills exist (shown in the asset's metadata).
DRIVER = "crafted realistic event stream per failure mode (monitoring/crafted.py), no drill yet"

#: Sends alerts, returns for each whether the endpoint accepted it.
Send = Callable[[list[Alert]], Sequence[bool]]


@dataclass(frozen=True)
class CoverageReport:
    table: pd.DataFrame  # COVERAGE_COLUMNS
    detections: pd.DataFrame  # every detection of every stream, with its stream
    false_alarms: pd.DataFrame  # detections on the calm stream
    alerts_sent: int
    alerts_accepted: int

    @property
    def percent(self) -> float:
        return coverage_percent(self.table)

    @property
    def passed(self) -> bool:
        return self.percent == 100.0 and not len(self.false_alarms)


def measure_coverage(
    send: Send, *, seed: int = 0, source: str = "stress-pipeline", tag: str = "coverage",
    config: MonitorConfig | None = None, modes: Sequence[str] = FAILURE_MODES,
    monitors: dict[str, Callable] | None = None,
) -> CoverageReport:  # fmt: skip
    """Drive each of ``modes`` with its crafted stream and the calm stream through ``monitors``
    (default: all), send every detection's alert with ``send``; the coverage table and the evidence.

    ``tag`` prefixes every alert subject, so the events of one report are never folded into another's.
    """
    config = config or monitor_config()
    monitors = MONITORS if monitors is None else monitors
    rows, found, sent, accepted = [], [], 0, 0
    calm = calm_stream(seed)
    false_alarms = _detect(calm.observation, config, monitors).assign(stream=calm.name)
    noisy = set(false_alarms["failure_mode"])
    for mode in modes:
        stream = crafted_stream(mode, seed)
        detections = _detect(stream.observation, config, monitors).assign(stream=stream.name)
        alerts = alerts_for(detections, source=source, subject_prefix=f"{tag}/{stream.name}")
        delivered = np.asarray(list(send(alerts)) if alerts else [], dtype=bool)
        sent, accepted = sent + len(alerts), accepted + int(delivered.sum())
        mine = (detections["failure_mode"] == mode).to_numpy()
        after = (detections["detected_at"] >= stream.fault_at).to_numpy()
        own, early = mine & after, mine & ~after  # before the failure began: a false alarm
        fired = bool(delivered[own].any()) if own.any() else False
        first = detections.loc[own, "detected_at"].min() if own.any() else None
        detection_s = (first - stream.fault_at).total_seconds() if first is not None else float("nan")
        monitored = mode in monitors
        quiet = mode not in noisy and not early.any()  # a monitor raising false alarms does not pass either
        ok = monitored and fired and quiet and detection_s <= DETECTION_LIMITS_S[mode] + 1e-9
        rows.append((mode, monitored, stream.name, fired, detection_s, "pass" if ok else "fail"))
        found.append(detections.assign(delivered=delivered))
    table = pd.DataFrame(rows, columns=list(COVERAGE_COLUMNS))
    validate_coverage(table)
    detections = pd.concat(found, ignore_index=True) if found else false_alarms
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
    _check(table, "failure_mode", table["failure_mode"].map(lambda v: isinstance(v, str) and bool(v)), "a name")
    _check(table, "drill", table["drill"].map(lambda v: isinstance(v, str)), "a string")
    _check(table, "outcome", table["outcome"].isin(OUTCOMES), f"one of {', '.join(OUTCOMES)}")
    seconds = pd.to_numeric(table["detection_s"], errors="coerce")
    _check(table, "detection_s", ~(seconds < 0) & (seconds.notna() | ~table["fired"].astype(bool)),
           "seconds >= 0 (NaN only when not detected)")  # fmt: skip
    passed_without = (table["outcome"] == "pass") & ~(table["monitored"].astype(bool) & table["fired"].astype(bool))
    _check(table, "outcome", ~passed_without, "pass only when monitored and fired")
    duplicated = table["failure_mode"].duplicated()
    _check(table, "failure_mode", ~duplicated, "each failure mode once")


def _detect(observation, config: MonitorConfig, monitors: dict[str, Callable]) -> pd.DataFrame:
    return run_monitors(observation, config, monitors)


def _check(table: pd.DataFrame, column: str, good: pd.Series, expected: str) -> None:
    bad = np.flatnonzero(~good.to_numpy(dtype=bool))
    if len(bad):
        row = int(bad[0])
        value = table[column].iloc[row]
        value = value.item() if isinstance(value, np.generic) else value
        raise ValueError(f"monitoring_coverage: column {column!r}, row {row}: {value!r} "
                         f"is not {expected}")  # fmt: skip
