"""Where in each symbol's bars a scenario starts.

A window given as a timestamp or a bar offset is used as is; with none, the start is drawn from the
scenario's seed, so the same pack on the same bars always stresses the same bars.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from stress_pipeline.scenarios.arrays import BarArrays

# Bars kept before a drawn start, so that a pre-shock level and a local trend exist.
WARMUP_BARS = 60


class WindowError(ValueError):
    """The scenario's window does not fit the bars it is applied to."""


INTERVAL_SAMPLE_BARS = 32


def bar_interval_ns(bars: BarArrays) -> int:
    """The bar interval (ns): the median step over the first bars of every segment; 60 s if none.

    A short sample per segment is enough (a symbol has one interval) and keeps this cheap on wide
    inputs: one gather over (segments x sample) indices.
    """
    starts, stops = bars.offsets[:-1], bars.offsets[1:]
    index = starts[:, None] + np.arange(INTERVAL_SAMPLE_BARS)[None, :]
    valid = index[:, 1:] < stops[:, None]
    index = np.minimum(index, max(bars.rows - 1, 0))
    if not bars.rows:
        return 60_000_000_000
    steps = (bars.ts[index[:, 1:]] - bars.ts[index[:, :-1]])[valid]
    steps = steps[steps > 0]
    return int(np.median(steps)) if len(steps) else 60_000_000_000


def resolve_starts(
    scenario, bars: BarArrays, segments: np.ndarray, span_bars: int, *, warmup_bars: int = WARMUP_BARS
) -> np.ndarray:
    """Absolute row index of the window start in each of ``segments``.

    ``span_bars`` is how many bars from the start the transform needs; the window must fit.
    """
    starts = np.empty(len(segments), dtype=np.int64)
    lengths = bars.lengths()[segments]
    window = scenario.window
    rng = np.random.default_rng(scenario.seed)
    drawn: int | None = None
    for i, (segment, length) in enumerate(zip(segments, lengths, strict=True)):
        first = int(bars.offsets[segment])
        if window is not None and window.offset_bars is not None:
            offset = window.offset_bars
        elif window is not None and window.start is not None:
            target = pd.Timestamp(window.start)
            target = target.tz_localize("UTC") if target.tzinfo is None else target.tz_convert("UTC")
            seg_ts = bars.ts[first : first + length]
            offset = int(np.searchsorted(seg_ts, target.value, side="left"))
        else:
            if drawn is None:
                low = min(warmup_bars, max(int(lengths.min()) - span_bars, 0))
                high = int(lengths.min()) - span_bars
                if high < low:
                    raise WindowError(
                        f"scenario '{scenario.name}': needs {span_bars} bars, {bars.symbols[segment]} has {length}"
                    )
                drawn = int(rng.integers(low, high + 1))
            offset = drawn
        if offset < 1 or offset + span_bars > length:
            raise WindowError(
                f"scenario '{scenario.name}': window starting at bar {offset} needs {span_bars} bars and one before "
                f"it, but {bars.symbols[segment]} has {length} bars"
            )
        starts[i] = first + offset
    return starts
