"""The data-quality suite for canonical bars, run with Great Expectations (GX 1.x).

:func:`validate_bars` runs every check of :data:`BAR_CHECKS` as a real GX expectation against one
frame of bars (one symbol, rows in time order) and returns a :class:`QualityReport`: one
:class:`ExpectationOutcome` per check, with the exact number of offending rows and a sample of them
taken from the caller's frame (original index kept).

``great_expectations`` takes seconds to import, so it is imported on the first call, never at module
import. One ephemeral GX context is built lazily per process and reused; calls are serialised by a
lock because a GX context is not documented as thread-safe.

The checks themselves (:data:`BAR_CHECKS`, :class:`CheckSpec`) live in
:mod:`stress_pipeline.market.quality_checks`; interval and gaps in :mod:`stress_pipeline.market.gaps`.
Both are re-exported here. Adding a check means appending a :class:`CheckSpec` to :data:`BAR_CHECKS`
(or passing a sequence of specs as ``checks``).

Two checks compare a row with its neighbours, to catch bad data that is valid row by row:
``no_price_spikes`` (a bad tick: a price far from the local median) and ``no_frozen_bars`` (a stale
feed: a new bar repeating the previous bar, prices and volume, while trading). Both read the rows in
the order given, like ``ts_strictly_increasing``.

Equity and futures bars: pass the symbol's ``calendar`` (data/symbols.yaml), so that the gap ratio
counts only bars missing inside its trading sessions.

Validating stressed bars: pass ``max_gap_ratio=gap_ratio(base["ts"])`` (the gap ratio of the bars the
stress was applied to). A stress that keeps every bar then passes the gap check, and any bar a stress
removes fails it (see :func:`validate_bars`).

The suite is a pure function of the frame and the parameters, so the last reports are kept by the
frame's content (values, index, column names and dtypes, hashed) and parameters: validating the same
bars again (the market asset refuses bad bars before it stores them, then its blocking check judges
the stored ones) returns the kept report instead of running GX again.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import warnings
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from stress_pipeline.market.calendars import check_calendar
from stress_pipeline.market.gaps import GapProfile, as_utc, gap_profile, gap_ratio, infer_interval
from stress_pipeline.market.quality_checks import (
    BAR_CHECKS,
    FROZEN_HELPER_COLUMN,
    GAP_HELPER_COLUMN,
    REQUIRED_COLUMNS,
    SPIKE_HELPER_COLUMN,
    SPIKE_THRESHOLD,
    SPIKE_WINDOW,
    CheckInput,
    CheckSpec,
    Finding,
    map_finding,
)

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
    calendar: str | None = None,
) -> QualityReport:
    """Run the bar suite on ``bars`` (one symbol, rows in time order) and report every check.

    Checks whose input columns are missing are skipped (``required_columns`` reports the missing
    ones). ``unexpected_rows`` holds up to ``sample_size`` offending rows of ``bars`` itself, with
    their original index. ``max_gap_ratio`` bounds missing bars / expected bars against the inferred
    interval (see :func:`gap_ratio`); for stressed bars pass the gap ratio of the base bars they were
    made from, ``gap_ratio(base["ts"])``, so that every bar a stress removes fails the check while the
    gaps the market data already had pass. ``spike_threshold`` bounds ``no_price_spikes`` (see
    :data:`SPIKE_THRESHOLD`). ``calendar`` is the symbol's trading calendar (``None`` or ``24/7``:
    every minute trades; ``XNYS``, ``CMES``...: only bars missing inside its sessions are gaps, so
    weekends, holidays and the hours after an early close are not; see :func:`gap_profile`).
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

    memo_key = _memo_key(bars, max_gap_ratio, sample_size, checks, spike_threshold, calendar)
    with _LOCK:
        if memo_key is not None and memo_key in _REPORTS:
            _REPORTS.move_to_end(memo_key)
            return _REPORTS[memo_key]
    report = _validate(bars, max_gap_ratio, sample_size, checks, spike_threshold, calendar)
    if memo_key is not None:
        with _LOCK:
            _REPORTS[memo_key] = report
            while len(_REPORTS) > _MEMO_SIZE:
                _REPORTS.popitem(last=False)
    return report


_MEMO_SIZE = 32
_REPORTS: OrderedDict[tuple, QualityReport] = OrderedDict()


def _memo_key(bars: pd.DataFrame, *params: Any) -> tuple | None:
    """What makes a report: the frame's content (values and index, hashed; column names; dtypes) and
    the parameters. None when a parameter cannot be a key (then nothing is kept)."""
    try:
        hash(params)
        rows = pd.util.hash_pandas_object(bars, index=True).to_numpy(dtype=np.uint64)
    except TypeError:  # an unhashable parameter or cell
        return None
    digest = hashlib.blake2b(rows.tobytes(), digest_size=16).hexdigest()
    return (digest, len(bars), tuple(map(str, bars.columns)), tuple(map(str, bars.dtypes)), params)


def _validate(
    bars: pd.DataFrame, max_gap_ratio: float, sample_size: int, checks: Sequence[CheckSpec],
    spike_threshold: float, calendar: str | None,
) -> QualityReport:  # fmt: skip
    columns = frozenset(bars.columns)
    frame = bars.reset_index(drop=True)
    gaps = None
    if "ts" in columns:
        frame["ts"] = as_utc(frame["ts"])
        gaps = gap_profile(frame["ts"], calendar=check_calendar(calendar) if calendar is not None else None)
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
            interpret = check.interpret or map_finding
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
