"""The data-quality suite for canonical bars, run with Great Expectations (GX 1.x).

:func:`validate_bars` runs every check of :data:`BAR_CHECKS` as a real GX expectation against one
frame of bars (one symbol, rows in time order) and returns a :class:`QualityReport`: one
:class:`ExpectationOutcome` per check, with the exact number of offending rows and a sample of them
taken from the caller's frame (original index kept).

``great_expectations`` takes seconds to import, so it is imported on the first call, never at module
import. One ephemeral GX context is built lazily per process and reused; calls are serialised by a
lock because a GX context is not documented as thread-safe.

Adding a check means appending a :class:`CheckSpec` to :data:`BAR_CHECKS` (or passing a sequence of
specs as ``checks``): a spec names the input columns it needs, builds one GX expectation, may add
helper columns to the frame GX sees, and may interpret the GX result itself.

Two checks compare a row with its neighbours, to catch bad data that is valid row by row:
``no_price_spikes`` (a bad tick: a price far from the local median) and ``no_frozen_bars`` (a stale
feed: a new bar repeating the previous bar, prices and volume, while trading). Both read the rows in
the order given, like ``ts_strictly_increasing``.

Validating stressed bars: pass ``max_gap_ratio=gap_ratio(base["ts"])`` (the gap ratio of the bars the
stress was applied to). A stress that keeps every bar then passes the gap check, and any bar a stress
removes fails it (see :func:`validate_bars`).
"""

from __future__ import annotations

import logging
import math
import threading
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from stress_pipeline.market.schema import PRICE_COLUMNS

__all__ = [
    "BAR_CHECKS",
    "FROZEN_HELPER_COLUMN",
    "GAP_HELPER_COLUMN",
    "REQUIRED_COLUMNS",
    "SPIKE_HELPER_COLUMN",
    "SPIKE_THRESHOLD",
    "SPIKE_WINDOW",
    "CheckInput",
    "CheckSpec",
    "ExpectationOutcome",
    "Finding",
    "GapProfile",
    "QualityReport",
    "gap_profile",
    "gap_ratio",
    "infer_interval",
    "validate_bars",
]

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

_SUITE_NAME = "stress_pipeline_bar_quality"
_DATASOURCE_NAME = "stress_pipeline_bars"
_ASSET_NAME = "bars"
_BATCH_DEFINITION_NAME = "whole_frame"
_META_KEY = "stress_check"


# --------------------------------------------------------------------------------------------------
# Report types


@dataclass(frozen=True)
class ExpectationOutcome:
    """The result of one check.

    For column-value and column-pair checks ``unexpected_count`` is the exact number of offending
    rows as counted by GX. For ``required_columns`` it is the number of missing columns (no rows).
    For ``gap_ratio`` it is the number of rows that follow a gap; those rows are reported even when
    the ratio is within the limit and the outcome succeeds.
    """

    name: str
    expectation: str
    column: str | None
    success: bool
    unexpected_count: int
    unexpected_rows: pd.DataFrame = field(compare=False, repr=False)
    details: str


