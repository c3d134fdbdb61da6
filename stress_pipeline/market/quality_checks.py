"""The checks of the bar quality suite: what each one looks at and which Great Expectations
expectation judges it (see :mod:`stress_pipeline.market.quality` for how the suite runs).

Adding a check means appending a :class:`CheckSpec` to :data:`BAR_CHECKS` (or passing a sequence of
specs as ``checks``): a spec names the input columns it needs, builds one GX expectation, may add
helper columns to the frame GX sees, and may interpret the GX result itself. The OHLC pair checks are
built from the market's one OHLC rule (:data:`~stress_pipeline.market.ohlc.OHLC_ORDER`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from stress_pipeline.market.gaps import GapProfile, instants
from stress_pipeline.market.ohlc import OHLC_ORDER
from stress_pipeline.market.schema import PRICE_COLUMNS

REQUIRED_COLUMNS = ("ts", "symbol", "open", "high", "low", "close", "volume")
GAP_HELPER_COLUMN = "__missing_bars_before__"
"""Helper column given to GX: the number of bars missing just before each row (first row of a ts)."""
SPIKE_HELPER_COLUMN = "__log_distance_from_local_median__"
"""Helper column given to GX: per row, the largest |log(price / local median)| over open, high, low, close."""
FROZEN_HELPER_COLUMN = "__repeats_previous_bar__"
"""Helper column given to GX: True where a traded bar repeats the previous row's prices and volume."""

SPIKE_THRESHOLD = 1.0
"""Largest allowed |log(price / local median)|: a price more than e (2.72) times above or 63% below the
median of its neighbourhood is a bad tick. Legitimate stress stays well inside: a 30% crash is 0.36, a
44.6% two-leg crash 0.59, and a level shift of any size (a trading-halt gap) is measured against the
new level on the far side, because the median is centred. A bad tick of x3 or more (1.10) exceeds it."""
SPIKE_WINDOW = 15
"""Rows in the centred window of the local median (7 each side): enough that a few bad rows among them
cannot move the median, short enough to follow a fast but genuine move."""


# --------------------------------------------------------------------------------------------------
# Check specifications


@dataclass(frozen=True)
class CheckInput:
    """What a check sees when it is built and interpreted."""

    frame: pd.DataFrame  # the frame GX validates: RangeIndex, ts as UTC datetimes, helper columns
    columns: frozenset[Any]  # the columns of the caller's frame
    rows: int
    max_gap_ratio: float
    sample_size: int
    gaps: GapProfile | None  # None when there is no ts column
    spike_threshold: float = SPIKE_THRESHOLD


@dataclass(frozen=True)
class Finding:
    """A check's reading of its GX result: offending count, row positions (into ``frame``), text."""

    unexpected_count: int
    positions: Sequence[int]
    found: str


@dataclass(frozen=True)
class CheckSpec:
    """One check of the suite: a named GX expectation and how to read its result.

    ``build(gxe, inputs)`` gets the ``great_expectations.expectations`` module and returns one
    expectation. ``helpers(inputs)`` may return extra columns for the frame GX validates (computed
    before ``build`` is called). Without ``interpret``, the result is read as a column-map result
    (``unexpected_count`` and ``partial_unexpected_index_list``).
    """

    name: str
    column: str | None
    requires: tuple[str, ...]
    expected: Callable[[CheckInput], str]
    build: Callable[[Any, CheckInput], Any]
    helpers: Callable[[CheckInput], Mapping[str, Any]] | None = None
    interpret: Callable[[CheckInput, Mapping[str, Any]], Finding] | None = None


def map_finding(inputs: CheckInput, result: Mapping[str, Any]) -> Finding:
    count = int(result.get("unexpected_count") or 0)
    positions = list(result.get("partial_unexpected_index_list") or [])[: inputs.sample_size]
    found = f"{count} of {inputs.rows} rows violate it" if count else f"all {inputs.rows} rows satisfy it"
    return Finding(count, positions, found)


def _required_columns_finding(inputs: CheckInput, result: Mapping[str, Any]) -> Finding:
    missing = [c for c in REQUIRED_COLUMNS if c not in inputs.columns]
    found = f"missing {', '.join(missing)}" if missing else "all present"
    return Finding(len(missing), [], found)


def _gap_helpers(inputs: CheckInput) -> Mapping[str, Any]:
    assert inputs.gaps is not None
    return {GAP_HELPER_COLUMN: inputs.gaps.missing_before}


def _gap_bound(max_gap_ratio: float, unique_bars: int) -> int | None:
    """The most missing bars allowed: missing / (unique + missing) <= r  <=>  missing <= r*unique/(1-r)."""
    if max_gap_ratio >= 1.0:
        return None
    return math.floor(max_gap_ratio * unique_bars / (1.0 - max_gap_ratio) + 1e-9)


