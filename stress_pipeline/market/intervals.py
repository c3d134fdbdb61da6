"""The bar interval of a timestamp column and the bars missing between timestamps: one rule each.

Every part of the package that needs the spacing of bars (the quality suite, the bar summary, the
simulation panel, scenario windows, Monte Carlo timestamps, the kline writer, metrics) asks
:func:`bar_interval_ns`, and every part that counts gaps asks :func:`missing_bars`, so that two
reports about the same bars never disagree about their interval or their gaps.

The interval is the **lower median of the positive steps** between consecutive timestamps, taken
within each segment (a segment is one symbol's rows; a step never spans two symbols):

* it is a step that occurs in the data, never the mean of two (60 s and 120 s do not give 90 s),
  so the grid it defines is one the bars actually sit on;
* gaps (long steps) and duplicates or rows out of order (steps <= 0, left out) do not move it as
  long as fewer than half the steps are gaps, which the quality suite fails long before;
* unlike the mode it still means something on jittered timestamps (every step distinct), and it
  costs one ``np.partition`` (linear time) instead of a sort.
"""

from __future__ import annotations

import numpy as np

DEFAULT_INTERVAL_NS = 60_000_000_000
"""The interval assumed when the timestamps hold no positive step (fewer than two distinct bars)."""


def bar_interval_ns(
    ts_ns: np.ndarray,
    offsets: np.ndarray | None = None,
    *,
    sample_bars: int | None = None,
    default: int = DEFAULT_INTERVAL_NS,
) -> int:
    """The bar interval (ns) of ``ts_ns``: the lower median of the positive steps within segments.

    ``ts_ns`` holds int64 nanoseconds (or ``datetime64``) in row order; integers in another unit give
    the interval in that unit. ``offsets`` (length segments + 1,
    as in ``BarArrays``) splits the rows into segments; ``None`` means one segment. ``sample_bars``
    looks only at the first that many rows of each segment (a symbol has one interval, so a short
    sample per segment keeps this cheap on wide inputs). ``default`` is returned when no positive step
    exists.
    """
    ts = np.asarray(ts_ns)
    if ts.dtype.kind == "M":
        ts = ts.astype("datetime64[ns]").view(np.int64)
    ts = ts.astype(np.int64, copy=False)
    n = len(ts)
    if n < 2:
        return int(default)
    bounds = np.array([0, n], dtype=np.int64) if offsets is None else np.asarray(offsets, dtype=np.int64)
    if bounds.ndim != 1 or len(bounds) < 2 or bounds[0] != 0 or bounds[-1] != n or np.any(np.diff(bounds) < 0):
        raise ValueError(f"offsets must rise from 0 to {n} (the number of timestamps), got {bounds.tolist()[:8]}")
    if sample_bars is not None:
        if sample_bars < 2:
            raise ValueError(f"sample_bars must be at least 2, got {sample_bars}")
        starts, stops = bounds[:-1], bounds[1:]
        index = starts[:, None] + np.arange(sample_bars)[None, :]
        valid = index[:, 1:] < stops[:, None]
        index = np.minimum(index, n - 1)
        steps = (ts[index[:, 1:]] - ts[index[:, :-1]])[valid]
    else:
        steps = np.diff(ts)
        inner = bounds[1:-1]
        if len(inner):
            inner = inner[(inner > 0) & (inner < n)]
            steps[inner - 1] = 0  # the step from one segment's last row to the next one's first
    steps = steps[steps > 0]
    if not len(steps):
        return int(default)
    k = (len(steps) - 1) // 2
    return int(np.partition(steps, k)[k])


def missing_bars(ts_ns: np.ndarray, interval_ns: float) -> np.ndarray:
    """Bars missing before each timestamp after the first, on the grid of ``interval_ns``.

    ``ts_ns`` are distinct timestamps in increasing order (int64 ns, or any unit ``interval_ns`` is
    in). A step of ``k`` intervals, rounded to the nearest whole number, means ``k - 1`` missing bars;
    the result has one entry per step (``len(ts_ns) - 1``). A gap is a step with at least one missing bar.
    """
    if interval_ns <= 0:
        raise ValueError(f"interval must be positive, got {interval_ns} ns")
    ts = np.asarray(ts_ns, dtype=np.int64)
    if len(ts) < 2:
        return np.zeros(0, dtype=np.int64)
    bars_between = np.rint(np.diff(ts) / float(interval_ns)).astype(np.int64)
    return np.maximum(bars_between - 1, 0)
