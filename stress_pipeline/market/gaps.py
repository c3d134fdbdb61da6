"""Interval and gaps of one symbol's timestamp column, as the quality suite and the bar summary report them.

Both apply the market's one interval rule and one gap count (:mod:`stress_pipeline.market.intervals`)
to the distinct non-null timestamps of the column, in time order. Timestamps keep the column's own
resolution (seconds, micro- or nanoseconds), so no date overflows on the way.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from stress_pipeline.market.calendars import is_continuous, missing_in_sessions
from stress_pipeline.market.intervals import bar_interval_ns, missing_bars


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

    @property
    def gaps(self) -> int:
        """Places where one or more bars are missing."""
        return int(np.count_nonzero(self.missing_before))


def as_utc(ts: pd.Series) -> pd.Series:
    """``ts`` as tz-aware UTC datetimes; naive values are taken as UTC, unparseable ones become NaT."""
    series = ts if isinstance(ts, pd.Series) else pd.Series(ts)
    if isinstance(series.dtype, pd.DatetimeTZDtype):
        return series.dt.tz_convert("UTC")
    if pd.api.types.is_datetime64_dtype(series.dtype):
        return series.dt.tz_localize("UTC")
    return pd.to_datetime(series, utc=True, errors="coerce", format="mixed")


def instants(ts_utc: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """UTC instants as naive ``datetime64`` in the column's own unit (no overflow) and the non-null mask."""
    values = ts_utc.dt.tz_convert(None).to_numpy()
    return values, ~np.isnat(values)


def gap_profile(ts: pd.Series, interval: pd.Timedelta | None = None, calendar: str | None = None) -> GapProfile:
    """The :class:`GapProfile` of ``ts`` on the grid of ``interval`` (inferred when ``None``).

    ``calendar`` (``None`` or ``24/7``: every minute trades) counts only the bars missing inside the
    trading sessions of that exchange calendar (:func:`~stress_pipeline.market.calendars.missing_in_sessions`):
    a weekend, a holiday or the hours after an early close are not gaps.
    """
    values, valid = instants(as_utc(ts))
    unique, first = np.unique(values[valid], return_index=True)
    missing_before = np.zeros(len(values), dtype=np.int64)
    unit = np.datetime_data(values.dtype)[0]
    if interval is None:
        step = _interval(unique)
    else:
        step = pd.Timedelta(interval)
        if step <= pd.Timedelta(0):
            raise ValueError(f"interval must be positive, got {interval!r}")
    if step is None or unique.size < 2:
        return GapProfile(step, int(unique.size), 0, missing_before)
    if is_continuous(calendar):
        missing = missing_bars(unique.view(np.int64), step.to_timedelta64() / np.timedelta64(1, unit))
    else:
        unique_ns = unique.astype("datetime64[ns]").view(np.int64)
        missing = missing_in_sessions(unique_ns, int(step.to_timedelta64() / np.timedelta64(1, "ns")), calendar)
    # The first row (in row order) holding each timestamp carries the bars missing before it.
    missing_before[np.flatnonzero(valid)[first[1:]]] = missing
    return GapProfile(step, int(unique.size), int(missing.sum()), missing_before)


def infer_interval(ts: pd.Series) -> pd.Timedelta | None:
    """The bar interval by the market's rule (:func:`~stress_pipeline.market.intervals.bar_interval_ns`):
    the lower median of the positive steps between consecutive distinct timestamps in time order.

    Nulls are ignored; ``None`` when fewer than two distinct timestamps remain.
    """
    values, valid = instants(as_utc(ts))
    return _interval(np.unique(values[valid]))


def gap_ratio(ts: pd.Series, interval: pd.Timedelta | None = None, calendar: str | None = None) -> float:
    """Missing bars / expected bars on the grid of ``interval`` (inferred when ``None``).

    Computed on the distinct non-null timestamps in time order: a step of ``k`` intervals between two
    of them (rounded to the nearest whole number) means ``k - 1`` missing bars, and the expected bars
    are the distinct timestamps plus the missing ones. ``0.0`` when there is no interval. ``calendar``:
    as :func:`gap_profile` (only bars missing inside sessions count).
    """
    return gap_profile(ts, interval, calendar).ratio


def _interval(unique_sorted: np.ndarray) -> pd.Timedelta | None:
    """The interval of distinct sorted datetime64 values, in their own unit; None without a step."""
    steps = bar_interval_ns(unique_sorted.view(np.int64), default=0)
    if steps == 0:
        return None
    return pd.Timedelta(np.timedelta64(steps, np.datetime_data(unique_sorted.dtype)[0]))
