"""Where in each symbol's bars a scenario starts.

A window given as a timestamp or a bar offset is used as is; with none, the start is drawn from the
scenario's seed, so the same pack on the same bars always stresses the same bars. A drawn window
that would straddle a break in the bars (an overnight close, a weekend, missing bars) is drawn again
among the starts whose window fits inside one stretch of trading, a session for an exchange's bars,
when there is one; a window longer than every session keeps the first draw. A window anchored
on the system's book (``at``) is first resolved to a timestamp by :func:`anchor_index` from the
exposure of the unstressed run (``stress_pipeline.verdicts.anchor_scenario`` does both).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from stress_pipeline.market.intervals import bar_interval_ns as market_bar_interval_ns
from stress_pipeline.scenarios.arrays import BarArrays

# Bars kept before a drawn start, so that a pre-shock level and a local trend exist.
WARMUP_BARS = 60


class WindowError(ValueError):
    """The scenario's window does not fit the bars it is applied to."""


INTERVAL_SAMPLE_BARS = 32


def bar_interval_ns(bars: BarArrays) -> int:
    """The bar interval (ns) of ``bars`` by the market's one rule (:func:`market.intervals.bar_interval_ns`),
    over the first :data:`INTERVAL_SAMPLE_BARS` bars of every segment; 60 s if none.

    A short sample per segment is enough (a symbol has one interval) and keeps this cheap on wide inputs.
    """
    return market_bar_interval_ns(bars.ts, bars.offsets, sample_bars=INTERVAL_SAMPLE_BARS)


def resolve_starts(
    scenario, bars: BarArrays, segments: np.ndarray, span_bars: int, *, warmup_bars: int = WARMUP_BARS
) -> np.ndarray:
    """Absolute row index of the window start in each of ``segments``.

    ``span_bars`` is how many bars from the start the transform needs; the window must fit.
    """
    segments = np.asarray(segments, dtype=np.int64)
    lengths = bars.lengths()[segments]
    firsts = bars.offsets[segments]
    if not len(segments):
        return np.zeros(0, dtype=np.int64)
    window = scenario.window
    if window is not None and window.at is not None:
        raise WindowError(
            f"scenario '{scenario.name}': window.at {window.at} is placed on the system's book: resolve it to a "
            "start first (stress_pipeline.verdicts.anchor_scenario)"
        )
    if window is not None and window.offset_bars is not None:
        offsets = np.full(len(segments), int(window.offset_bars), dtype=np.int64)
    elif window is not None and window.start is not None:
        target = pd.Timestamp(window.start)
        target = target.tz_localize("UTC") if target.tzinfo is None else target.tz_convert("UTC")
        # Rows are in time order within a segment: the rows before the target are the first offset rows.
        before = np.concatenate([[0], np.cumsum(bars.ts < target.value)])
        offsets = before[firsts + lengths] - before[firsts]
    else:
        shortest = int(np.argmin(lengths))
        low = min(warmup_bars, max(int(lengths[shortest]) - span_bars, 0))
        high = int(lengths[shortest]) - span_bars
        if high < low:
            raise WindowError(
                f"scenario '{scenario.name}': needs {span_bars} bars, "
                f"{bars.symbols[segments[shortest]]} has {int(lengths[shortest])}"
            )
        rng = np.random.default_rng(scenario.seed)
        drawn = int(rng.integers(low, high + 1))
        if straddles_break(bars, segments, drawn, span_bars):
            inside = np.flatnonzero(~straddling_starts(bars, segments, low, high, span_bars)) + low
            if len(inside):
                drawn = int(inside[rng.integers(0, len(inside))])
        offsets = np.full(len(segments), drawn, dtype=np.int64)
    misfit = (offsets < 1) | (offsets + span_bars > lengths)
    if misfit.any():
        i = int(np.argmax(misfit))
        raise WindowError(
            f"scenario '{scenario.name}': window starting at bar {int(offsets[i])} needs {span_bars} bars and one "
            f"before it, but {bars.symbols[segments[i]]} has {int(lengths[i])} bars"
        )
    return (firsts + offsets).astype(np.int64)


def straddling_starts(bars: BarArrays, segments: np.ndarray, low: int, high: int, span_bars: int) -> np.ndarray:
    """For each start offset in ``low..high``: does the window (the bar before it and ``span_bars``
    from it) hold a break in any of ``segments``? A break is a step longer than 1.5 bar intervals: a
    market closed overnight or for a weekend, or bars missing."""
    interval = bar_interval_ns(bars)
    starts = np.arange(low, high + 1, dtype=np.int64)
    out = np.zeros(len(starts), dtype=bool)
    for segment in np.asarray(segments, dtype=np.int64):
        ts = bars.ts[bars.offsets[segment] : bars.offsets[segment + 1]]
        breaks = np.concatenate([[0], np.cumsum(np.diff(ts) > 1.5 * interval)])  # breaks before each row
        stop = np.minimum(starts + span_bars - 1, len(ts) - 1)
        out |= breaks[stop] - breaks[np.maximum(starts - 1, 0)] > 0
    return out


def straddles_break(bars: BarArrays, segments: np.ndarray, start: int, span_bars: int) -> bool:
    """Whether the window starting at offset ``start`` holds a break (:func:`straddling_starts`)."""
    return bool(straddling_starts(bars, segments, start, start, span_bars)[0])


def anchor_index(at: str, exposure: np.ndarray, *, warmup_bars: int = WARMUP_BARS, reserve_bars: int = 0) -> int:
    """The bar where a window anchored ``at`` starts, from the system's gross exposure per bar.

    ``max_exposure``: the first bar of the largest exposure; ``position_open``: the first bar holding a
    position. Only bars from ``warmup_bars`` to ``len - reserve_bars - 1`` are candidates, so a pre-shock
    level exists and the scenario fits after the start. Raises :class:`WindowError` when no candidate
    holds a position: a window cannot be placed on a book that is empty.
    """
    exposure = np.asarray(exposure, dtype=np.float64)
    if at not in ("max_exposure", "position_open"):
        raise WindowError(f"unknown window anchor {at!r}; expected max_exposure or position_open")
    low, high = max(int(warmup_bars), 1), len(exposure) - int(reserve_bars)
    candidates = np.nan_to_num(exposure[low:high], nan=0.0)
    held = np.flatnonzero(candidates > 0)
    if not len(held):
        raise WindowError(
            f"window.at {at}: the system holds no position in bars {low}..{max(high - 1, low)} of {len(exposure)}"
        )
    return low + int(held[0] if at == "position_open" else np.argmax(candidates))
