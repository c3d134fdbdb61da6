"""The invariants every stressed table keeps, checked on what was stored.

Outside rows flagged ``corrupted``: high >= max(open, close), low <= min(open, close), prices > 0,
volume >= 0, spread >= 0. Where a transform promises a drop, the realised drop equals it within
``drop_tolerance`` (0.1 percentage point). And the stored table equals a fresh application of the same
scenario to the same base bars, which is what "reproducible" means. Where rows are corrupted on
purpose, the market quality suite must report every one of them (with the base data's own gap ratio
as the allowed limit, so that only added gaps count).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from stress_pipeline.market.ohlc import ohlc_breaks
from stress_pipeline.market.quality import gap_ratio, validate_bars
from stress_pipeline.scenarios.stress_run import stress_scenario

DROP_TOLERANCE = 0.001


@dataclass(frozen=True)
class InvariantReport:
    passed: bool
    failures: tuple[str, ...]
    checked_rows: int
    drops: list[dict[str, object]]


def ohlc_violations(stressed: pd.DataFrame) -> dict[str, int]:
    """Count of rows breaking each rule, outside rows flagged corrupted (NaN counts as a break).

    The price rules are the market's OHLC rule (:func:`~stress_pipeline.market.ohlc.ohlc_breaks`): a row
    with a missing or non-positive price counts under ``prices finite and > 0`` only.
    """
    clean = stressed[~stressed["corrupted"].to_numpy(dtype=bool)]
    breaks = ohlc_breaks(*(clean[col].to_numpy(dtype=np.float64) for col in ("open", "high", "low", "close")))
    with np.errstate(invalid="ignore"):
        rules = {
            "high >= max(open, close)": breaks.high_below,
            "low <= min(open, close)": breaks.low_above,
            "prices finite and > 0": breaks.bad_value,
            "volume >= 0": ~(clean["volume"].to_numpy(dtype=np.float64) >= 0),
            "spread_bps >= 0": ~(clean["spread_bps"].to_numpy(dtype=np.float64) >= 0),
        }
    return {name: int(mask.sum()) for name, mask in rules.items()}


def check_stressed_bars(
    scenario, base: pd.DataFrame, stored: pd.DataFrame, *, drop_tolerance: float = DROP_TOLERANCE,
    calendar: str | None = None,
) -> InvariantReport:
    """Check ``stored`` stressed bars of ``scenario`` against its invariants and against a fresh run
    (``calendar``: the one the bars were stressed with, for lengths given in time)."""
    failures: list[str] = []
    for rule, count in ohlc_violations(stored).items():
        if count:
            failures.append(f"{count} row(s) outside corrupted rows break {rule}")
    fresh = stress_scenario(scenario, base, calendar)
    if not _same(fresh.stressed, stored):
        failures.append("the stored bars differ from a fresh application of the scenario (not reproducible)")
    drops = []
    for row in fresh.stats.itertuples(index=False):
        expected = float(row.expected_drop_pct)
        if np.isnan(expected):
            continue
        realised = float(row.drop_pct)
        ok = bool(np.isfinite(realised) and abs(realised - expected) <= drop_tolerance)
        drops.append({"symbol": row.symbol, "expected": expected, "realised": realised, "ok": ok})
        if not ok:
            failures.append(
                f"{row.symbol}: realised drop {realised:.4%} differs from the requested {expected:.4%} "
                f"by more than {drop_tolerance:.2%}"
            )
    failures.extend(uncaught_corruption(stored, base))
    return InvariantReport(passed=not failures, failures=tuple(failures), checked_rows=len(stored), drops=drops)


def uncaught_corruption(stressed: pd.DataFrame, base: pd.DataFrame) -> list[str]:
    """One message per symbol whose corrupted rows the quality suite does not all report."""
    messages = []
    for symbol, rows in stressed.groupby("symbol", sort=True, observed=True):
        corrupted = set(rows.index[rows["corrupted"].to_numpy(dtype=bool)])
        if not corrupted:
            continue
        allowed = gap_ratio(base.loc[base["symbol"] == symbol, "ts"])
        report = validate_bars(rows, max_gap_ratio=allowed, sample_size=len(rows))
        caught = {index for outcome in report.failures for index in outcome.unexpected_rows.index}
        missed = corrupted - caught
        if missed:
            messages.append(f"{symbol}: the quality suite missed {len(missed)} of {len(corrupted)} corrupted rows")
    return messages


def _same(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    try:
        pd.testing.assert_frame_equal(
            a.reset_index(drop=True), b.reset_index(drop=True), check_dtype=False, check_exact=True
        )
    except AssertionError:
        return False
    return True
