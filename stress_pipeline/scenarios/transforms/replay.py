"""Historical replay: a window of the ingested data, replayed exactly as it happened.

Synthetic stresses approximate crashes; a real episode is its own best test. A user who drops the
bars of, say, a crash day into data/bars makes that day a first-class scenario with
``historical_replay``: each symbol's bars with ``start <= ts < end`` (naive datetimes are UTC).

Nothing is altered, so ``stressed`` is False on every row; ``corrupted``, ``halted`` and ``path`` are
kept as the data has them. A symbol with no bar in the window is an error (:class:`WindowError`)
naming the scenario, the window and the span that symbol's data actually covers, so a typo in a date
fails loudly instead of replaying nothing; a symbol covering part of the window replays that part.

``windows`` holds the first and last timestamp of each symbol's selection and ``pre_shock_ns`` its
first bar (the level the episode starts from, inside the replayed bars). A replay promises no drop.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from stress_pipeline.scenarios.arrays import BarArrays
from stress_pipeline.scenarios.result import StressResult
from stress_pipeline.scenarios.transforms import register
from stress_pipeline.scenarios.windows import WindowError

_COPIED = ("ts", "open", "high", "low", "close", "volume", "spread_bps", "corrupted", "halted")


@register("historical_replay")
def historical_replay(scenario, bars: BarArrays, segments: np.ndarray) -> StressResult:
    """The bars of each symbol in ``[start, end)``, unchanged and not flagged as stressed."""
    start, end = _utc_ns(scenario.parameters.start), _utc_ns(scenario.parameters.end)
    segments = np.asarray(segments, dtype=np.int64)
    symbols = tuple(bars.symbols[s] for s in segments)
    lo, hi = _selection_bounds(bars, segments, start, end)
    empty = np.flatnonzero(hi <= lo)
    if len(empty):
        raise WindowError(_empty_message(scenario.name, bars, int(segments[empty[0]]), start, end))
    lengths = hi - lo
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    index = np.repeat(lo - offsets[:-1], lengths) + np.arange(offsets[-1])
    replayed = BarArrays(
        symbols=symbols,
        offsets=offsets,
        stressed=np.zeros(len(index), dtype=bool),
        path=None if bars.path is None else bars.path[index],
        **{name: getattr(bars, name)[index] for name in _COPIED},
    )
    first_ts, last_ts = bars.ts[lo], bars.ts[hi - 1]
    return StressResult(
        bars=replayed,
        windows={sym: (int(a), int(b)) for sym, a, b in zip(symbols, first_ts, last_ts, strict=True)},
        pre_shock_ns={sym: int(a) for sym, a in zip(symbols, first_ts, strict=True)},
    )


def _selection_bounds(bars: BarArrays, segments: np.ndarray, start: int, end: int) -> tuple[np.ndarray, np.ndarray]:
    """Absolute [lo, hi) rows of each segment's bars in ``[start, end)`` (segments are sorted by time)."""
    lo = np.empty(len(segments), dtype=np.int64)
    hi = np.empty(len(segments), dtype=np.int64)
    for i, segment in enumerate(segments):
        part = bars.segment(int(segment))
        lo[i], hi[i] = part.start + np.searchsorted(bars.ts[part], [start, end], side="left")
    return lo, hi


def _utc_ns(moment) -> int:
    stamp = pd.Timestamp(moment)
    return (stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")).value


def _empty_message(name: str, bars: BarArrays, segment: int, start: int, end: int) -> str:
    symbol, part = bars.symbols[segment], bars.segment(segment)
    window = f"[{_iso(start)}, {_iso(end)})"
    if part.stop == part.start:
        return f"scenario '{name}': no {symbol} bars in the replay window {window}; the data has no {symbol} bars"
    return (
        f"scenario '{name}': no {symbol} bars in the replay window {window}; "
        f"the {symbol} data spans {_iso(int(bars.ts[part.start]))} to {_iso(int(bars.ts[part.stop - 1]))}"
    )


def _iso(ns: int) -> str:
    return pd.Timestamp(ns, unit="ns", tz="UTC").isoformat()
