"""Order entry latency: a lognormal draw keyed by (seed, symbol, send time, attempt).

The draw is a counter-based hash (splitmix64), not a random stream: an order's latency depends only
on its key, never on how many draws came before it. So switching another realism source on or off
(which changes how many orders are sent) does not reshuffle the latencies of the orders both runs
share, and the same inputs and seed always give the same latencies.
"""

from __future__ import annotations

import math

import numpy as np

from stress_pipeline.trading.compiled import compiled

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_TWO_53 = 9007199254740992.0


@compiled
def latency_ns(
    seed: int, symbol: int, send_ns: int, attempt: int, median_ns: float, sigma: float, mult: float, max_ns: float
) -> int:
    """Latency in nanoseconds: ``median_ns`` * exp(``sigma`` * z) * ``mult``, capped at ``max_ns``."""
    if median_ns <= 0.0:
        return 0
    z = 0.0
    if sigma > 0.0:
        key = _mix(_mix(_mix(np.uint64(seed) ^ _GOLDEN) ^ np.uint64(symbol)) ^ np.uint64(send_ns))
        key = _mix(key ^ np.uint64(attempt))
        z = _normal(key)
    value = median_ns * math.exp(sigma * z) * mult
    return int(min(value, max_ns))


@compiled
def _normal(key: np.uint64) -> float:
    """A standard normal from two hashed uniforms (Box-Muller)."""
    u1 = (float(_mix(key) >> np.uint64(11)) + 1.0) / (_TWO_53 + 1.0)  # (0, 1]
    u2 = float(_mix(key ^ _GOLDEN) >> np.uint64(11)) / _TWO_53
    return math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)


@compiled
def _mix(x: np.uint64) -> np.uint64:
    """splitmix64's finaliser: a bijective scramble of 64 bits."""
    z = x + _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))
