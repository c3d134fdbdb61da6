"""What the monitors detected while a drill ran, as the table the drill stores beside its criteria.

A drill runs the monitors of the failure modes it makes happen on what its system exposed
(``drills/observe.py``); each detection is recorded with the time of its first evidence and the time
the monitor could conclude, and raises a PagerDuty trigger whose dedup key names the failure mode
(``monitoring.alerts.dedup_key``). This table keeps that record per drill run, one row per detection:

==============  ==========================================================================
column          meaning
==============  ==========================================================================
drill           the drill that ran
failure_mode    the mode the monitor detected (one of ``monitors.FAILURE_MODES``)
evidence_s      drill clock: the first evidence the monitor used (the failure became visible)
detected_s      drill clock: when the monitor concluded
detection_s     ``detected_s - evidence_s``: how long the monitor took
alert           dedup key of the alert the drill raised for this detection ("" when it raised none)
==============  ==========================================================================

``monitoring_coverage`` reads it: whether a mode's alert fired when its drill ran comes from here,
never from what the drill knows it injected.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa

from stress_pipeline.monitoring.alerts import dedup_key
from stress_pipeline.monitoring.monitors import FAILURE_MODES

DRILL_DETECTION_SCHEMA = pa.schema(
    [
        pa.field("drill", pa.string(), nullable=False),
        pa.field("failure_mode", pa.string(), nullable=False),
        pa.field("evidence_s", pa.float64(), nullable=False),
        pa.field("detected_s", pa.float64(), nullable=False),
        pa.field("detection_s", pa.float64(), nullable=False),
        pa.field("alert", pa.string(), nullable=False),
    ]
)
DRILL_DETECTION_COLUMNS = tuple(DRILL_DETECTION_SCHEMA.names)
_NAME = "drill_detections"


def detection_table(drill: str, detections: pd.DataFrame, alerts: Sequence[str]) -> pd.DataFrame:
    """The stored table of one drill run from its detections (``failure_mode, evidence_s, detected_s``,
    as ``DrillResult.detections``) and the dedup keys it raised, in order (``DrillResult.alerts``).

    The k-th detection of a mode is paired with the k-th alert raised for that mode (the drills raise
    one alert per detection, in the order of the detections)."""
    raised: dict[str, list[str]] = {}
    for key in alerts:
        for mode in FAILURE_MODES:
            if key.startswith(_key_prefix(mode)):
                raised.setdefault(mode, []).append(key)
    seen: dict[str, int] = {}
    paired = []
    for mode in detections["failure_mode"]:
        k = seen.get(mode, 0)
        seen[mode] = k + 1
        keys = raised.get(mode, [])
        paired.append(keys[k] if k < len(keys) else "")
    evidence = pd.to_numeric(detections["evidence_s"], errors="coerce").to_numpy(dtype=float)
    detected = pd.to_numeric(detections["detected_s"], errors="coerce").to_numpy(dtype=float)
    table = pd.DataFrame({
        "drill": [drill] * len(detections), "failure_mode": detections["failure_mode"].to_numpy(dtype=object),
        "evidence_s": evidence, "detected_s": detected, "detection_s": detected - evidence,
        "alert": np.asarray(paired, dtype=object),
    })  # fmt: skip
    return validate_detection_table(table)


def validate_detection_table(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with the columns in order and canonical dtypes, or ValueError naming the column and row.

    Refused: a missing or unknown column, a failure mode outside the checklist, an empty drill name, a
    time that is missing, infinite or negative, a conclusion before its evidence, a ``detection_s``
    that is not ``detected_s - evidence_s``, more than one drill in one table."""
    missing = [c for c in DRILL_DETECTION_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"{_NAME}: missing column(s) {', '.join(missing)}; "
                         f"expected {', '.join(DRILL_DETECTION_COLUMNS)}")  # fmt: skip
    extra = [str(c) for c in table.columns if c not in DRILL_DETECTION_COLUMNS]
    if extra:
        raise ValueError(f"{_NAME}: unknown column(s) {', '.join(extra)}")
    out = table.loc[:, list(DRILL_DETECTION_COLUMNS)].reset_index(drop=True)
    for column, empty_ok in (("drill", False), ("failure_mode", False), ("alert", True)):
        values = out[column]
        good = values.map(lambda v, empty_ok=empty_ok: isinstance(v, str) and (empty_ok or bool(v)))
        _first_bad(out, column, good, "a string" if empty_ok else "a non-empty string")
        out[column] = values.astype(object)
    _first_bad(out, "failure_mode", out["failure_mode"].isin(FAILURE_MODES), "a failure mode of the checklist")
    if out["drill"].nunique() > 1:
        _first_bad(out, "drill", out["drill"] == out["drill"].iloc[0], f"the table's drill {out['drill'].iloc[0]!r}")
    for column in ("evidence_s", "detected_s", "detection_s"):
        try:
            out[column] = pd.to_numeric(out[column], errors="raise").astype(np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{_NAME}: column {column}: expected seconds ({exc})") from None
        values = out[column].to_numpy()
        _first_bad(out, column, pd.Series(np.isfinite(values) & (values >= 0)), "seconds >= 0")
    gap = (out["detected_s"] - out["evidence_s"]).to_numpy()
    _first_bad(out, "detection_s", pd.Series(np.isclose(out["detection_s"].to_numpy(), gap, rtol=0, atol=1e-9)),
               "detected_s - evidence_s")  # fmt: skip
    return pa.Table.from_pandas(out, schema=DRILL_DETECTION_SCHEMA, preserve_index=False).to_pandas()


def empty_detection_table() -> pd.DataFrame:
    return DRILL_DETECTION_SCHEMA.empty_table().to_pandas()


def _key_prefix(mode: str) -> str:
    """The start every dedup key of ``mode`` has, whatever its subject."""
    return dedup_key(mode, "subject").removesuffix("subject")


def _first_bad(table: pd.DataFrame, column: str, good: pd.Series, expected: str) -> None:
    bad = np.flatnonzero(~good.to_numpy(dtype=bool))
    if len(bad):
        row = int(bad[0])
        value = table[column].iloc[row]
        value = value.item() if isinstance(value, np.generic) else value
        raise ValueError(f"{_NAME}: column {column}, row {row}: {value!r} is not {expected}")
