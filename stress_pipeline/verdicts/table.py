"""The verdict table: one row per scenario and criterion, the shape every consumer reads.

The ``scenario_verdicts`` asset stores it, the certification reads it, the CLI and the report print
it. A row says what was measured (``value``), against what (``comparison``, ``threshold``), the
outcome, a sentence a person can read (``detail``), the asset the value came from (``source``) and
the stress window it was measured in. The special criterion ``exercised`` records whether the
scenario stressed the system at all: a scenario that held no position when the shock began, or
never traded in its window, is "not exercised", never a silent pass.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pyarrow as pa

OUTCOMES = ("pass", "fail", "not_exercised")
COMPARISONS = ("<=", ">=", "==", "is")
#: The criterion that says whether the scenario stressed the system (value 1 or 0).
EXERCISED = "exercised"

VERDICT_SCHEMA = pa.schema(
    [
        pa.field("scenario", pa.string(), nullable=False),
        pa.field("scenario_type", pa.string(), nullable=False),
        pa.field("severity", pa.string(), nullable=False),
        pa.field("criterion", pa.string(), nullable=False),
        pa.field("comparison", pa.string(), nullable=False),
        pa.field("threshold", pa.float64()),
        pa.field("value", pa.float64()),
        pa.field("outcome", pa.string(), nullable=False),
        pa.field("detail", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("window_start", pa.timestamp("ns", tz="UTC")),
        pa.field("window_end", pa.timestamp("ns", tz="UTC")),
    ]
)
VERDICT_COLUMNS = tuple(VERDICT_SCHEMA.names)
_STRING_COLUMNS = ("scenario", "scenario_type", "severity", "criterion", "comparison", "outcome", "detail", "source")
_TS_DTYPE = pd.DatetimeTZDtype("ns", "UTC")
OUTCOME_COLUMNS = ("scenario", "scenario_type", "severity", "outcome", "failed")


def empty_verdict_table() -> pd.DataFrame:
    """An empty table with the verdict columns and dtypes."""
    return validate_verdict_table(VERDICT_SCHEMA.empty_table().to_pandas())


def validate_verdict_table(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with the verdict columns in order and canonical dtypes, or :class:`ValueError` naming the
    column (and the row) that does not fit. Nothing is coerced silently: a missing value where one is
    required, an unknown outcome or comparison, or a window that ends before it starts is refused."""
    missing = [c for c in VERDICT_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(
            f"verdict table: missing column(s) {', '.join(missing)}; expected {', '.join(VERDICT_COLUMNS)}"
        )
    extra = [c for c in df.columns if c not in VERDICT_COLUMNS]
    if extra:
        raise ValueError(f"verdict table: unknown column(s) {', '.join(map(str, extra))}")
    out = df.loc[:, list(VERDICT_COLUMNS)].reset_index(drop=True)
    for column in _STRING_COLUMNS:
        values = out[column]
        bad = values.isna() | ~values.map(lambda v: isinstance(v, str))
        if bad.any():
            row = int(np.argmax(bad.to_numpy()))
            raise ValueError(f"verdict table: column {column}, row {row}: expected a string, got {values.iloc[row]!r}")
        out[column] = values.astype(object)
    for column, allowed in (("outcome", OUTCOMES), ("comparison", COMPARISONS)):
        bad = ~out[column].isin(allowed)
        if bad.any():
            row = int(np.argmax(bad.to_numpy()))
            raise ValueError(
                f"verdict table: column {column}, row {row}: {out[column].iloc[row]!r} "
                f"is not one of {', '.join(allowed)}"
            )
    for column in ("threshold", "value"):
        try:
            out[column] = pd.to_numeric(out[column], errors="raise").astype(np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"verdict table: column {column}: expected numbers or nulls ({exc})") from None
        infinite = np.isinf(out[column].to_numpy())
        if infinite.any():
            row = int(np.argmax(infinite))
            raise ValueError(f"verdict table: column {column}, row {row}: infinite value")
    for column in ("window_start", "window_end"):
        try:
            out[column] = pd.to_datetime(out[column], utc=True).astype(_TS_DTYPE)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"verdict table: column {column}: expected UTC timestamps ({exc})") from None
    backwards = (out["window_end"] < out["window_start"]).to_numpy()
    if backwards.any():
        row = int(np.argmax(backwards))
        raise ValueError(f"verdict table: row {row}: window_end is before window_start")
    boolean = (out["comparison"] == "is").to_numpy()
    needs_threshold = ~boolean & out["threshold"].isna().to_numpy() & (out["criterion"] != EXERCISED).to_numpy()
    if needs_threshold.any():
        row = int(np.argmax(needs_threshold))
        raise ValueError(
            f"verdict table: column threshold, row {row}: criterion {out['criterion'].iloc[row]!r} "
            f"compares with {out['comparison'].iloc[row]!r} but has no threshold"
        )
    duplicated = out.duplicated(["scenario", "criterion"]).to_numpy()
    if duplicated.any():
        row = int(np.argmax(duplicated))
        raise ValueError(
            f"verdict table: row {row}: scenario {out['scenario'].iloc[row]!r} has criterion "
            f"{out['criterion'].iloc[row]!r} twice"
        )
    return out


def scenario_outcomes(table: pd.DataFrame) -> pd.DataFrame:
    """One row per scenario: ``fail`` if any criterion fails, else ``not_exercised`` if its
    ``exercised`` row says so, else ``pass``; ``failed`` joins the details of the failed criteria
    with "; ". Scenarios keep their order of first appearance."""
    table = validate_verdict_table(table)
    rows = []
    for scenario, group in table.groupby("scenario", sort=False):
        failed = group[group["outcome"] == "fail"]
        if len(failed):
            outcome = "fail"
        elif (group["outcome"] == "not_exercised").any():
            outcome = "not_exercised"
        else:
            outcome = "pass"
        first = group.iloc[0]
        rows.append(
            {
                "scenario": scenario,
                "scenario_type": first["scenario_type"],
                "severity": first["severity"],
                "outcome": outcome,
                "failed": "; ".join(failed["detail"]),
            }
        )
    return pd.DataFrame(rows, columns=list(OUTCOME_COLUMNS))


def finite_or_none(value: float | None) -> float | None:
    """``value`` as a float, or None when it is missing or not a finite number (a value that was not
    measured is null in the table, never 0)."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None
