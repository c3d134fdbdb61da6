"""The depth that makes a stress's realised drop exactly the promised one, solved per symbol.

Base bars are noisy: a 30% crash laid over them realises a little more or less than 30%, because the
lowest low of the window is the base low times the factor there. So each symbol gets its own depth ``d``
of the factor path ``F = 1 - d * shape``, chosen so that the realised drop is the target.

With ``a_t`` the shape's deepest boundary of bar ``t`` (the low sees ``1 - d * a_t``) and ``b_t`` its
shallowest (the high sees ``1 - d * b_t``), the condition is ``phi(d) = 0`` with

    phi(d) = min_t low_t * (1 - d * a_t)  -  keep * max_t high_t * (1 - d * b_t),

``keep = 1 - target``. For a drop from the pre-shock close the "high" side is that close itself (one
column, ``b = 0``); for a high-to-low drop it is the window's highs. ``phi`` is a minimum of lines minus a
maximum of lines: concave and piecewise linear. Newton's method started to the right of the root never
overshoots on a concave function (each tangent lies above it) and lands on the root of a linear piece at
every step, so it converges from the right in a handful of steps, exactly up to rounding, for all symbols
at once on the window matrix. When ``phi(0) <= 0`` the base bars already fall at least as far as the
target: no crash of this shape can realise it, and the depth is NaN (the transform raises
:class:`InfeasibleStressError`).
"""

from __future__ import annotations

import numpy as np

from stress_pipeline.scenarios.windows import WindowError

MAX_NEWTON_STEPS = 200
# Largest depth tried, as a share of the one that would take the deepest factor to zero.
_DEPTH_CEILING = 1.0 - 1e-12


class InfeasibleStressError(WindowError):
    """The base bars in the window already move further than the stress promises, so it cannot be exact."""


def solve_depth(
    low: np.ndarray, a: np.ndarray, high: np.ndarray, b: np.ndarray, keep: np.ndarray
) -> np.ndarray:
    """Per row, the depth ``d >= 0`` with ``min low * (1 - d a) == keep * max high * (1 - d b)``; NaN if none.

    ``low``/``a`` and ``high``/``b`` are ``(n, w)`` matrices (or broadcast to them); ``keep`` is ``(n,)``.
    ``a >= b >= 0`` holds for every bar of a shape, and ``1 - d * a`` stays positive for the depth found.
    """
    low, a = np.broadcast_arrays(np.asarray(low, np.float64), np.asarray(a, np.float64))
    high, b = np.broadcast_arrays(np.asarray(high, np.float64), np.asarray(b, np.float64))
    keep = np.asarray(keep, dtype=np.float64)
    rows = np.arange(low.shape[0])
    low_slope, high_slope = low * a, high * b
    deepest = a.max(axis=1)
    with np.errstate(divide="ignore"):
        depth = np.where(deepest > 0, _DEPTH_CEILING / deepest, 0.0)
    feasible = (deepest > 0) & (low.min(axis=1) - keep * high.max(axis=1) > 0)
    for step in range(MAX_NEWTON_STEPS):
        phi, slope = _phi(low, low_slope, high, high_slope, keep, depth, rows)
        if step == 0:
            feasible &= phi < 0
        with np.errstate(divide="ignore", invalid="ignore"):
            candidate = depth - phi / slope
        moving = feasible & (candidate < depth)
        if not moving.any():
            break
        depth = np.where(moving, candidate, depth)
    return np.where(feasible, depth, np.nan)


def _phi(low, low_slope, high, high_slope, keep, depth, rows):
    """``phi`` at ``depth`` per row and the slope of its active pieces (a supergradient)."""
    lows = low - depth[:, None] * low_slope
    highs = high - depth[:, None] * high_slope
    i = lows.argmin(axis=1)
    j = highs.argmax(axis=1)
    phi = lows[rows, i] - keep * highs[rows, j]
    slope = keep * high_slope[rows, j] - low_slope[rows, i]
    return phi, slope