def _gap_build(gxe: Any, inputs: CheckInput) -> Any:
    assert inputs.gaps is not None
    bound = _gap_bound(inputs.max_gap_ratio, inputs.gaps.unique_bars)
    return gxe.ExpectColumnSumToBeBetween(column=GAP_HELPER_COLUMN, min_value=0, max_value=bound)


def _gap_finding(inputs: CheckInput, result: Mapping[str, Any]) -> Finding:
    gaps = inputs.gaps
    assert gaps is not None
    after_gap = np.flatnonzero(gaps.missing_before > 0)
    found = (
        f"{gaps.missing_bars} missing of {gaps.expected_bars} expected bars at interval "
        f"{gaps.interval if gaps.interval is not None else 'n/a'} (gap ratio {gaps.ratio:.4%}), "
        f"{after_gap.size} rows follow a gap"
    )
    return Finding(int(after_gap.size), after_gap[: inputs.sample_size].tolist(), found)


def _numeric(frame: pd.DataFrame, column: str) -> np.ndarray:
    """A column as float64; values that are not numbers become NaN (their own checks report them)."""
    return pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)


def _spike_helpers(inputs: CheckInput) -> Mapping[str, Any]:
    """|log(price / local median)|, the worst of the four prices, per row.

    The local median is taken over a centred window of :data:`SPIKE_WINDOW` rows of each row's
    mid-price, the median of its own valid prices. One bad price in a row cannot move that row's mid
    (the middle two of four values are then both good), so a bad tick never shifts the reference it
    is measured against, and neither do NaN, duplicated or swapped neighbours. Prices that are null
    or not positive are left out here and reported by ``not_null`` and ``prices_positive``.
    """
    logs = [_log_price(inputs.frame, c) for c in PRICE_COLUMNS]
    reference = _centred_median(_row_median(logs), SPIKE_WINDOW)
    distance = np.fmax.reduce([np.abs(values - reference) for values in logs])
    return {SPIKE_HELPER_COLUMN: distance}


def _log_price(frame: pd.DataFrame, column: str) -> np.ndarray:
    values = _numeric(frame, column)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.log(np.where(values > 0, values, np.nan))


def _row_median(columns: list[np.ndarray]) -> np.ndarray:
    """The median of each row's non-NaN values across ``columns`` (up to four), without sorting.

    With three or four values it is what is left after dropping the largest and the smallest, averaged;
    with one or two, their mean; NaN with none.
    """
    present = [~np.isnan(values) for values in columns]
    count = np.sum(present, axis=0)
    total = np.sum([np.where(ok, values, 0.0) for ok, values in zip(present, columns, strict=True)], axis=0)
    largest, smallest = np.fmax.reduce(columns), np.fmin.reduce(columns)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count >= 3, (total - largest - smallest) / (count - 2), total / count)


def _centred_median(values: np.ndarray, window: int) -> np.ndarray:
    """Median of a centred window of odd length ``window`` around each value, edges mirrored.

    A missing value first takes the nearest earlier one (leading ones the first present value), so
    every window holds ``window`` values and a partial sort finds its median.
    """
    if values.size == 0:
        return values
    filled = _fill_missing(values)
    half = window // 2
    windows = np.lib.stride_tricks.sliding_window_view(np.pad(filled, half, mode="reflect"), window)
    return np.partition(windows, half, axis=1)[:, half]


def _fill_missing(values: np.ndarray) -> np.ndarray:
    ok = np.isfinite(values)
    if ok.all() or not ok.any():
        return values
    source = np.where(ok, np.arange(values.size), 0)
    np.maximum.accumulate(source, out=source)
    first = int(np.argmax(ok))
    source[:first] = first
    return values[source]


def _spike_check() -> CheckSpec:
    return CheckSpec(
        name="no_price_spikes",
        column=None,
        requires=PRICE_COLUMNS,
        expected=lambda inputs: (
            f"|log(price / median of the {SPIKE_WINDOW} rows around)| <= {inputs.spike_threshold:g} "
            "for open, high, low and close"
        ),
        build=lambda gxe, inputs: gxe.ExpectColumnValuesToBeBetween(
            column=SPIKE_HELPER_COLUMN, max_value=inputs.spike_threshold
        ),
        helpers=_spike_helpers,
    )