@dataclass(frozen=True)
class QualityReport:
    """Every outcome of one :func:`validate_bars` call."""

    success: bool
    rows: int
    outcomes: tuple[ExpectationOutcome, ...]
    gap_ratio: float
    interval: pd.Timedelta | None

    @property
    def failures(self) -> tuple[ExpectationOutcome, ...]:
        return tuple(o for o in self.outcomes if not o.success)

    def outcome(self, name: str) -> ExpectationOutcome:
        """The outcome called ``name``; ``KeyError`` if that check did not run."""
        for o in self.outcomes:
            if o.name == name:
                return o
        raise KeyError(name)

    def _headline(self) -> str:
        status = "PASSED" if self.success else "FAILED"
        failed = len(self.failures)
        interval = "n/a" if self.interval is None else str(self.interval)
        return (
            f"bar quality {status}: {self.rows} rows, {len(self.outcomes) - failed}/{len(self.outcomes)} "
            f"expectations passed, gap ratio {self.gap_ratio:.4%} at interval {interval}"
        )

    def summary(self) -> str:
        """A headline, then one line per failed expectation with its unexpected count."""
        lines = [self._headline()]
        for o in self.failures:
            lines.append(f"  FAILED {o.name}: unexpected_count={o.unexpected_count} ({o.details})")
        return "\n".join(lines)

    def to_markdown(self, sample_rows: int = 5) -> str:
        """A markdown report: the headline, then a section per failed expectation with sample rows."""
        lines = ["## Bar data quality", "", self._headline(), ""]
        if not self.failures:
            lines.append("All expectations passed.")
            return "\n".join(lines) + "\n"
        lines += ["| expectation | GX type | unexpected |", "| --- | --- | --- |"]
        for o in self.failures:
            lines.append(f"| `{o.name}` | `{o.expectation}` | {o.unexpected_count} |")
        for o in self.failures:
            lines += ["", f"### `{o.name}`: {o.unexpected_count} unexpected", "", o.details, ""]
            sample = o.unexpected_rows.head(max(sample_rows, 0))
            if len(sample):
                shown = f"first {len(sample)} of {o.unexpected_count}"
                lines += [f"Sample rows ({shown}):", "", _markdown_table(sample)]
            else:
                lines.append("No sample rows.")
        return "\n".join(lines) + "\n"


def _markdown_table(frame: pd.DataFrame) -> str:
    def cell(value: Any) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    header = ["index", *(cell(c) for c in frame.columns)]
    rows = [
        "| " + " | ".join(header) + " |",
        "| " + " | ".join("---" for _ in header) + " |",
    ]
    for index, values in zip(frame.index, frame.itertuples(index=False, name=None), strict=True):
        rows.append("| " + " | ".join([cell(index), *(cell(v) for v in values)]) + " |")
    return "\n".join(rows)


# --------------------------------------------------------------------------------------------------
# Timestamps, interval and gaps (plain pandas / numpy)


def _as_utc(ts: pd.Series) -> pd.Series:
    """``ts`` as tz-aware UTC datetimes; naive values are taken as UTC, unparseable ones become NaT."""
    series = ts if isinstance(ts, pd.Series) else pd.Series(ts)
    if isinstance(series.dtype, pd.DatetimeTZDtype):
        return series.dt.tz_convert("UTC")
    if pd.api.types.is_datetime64_dtype(series.dtype):
        return series.dt.tz_localize("UTC")
    return pd.to_datetime(series, utc=True, errors="coerce", format="mixed")


