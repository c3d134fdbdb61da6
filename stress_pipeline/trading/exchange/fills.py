"""Where in a bar an order fills and what it pays: the bar path, spread, square-root impact, fees.

A bar is replayed as a path of three straight legs of equal duration: open -> low -> high -> close
for an up bar (close >= open), open -> high -> low -> close for a down bar. That is the usual
deterministic convention (the extreme nearer the open in time is the one against the bar's
direction) and it lets a crash bar's low be reached before its close. Prices on the path are mid
prices; a taker pays half the bar's spread and the impact on top, a maker fills at its limit.

These are compiled functions (numba) so that the paper engine's loop can call them; each is also an
ordinary function for tests and notebooks.
"""

from __future__ import annotations

import math

from stress_pipeline.trading.compiled import compiled

TAKER = 0
MAKER = 1
_PARKINSON = 2.0 * math.sqrt(math.log(2.0))


@compiled
def path_price(o: float, h: float, lo: float, c: float, frac: float) -> float:
    """The path price ``frac`` (0 = open, 1 = close) of the way through the bar."""
    p1, p2 = _extremes(o, h, lo, c)
    f = min(max(frac, 0.0), 1.0) * 3.0
    if f <= 1.0:
        return o + (p1 - o) * f
    if f <= 2.0:
        return p1 + (p2 - p1) * (f - 1.0)
    return p2 + (c - p2) * (f - 2.0)


@compiled
def path_mean(o: float, h: float, lo: float, c: float) -> float:
    """The time-average of the path: the price of an order worked evenly through the bar."""
    return (o + 2.0 * h + 2.0 * lo + c) / 6.0


@compiled
def first_touch(o: float, h: float, lo: float, c: float, f0: float, level: float, below: bool) -> float:
    """The first fraction >= ``f0`` at which the path is at or beyond ``level`` (at or below it when
    ``below``, else at or above it); -1 when it never gets there in this bar."""
    p1, p2 = _extremes(o, h, lo, c)
    start = min(max(f0, 0.0), 1.0)
    for leg in range(3):
        leg_start = leg / 3.0
        leg_end = (leg + 1) / 3.0
        if leg_end < start:
            continue
        a = o if leg == 0 else (p1 if leg == 1 else p2)
        b = p1 if leg == 0 else (p2 if leg == 1 else c)
        fa = max(start, leg_start)
        pa = a + (b - a) * (fa - leg_start) * 3.0
        if (pa <= level) if below else (pa >= level):
            return fa
        if (b <= level) if below else (b >= level):
            return fa + (leg_end - fa) * (pa - level) / (pa - b)
    return -1.0


@compiled
def parkinson_bps(h: float, lo: float) -> float:
    """The bar's volatility from its range (Parkinson), in basis points; 0 for a flat bar."""
    if lo <= 0.0 or h <= lo:
        return 0.0
    return 1e4 * math.log(h / lo) / _PARKINSON


@compiled
def impact_bps(qty: float, volume: float, sigma_bps: float, k: float, cap_bps: float) -> float:
    """Square-root impact of filling ``qty`` (absolute) against a bar of ``volume``."""
    if volume <= 0.0:
        return cap_bps
    return min(k * sigma_bps * math.sqrt(qty / volume), cap_bps)


@compiled
def taker_price(mid: float, side: float, half_spread_bps: float, impact: float) -> float:
    """What a taker pays (buy, side +1) or receives (sell, side -1) around the path price ``mid``."""
    return mid * (1.0 + side * (half_spread_bps + impact) * 1e-4)


@compiled
def participation_cap(volume: float, participation: float, used: float) -> float:
    """How much more may fill in this bar: ``participation`` of its volume, less what already filled.
    An infinite ``participation`` (the cap switched off) leaves no limit."""
    if math.isinf(participation):
        return math.inf
    return max(participation * volume - used, 0.0)


@compiled
def _extremes(o: float, h: float, lo: float, c: float) -> tuple[float, float]:
    if c >= o:
        return lo, h
    return h, lo
