"""Shapes of the price-path stresses: how deep (0 = base, 1 = full depth) the path is at each bar boundary.

A shape is normalised; the transform scales it by a depth solved per symbol so that the realised drop is
exact (:mod:`path_depth`), and turns it into factors ``F = 1 - depth * shape``. Shapes are given at the
close boundary of each window bar; the open boundary of a bar is the close boundary of the one before
(0 before the window: the pre-shock close is never moved).
"""

from __future__ import annotations

import math

import numpy as np

# Exponential recovery: the gap left on the penultimate recovery bar, as a share of the drop.
EXPONENTIAL_RESIDUAL = 0.01


def crash_shape(duration_bars: int, recovery_bars: int, recovery: str) -> np.ndarray:
    """Depth at each bar's close over a crash window: a linear fall, then the recovery.

    The fall reaches 1 on the last of ``duration_bars``. ``linear`` climbs back to 0 on the last
    recovery bar; ``exponential`` decays so that 1% of the drop is left on the penultimate recovery bar,
    then snaps to 0 on the last; ``none`` stays at 1 (a permanent level shift). Without recovery bars a
    recovering crash gets one extra bar: the bar after the trough opens at the trough and closes on the
    base path, so the window covers every bar the crash moves.
    """
    fall = np.arange(1, duration_bars + 1, dtype=np.float64) / duration_bars
    if recovery == "none":
        rise = np.ones(recovery_bars)
    elif recovery_bars == 0:
        rise = np.zeros(1)
    elif recovery == "linear":
        rise = 1.0 - np.arange(1, recovery_bars + 1, dtype=np.float64) / recovery_bars
    elif recovery == "exponential":
        rate = math.log(1.0 / EXPONENTIAL_RESIDUAL) / max(recovery_bars - 1, 1)
        rise = np.exp(-rate * np.arange(1, recovery_bars + 1, dtype=np.float64))
        rise[-1] = 0.0
    else:
        raise ValueError(f"unknown recovery {recovery!r}")
    return np.concatenate([fall, rise])


def crash_activity(duration_bars: int, width: int, recovery_bars: int, mult: float) -> np.ndarray:
    """Volume or spread multiplier over a crash window: ``mult`` on the crash bars, then back to x1.

    It decays linearly over the recovery bars, reaching x1 on the last one; bars beyond the recovery
    (the extra bar of a crash without recovery bars) stay at x1.
    """
    out = np.ones(width)
    out[:duration_bars] = mult
    if recovery_bars:
        decay = 1.0 - np.arange(1, recovery_bars + 1, dtype=np.float64) / recovery_bars
        out[duration_bars : duration_bars + recovery_bars] = 1.0 + (mult - 1.0) * decay
    return out


def episode_shape(episode_bars: int, knots: tuple[tuple[int, float], ...]) -> np.ndarray:
    """Depth at the ``episode_bars + 1`` bar boundaries of an episode, linear between knots.

    Knot bar ``b`` is the boundary ``b`` bars after the episode starts (0 = the open of its first bar,
    ``episode_bars`` = the close of its last); before the first knot the first depth holds, after the
    last knot the last depth.
    """
    bars = np.array([bar for bar, _ in knots], dtype=np.float64)
    depths = np.array([depth for _, depth in knots], dtype=np.float64)
    return np.interp(np.arange(episode_bars + 1, dtype=np.float64), bars, depths)


def shock_decay(elapsed_ns: np.ndarray, duration_ns: int, recovery: str) -> np.ndarray:
    """Share of a shock still present ``elapsed_ns`` after it hit: 1 at the hit, 0 from ``duration_ns`` on.

    ``linear`` falls straight to 0; ``exponential`` decays to 1% of the shock at ``duration_ns`` and then
    snaps to 0.
    """
    elapsed = np.asarray(elapsed_ns, dtype=np.float64) / duration_ns
    if recovery == "linear":
        share = 1.0 - elapsed
    elif recovery == "exponential":
        share = np.exp(math.log(EXPONENTIAL_RESIDUAL) * elapsed)
    else:
        raise ValueError(f"unknown recovery {recovery!r}")
    return np.where(elapsed < 1.0, share, 0.0)


def open_boundaries(close_values: np.ndarray, first: float = 0.0) -> np.ndarray:
    """Values at each bar's open: the previous bar's close value, ``first`` for the first bar (last axis)."""
    close_values = np.asarray(close_values, dtype=np.float64)
    head = np.full((*close_values.shape[:-1], 1), first)
    return np.concatenate([head, close_values[..., :-1]], axis=-1)
