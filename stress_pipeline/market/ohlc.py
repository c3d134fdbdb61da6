"""When a bar's prices make sense: the one OHLC validity rule.

A bar is valid when its four prices are finite and positive and its high and low bound its open and
close: ``high >= max(open, close)`` and ``low <= min(open, close)``. :func:`ohlc_fault` states the
rule for one bar (compiled, so the simulations' market-data guard calls it row by row inside its
own compiled pass); :func:`ohlc_breaks` applies it to whole columns (the stressed-bar invariants);
the quality suite turns :data:`OHLC_ORDER` into its Great Expectations pair checks, one per pair, so
a report names the pair that broke.
"""

from __future__ import annotations

from typing import NamedTuple

import numba
import numpy as np

OHLC_ORDER = (
    ("high_ge_open", "high", "open"),
    ("high_ge_close", "high", "close"),
    ("low_le_open", "open", "low"),
    ("low_le_close", "close", "low"),
)
"""(name, greater, lesser): for a valid bar ``greater >= lesser`` holds for every pair."""

VALID, BAD_VALUE, HIGH_BELOW, LOW_ABOVE = 0, 1, 2, 3
"""What :func:`ohlc_fault` returns: the first rule a bar breaks, in this order."""


@numba.njit(cache=True)
def ohlc_fault(open_: float, high: float, low: float, close: float) -> int:
    """:data:`VALID`, or the first rule the bar breaks: :data:`BAD_VALUE` (a price missing, not finite
    or not positive), :data:`HIGH_BELOW` (high < open or high < close), :data:`LOW_ABOVE` (low > open
    or low > close)."""
    if not (np.isfinite(open_) and np.isfinite(high) and np.isfinite(low) and np.isfinite(close)):
        return BAD_VALUE
    if open_ <= 0.0 or high <= 0.0 or low <= 0.0 or close <= 0.0:
        return BAD_VALUE
    if high < open_ or high < close:
        return HIGH_BELOW
    if open_ < low or close < low:
        return LOW_ABOVE
    return VALID


class OhlcBreaks(NamedTuple):
    """Row masks of what breaks the rule. A row with a bad value is counted there only."""

    bad_value: np.ndarray  # a price is missing, not finite or not positive
    high_below: np.ndarray  # prices are good but high < max(open, close)
    low_above: np.ndarray  # prices are good, high bounds them, but low > min(open, close)

    @property
    def inconsistent(self) -> np.ndarray:
        """Prices are good but high or low does not bound open and close."""
        return self.high_below | self.low_above

    @property
    def invalid(self) -> np.ndarray:
        return self.bad_value | self.high_below | self.low_above


def ohlc_breaks(open_: np.ndarray, high: np.ndarray, low: np.ndarray, close: np.ndarray) -> OhlcBreaks:
    """Apply :func:`ohlc_fault` to every row of equal-length price columns, as masks."""
    faults = ohlc_faults(open_, high, low, close)
    return OhlcBreaks(bad_value=faults == BAD_VALUE, high_below=faults == HIGH_BELOW, low_above=faults == LOW_ABOVE)


def ohlc_faults(open_: np.ndarray, high: np.ndarray, low: np.ndarray, close: np.ndarray) -> np.ndarray:
    """:func:`ohlc_fault` of every row (int8 codes), in one compiled pass."""
    columns = [np.asarray(a, dtype=np.float64) for a in (open_, high, low, close)]
    if len({len(c) for c in columns}) != 1:
        raise ValueError(f"price columns differ in length: {[len(c) for c in columns]}")
    return _faults(*columns)


@numba.njit(cache=True)
def _faults(open_, high, low, close):  # pragma: no cover - compiled
    out = np.empty(len(open_), dtype=np.int8)
    for i in range(len(open_)):
        out[i] = ohlc_fault(open_[i], high[i], low[i], close[i])
    return out