def _frozen_helpers(inputs: CheckInput) -> Mapping[str, Any]:
    """True where a row has the previous row's exact open, high, low, close and volume, volume > 0,
    and a different timestamp: a stale feed publishing its last bar again under the next timestamp.

    Prices alone are not enough: on a quiet minute a symbol with a coarse tick repeats all four prices
    by chance (the synthetic SOLUSDT does about once in 2,000 bars), but not its volume to the lot
    as well. A row without volume (a halted or quiet minute, flagged ``halted`` or not) is
    legitimately flat, and a row with the same timestamp is a duplicate, which ``ts_unique`` reports;
    neither counts here. Rows holding NaN never compare equal.
    """
    frame = inputs.frame
    n = inputs.rows
    frozen = np.zeros(n, dtype=bool)
    if n < 2:
        return {FROZEN_HELPER_COLUMN: frozen}
    volume = _numeric(frame, "volume")
    same = volume[1:] > 0
    for values in (*(_numeric(frame, c) for c in PRICE_COLUMNS), volume):
        same &= values[1:] == values[:-1]
    stamps, _ = instants(frame["ts"])
    same &= stamps[1:] != stamps[:-1]
    if "halted" in inputs.columns:
        same &= ~frame["halted"].fillna(False).to_numpy(dtype=bool)[1:]
    frozen[1:] = same
    return {FROZEN_HELPER_COLUMN: frozen}


def _frozen_check() -> CheckSpec:
    return CheckSpec(
        name="no_frozen_bars",
        column=None,
        requires=("ts", *PRICE_COLUMNS, "volume"),
        expected=lambda _: "no bar with volume > 0 repeats the previous row's open, high, low, close and volume",
        build=lambda gxe, _: gxe.ExpectColumnValuesToBeInSet(column=FROZEN_HELPER_COLUMN, value_set=[False]),
        helpers=_frozen_helpers,
    )


def _required_columns_check() -> CheckSpec:
    return CheckSpec(
        name="required_columns",
        column=None,
        requires=(),
        expected=lambda _: f"columns {', '.join(REQUIRED_COLUMNS)} present",
        build=lambda gxe, _: gxe.ExpectTableColumnsToMatchSet(
            column_set=list(REQUIRED_COLUMNS), exact_match=False
        ),
        interpret=_required_columns_finding,
    )


def _not_null_check(column: str) -> CheckSpec:
    return CheckSpec(
        name=f"not_null:{column}",
        column=column,
        requires=(column,),
        expected=lambda _: f"{column} not null",
        build=lambda gxe, _: gxe.ExpectColumnValuesToNotBeNull(column=column),
    )


def _positive_price_check(column: str) -> CheckSpec:
    return CheckSpec(
        name=f"prices_positive:{column}",
        column=column,
        requires=(column,),
        expected=lambda _: f"{column} > 0",
        build=lambda gxe, _: gxe.ExpectColumnValuesToBeBetween(column=column, min_value=0, strict_min=True),
    )


def _ordered_pair_check(name: str, greater: str, lesser: str) -> CheckSpec:
    column = "high" if greater == "high" else "low"  # the price whose bound the pair checks
    # Rows where either value is null are left to the not-null checks, so a NaN price is reported
    # once, by not_null:<column>, and not again by every pair it takes part in.
    return CheckSpec(
        name=name,
        column=column,
        requires=(greater, lesser),
        expected=lambda _: f"{greater} >= {lesser}",
        build=lambda gxe, _: gxe.ExpectColumnPairValuesAToBeGreaterThanB(
            column_A=greater, column_B=lesser, or_equal=True, ignore_row_if="either_value_is_missing"
        ),
    )


BAR_CHECKS: tuple[CheckSpec, ...] = (
    _required_columns_check(),
    *(_not_null_check(c) for c in REQUIRED_COLUMNS),
    *(_positive_price_check(c) for c in PRICE_COLUMNS),
    *(_ordered_pair_check(name, greater, lesser) for name, greater, lesser in OHLC_ORDER),
    CheckSpec(
        name="volume_non_negative",
        column="volume",
        requires=("volume",),
        expected=lambda _: "volume >= 0",
        build=lambda gxe, _: gxe.ExpectColumnValuesToBeBetween(column="volume", min_value=0),
    ),
    CheckSpec(
        name="ts_unique",
        column="ts",
        requires=("ts",),
        expected=lambda _: "ts unique (every row holding a repeated ts counts)",
        build=lambda gxe, _: gxe.ExpectColumnValuesToBeUnique(column="ts"),
    ),
    CheckSpec(
        name="ts_strictly_increasing",
        column="ts",
        requires=("ts",),
        expected=lambda _: "ts strictly increasing in row order",
        build=lambda gxe, _: gxe.ExpectColumnValuesToBeIncreasing(column="ts", strictly=True),
    ),
    CheckSpec(
        name="gap_ratio",
        column="ts",
        requires=("ts",),
        expected=lambda inputs: f"gap ratio <= {inputs.max_gap_ratio:.4%}",
        build=_gap_build,
        helpers=_gap_helpers,
        interpret=_gap_finding,
    ),
    _spike_check(),
    _frozen_check(),
)
"""The bar suite, in report order. Every check here must have a unique name."""