def _instants(ts_utc: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """UTC instants as naive ``datetime64`` in the column's own unit (no overflow) and the non-null mask."""
    values = ts_utc.dt.tz_convert(None).to_numpy()
    return values, ~np.isnat(values)


@dataclass(frozen=True)
class GapProfile:
    """Gaps of a timestamp column against a bar interval, measured in time order."""

    interval: pd.Timedelta | None
    unique_bars: int  # distinct non-null timestamps
    missing_bars: int
    missing_before: np.ndarray  # per row, in row order: bars missing just before that row

    @property
    def expected_bars(self) -> int:
        return self.unique_bars + self.missing_bars

    @property
    def ratio(self) -> float:
        return self.missing_bars / self.expected_bars if self.expected_bars else 0.0


def _median_step(unique_sorted: np.ndarray) -> pd.Timedelta | None:
    diffs = np.diff(unique_sorted)
    if diffs.size == 0:
        return None
    return pd.Timedelta(np.sort(diffs)[(diffs.size - 1) // 2])


def gap_profile(ts: pd.Series, interval: pd.Timedelta | None = None) -> GapProfile:
    """The :class:`GapProfile` of ``ts`` on the grid of ``interval`` (inferred when ``None``)."""
    values, valid = _instants(_as_utc(ts))
    unique, first = np.unique(values[valid], return_index=True)
    missing_before = np.zeros(len(values), dtype=np.int64)
    if interval is None:
        step = _median_step(unique)
    else:
        step = pd.Timedelta(interval)
        if step <= pd.Timedelta(0):
            raise ValueError(f"interval must be positive, got {interval!r}")
    if step is None or unique.size < 2:
        return GapProfile(step, int(unique.size), 0, missing_before)
    bars_between = np.rint(np.diff(unique) / step.to_timedelta64()).astype(np.int64)
    missing = np.maximum(bars_between - 1, 0)
    # The first row (in row order) holding each timestamp carries the bars missing before it.
    missing_before[np.flatnonzero(valid)[first[1:]]] = missing
    return GapProfile(step, int(unique.size), int(missing.sum()), missing_before)


def infer_interval(ts: pd.Series) -> pd.Timedelta | None:
    """The bar interval: the median of the positive differences between consecutive distinct
    timestamps in time order (the lower median when there is an even number of them).

    Nulls are ignored; ``None`` when fewer than two distinct timestamps remain.
    """
    values, valid = _instants(_as_utc(ts))
    return _median_step(np.unique(values[valid]))


def gap_ratio(ts: pd.Series, interval: pd.Timedelta | None = None) -> float:
    """Missing bars / expected bars on the grid of ``interval`` (inferred when ``None``).

    Computed on the distinct non-null timestamps in time order: a step of ``k`` intervals between two
    of them (rounded to the nearest whole number) means ``k - 1`` missing bars, and the expected bars
    are the distinct timestamps plus the missing ones. ``0.0`` when there is no interval.
    """
    return gap_profile(ts, interval).ratio


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


def _map_finding(inputs: CheckInput, result: Mapping[str, Any]) -> Finding:
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
    instants, _ = _instants(frame["ts"])
    same &= instants[1:] != instants[:-1]
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


def _ordered_pair_check(name: str, greater: str, lesser: str, column: str) -> CheckSpec:
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
    _ordered_pair_check("high_ge_open", "high", "open", "high"),
    _ordered_pair_check("high_ge_close", "high", "close", "high"),
    _ordered_pair_check("low_le_open", "open", "low", "low"),
    _ordered_pair_check("low_le_close", "close", "low", "low"),
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


# --------------------------------------------------------------------------------------------------
# GX plumbing


@dataclass(frozen=True)
class _Gx:
    gx: Any
    expectations: Any
    batch_definition: Any


_LOCK = threading.RLock()
_GX: _Gx | None = None


def _gx() -> _Gx:
    """The process's GX handle, built on first use (call with ``_LOCK`` held)."""
    global _GX
    if _GX is not None:
        return _GX
    # Quiet unless the application configured GX logging itself. GX pins one of its own module
    # loggers to INFO at import ("Created temporary directory ... for ephemeral docs site").
    gx_logger = logging.getLogger("great_expectations")
    if gx_logger.level == logging.NOTSET:
        gx_logger.setLevel(logging.WARNING)
    with warnings.catch_warnings():
        # GX imports the deprecated sre_constants / sre_parse modules.
        warnings.simplefilter("ignore", DeprecationWarning)
        import great_expectations as gx
        import great_expectations.expectations as gxe
        from great_expectations.data_context.types.base import ProgressBarsConfig
    base_logger = logging.getLogger("great_expectations.data_context.types.base")
    if base_logger.level == logging.INFO:
        base_logger.setLevel(logging.NOTSET)

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    # A data source name can be added only once per context: the context is built once per process
    # and its one data source, asset and batch definition are reused; each call passes its frame
    # as a batch parameter.
    datasource = context.data_sources.add_pandas(_DATASOURCE_NAME)
    asset = datasource.add_dataframe_asset(_ASSET_NAME)
    batch_definition = asset.add_batch_definition_whole_dataframe(_BATCH_DEFINITION_NAME)
    _GX = _Gx(gx=gx, expectations=gxe, batch_definition=batch_definition)
    return _GX


def _exception_message(exception_info: Any) -> str | None:
    """The first exception message in a GX ``exception_info`` (flat, or keyed by metric)."""
    if not isinstance(exception_info, Mapping):
        return None
    if "raised_exception" in exception_info:
        if exception_info.get("raised_exception"):
            return str(exception_info.get("exception_message") or "unknown error")
        return None
    for value in exception_info.values():
        message = _exception_message(value)
        if message is not None:
            return message
    return None


def _one_line(text: str) -> str:
    return " ".join(text.split())


# --------------------------------------------------------------------------------------------------
# Entry point


def validate_bars(
    bars: pd.DataFrame,
    *,
    max_gap_ratio: float = 0.01,
    sample_size: int = 20,
    checks: Sequence[CheckSpec] = BAR_CHECKS,
    spike_threshold: float = SPIKE_THRESHOLD,
) -> QualityReport:
    """Run the bar suite on ``bars`` (one symbol, rows in time order) and report every check.

    Checks whose input columns are missing are skipped (``required_columns`` reports the missing
    ones). ``unexpected_rows`` holds up to ``sample_size`` offending rows of ``bars`` itself, with
    their original index. ``max_gap_ratio`` bounds missing bars / expected bars against the inferred
    interval (see :func:`gap_ratio`); for stressed bars pass the gap ratio of the base bars they were
    made from, ``gap_ratio(base["ts"])``, so that every bar a stress removes fails the check while the
    gaps the market data already had pass. ``spike_threshold`` bounds ``no_price_spikes`` (see
    :data:`SPIKE_THRESHOLD`).
    """
    if not isinstance(bars, pd.DataFrame):
        raise TypeError(f"bars must be a pandas DataFrame, got {type(bars).__name__}")
    if not 0.0 <= max_gap_ratio <= 1.0:
        raise ValueError(f"max_gap_ratio must be between 0 and 1, got {max_gap_ratio!r}")
    if sample_size < 0:
        raise ValueError(f"sample_size must be >= 0, got {sample_size!r}")
    if not spike_threshold > 0:
        raise ValueError(f"spike_threshold must be > 0, got {spike_threshold!r}")
    names = [c.name for c in checks]
    if len(set(names)) != len(names):
        raise ValueError(f"check names must be unique: {names}")

    columns = frozenset(bars.columns)
    frame = bars.reset_index(drop=True)
    gaps = None
    if "ts" in columns:
        frame["ts"] = _as_utc(frame["ts"])
        gaps = gap_profile(frame["ts"])
    inputs = CheckInput(
        frame=frame,
        columns=columns,
        rows=len(frame),
        max_gap_ratio=float(max_gap_ratio),
        sample_size=int(sample_size),
        gaps=gaps,
        spike_threshold=float(spike_threshold),
    )
    active = [c for c in checks if all(col in columns for col in c.requires)]
    for check in active:
        if check.helpers is not None:
            for name, values in check.helpers(inputs).items():
                frame[name] = values

    with _LOCK:
        handle = _gx()
        suite = handle.gx.ExpectationSuite(name=_SUITE_NAME)
        for check in active:
            expectation = check.build(handle.expectations, inputs)
            expectation.meta = {**(expectation.meta or {}), _META_KEY: check.name}
            suite.add_expectation(expectation)
        batch = handle.batch_definition.get_batch(batch_parameters={"dataframe": frame})
        result_format = {"result_format": "SUMMARY", "partial_unexpected_count": int(sample_size)}
        validation = batch.validate(suite, result_format=result_format)

    # GX does not return results in suite order: match them back by the name kept in meta.
    by_name = {r.expectation_config.meta.get(_META_KEY): r for r in validation.results}
    outcomes = []
    for check in active:
        gx_result = by_name[check.name]
        expected = check.expected(inputs)
        error = _exception_message(gx_result.exception_info)
        if error is not None:
            finding = Finding(0, [], f"GX could not evaluate it: {error}")
            success = False
        else:
            interpret = check.interpret or _map_finding
            finding = interpret(inputs, gx_result.result or {})
            success = bool(gx_result.success)
        positions = list(finding.positions)[:sample_size]
        outcomes.append(
            ExpectationOutcome(
                name=check.name,
                expectation=gx_result.expectation_config.type,
                column=check.column,
                success=success,
                unexpected_count=int(finding.unexpected_count),
                unexpected_rows=bars.iloc[positions],
                details=_one_line(f"expected {expected}; found {finding.found}"),
            )
        )
    return QualityReport(
        success=all(o.success for o in outcomes),
        rows=len(bars),
        outcomes=tuple(outcomes),
        gap_ratio=gaps.ratio if gaps is not None else 0.0,
        interval=gaps.interval if gaps is not None else None,
    )
