"""Multiplicative factor paths on OHLC bars: the gather/compute/scatter machinery of the price-path stresses.

A stress window is an ``(n_symbols, width)`` matrix of row indices: every symbol has the same width and its
own start. A factor path gives, for each window bar, the factor at its open boundary and at its close
boundary. Applying it as

    open' = open * F_open,  close' = close * F_close,
    high' = high * max(F_open, F_close),  low' = low * min(F_open, F_close)

keeps every bar consistent for any positive factors, and the path continuous: a bar opens where the one
before closed. After the window the path holds a constant level; :func:`shift_tail` multiplies the rest of
each symbol's series by it, so a level shift persists (a factor of 1 leaves the bars untouched).

Everything works in place on fresh copies from :func:`copy_prices` (``BarArrays.copy_arrays``), which the
transform then passes to ``BarArrays.replace``; nothing loops over bars.
"""

from __future__ import annotations

import numpy as np

from stress_pipeline.scenarios.arrays import PRICE_FIELDS, BarArrays


def window_rows(starts: np.ndarray, width: int) -> np.ndarray:
    """Row indices of each symbol's window: ``starts[i] + 0 .. width - 1`` as an ``(n, width)`` matrix."""
    return np.asarray(starts, dtype=np.int64)[:, None] + np.arange(width, dtype=np.int64)


def copy_prices(bars: BarArrays, *more: str) -> dict[str, np.ndarray]:
    """Fresh copies of the four prices and the ``stressed`` flags (and of ``more``), ready to edit."""
    return bars.copy_arrays(*PRICE_FIELDS, "stressed", *more)


def scale_prices(arrays: dict[str, np.ndarray], rows: np.ndarray, f_open: np.ndarray, f_close: np.ndarray) -> None:
    """Apply open/close boundary factors to the bars at ``rows``, in place; flag the bars they move.

    ``f_open`` and ``f_close`` broadcast against ``rows`` (a shape shared by all symbols may be 1-D).
    """
    f_open = np.broadcast_to(np.asarray(f_open, dtype=np.float64), rows.shape)
    f_close = np.broadcast_to(np.asarray(f_close, dtype=np.float64), rows.shape)
    arrays["open"][rows] *= f_open
    arrays["close"][rows] *= f_close
    arrays["high"][rows] *= np.maximum(f_open, f_close)
    arrays["low"][rows] *= np.minimum(f_open, f_close)
    moved = (f_open != 1.0) | (f_close != 1.0)
    arrays["stressed"][rows[moved]] = True


def shift_tail(
    arrays: dict[str, np.ndarray],
    offsets: np.ndarray,
    segments: np.ndarray,
    first_rows: np.ndarray,
    factors: np.ndarray,
) -> None:
    """Multiply the prices of each of ``segments`` from ``first_rows[i]`` to its end by ``factors[i]``.

    One multiplier per row is built with a single ``np.repeat`` over all segments (1 outside the tails),
    so the cost is a few passes over the arrays whatever the number of symbols. Rows it moves are flagged.
    """
    factors = np.asarray(factors, dtype=np.float64)
    if not len(factors) or np.all(factors == 1.0):
        return
    seg_start, seg_end = offsets[:-1], offsets[1:]
    split = seg_end.copy()
    level = np.ones(len(seg_start))
    split[segments] = first_rows
    level[segments] = factors
    lengths = np.column_stack([split - seg_start, seg_end - split]).ravel()
    values = np.column_stack([np.ones(len(seg_start)), level]).ravel()
    multiplier = np.repeat(values, lengths)
    for name in PRICE_FIELDS:
        arrays[name] *= multiplier
    arrays["stressed"] |= multiplier != 1.0


def ragged_rows(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """The concatenated ranges ``starts[i] .. starts[i] + counts[i] - 1``, without a Python loop."""
    starts = np.asarray(starts, dtype=np.int64)
    counts = np.asarray(counts, dtype=np.int64)
    ends = np.cumsum(counts)
    return np.repeat(starts - (ends - counts), counts) + np.arange(int(ends[-1]) if len(ends) else 0)
