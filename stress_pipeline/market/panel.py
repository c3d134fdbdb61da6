"""Bars as a time x symbol panel, cleaned the way a live system's market-data guard would clean them.

Both simulations read the same panel, so they see the same market. The guard works without the
``corrupted`` flag (a live system has none): a row is rejected when its timestamp repeats or goes
backwards, a price is missing or not positive, OHLC is inconsistent, or a bad tick shows: the close
jumps more than ``spike_threshold`` (log return) from the last accepted close and back, or the bar's
high/low range exceeds it. Rejected, halted and missing bars keep
the last accepted close (no volume) and are not tradable: the paper engine places no order on them.

The guard works on every symbol at once: rows are grouped by the symbol's dictionary codes (a stable
grouping that keeps each symbol's rows in the order given, since the guard judges arrival order),
the OHLC rule is evaluated over the whole frame, and two compiled passes over the segments do what
is sequential: the running maximum of timestamps, the bad-tick test against the last good close, the
carrying of the last accepted prices, and the alignment on the common time grid.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numba
import numpy as np
import pandas as pd

from stress_pipeline.market.intervals import bar_interval_ns
from stress_pipeline.market.ohlc import BAD_VALUE, VALID, ohlc_faults
from stress_pipeline.market.schema import conform_bars, symbol_codes, symbol_names

SPIKE_THRESHOLD = 0.5  # |log(close / last accepted close)|; a 30% crash bar is 0.36
ASSET_CLASS_PERIODS = {"crypto": 365, "equity": 252}
REJECT_REASONS = ("out_of_order_or_duplicate", "bad_value", "inconsistent_ohlc", "spike")
_CARRIED = ("open", "high", "low", "close", "spread_bps")


@dataclass(frozen=True)
class MarketPanel:
    """Aligned arrays: ``ts`` (T,), everything else (T, S) in ``symbols`` order."""

    symbols: tuple[str, ...]
    ts: np.ndarray  # int64 ns, strictly increasing
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    spread_bps: np.ndarray
    tradable: np.ndarray  # bool: False for halted, missing or rejected bars
    bar_seconds: float

    @property
    def shape(self) -> tuple[int, int]:
        return self.close.shape

    @property
    def bar_symbols(self) -> int:
        """Bars x symbols: the unit of the simulation benchmarks."""
        return int(self.close.size)

    def timestamps(self) -> pd.DatetimeIndex:
        return pd.to_datetime(self.ts, unit="ns", utc=True)


@dataclass(frozen=True)
class DataGuardReport:
    """What the guard rejected, per symbol and reason (counts)."""

    rejected: dict[str, dict[str, int]] = field(default_factory=dict)
    halted_bars: int = 0
    missing_bars: int = 0

    @property
    def total_rejected(self) -> int:
        return sum(sum(reasons.values()) for reasons in self.rejected.values())


def prepare_panel(
    bars: pd.DataFrame, *, spike_threshold: float = SPIKE_THRESHOLD
) -> tuple[MarketPanel, DataGuardReport]:
    """Clean ``bars`` (canonical, possibly stressed) into a :class:`MarketPanel`."""
    if bars.empty:
        raise ValueError("no bars to simulate")
    if "path" in bars.columns and bars["path"].nunique() > 1:
        raise ValueError("Monte Carlo bars hold several paths: simulate one path at a time (split_paths)")
    frame = conform_bars(bars)
    codes, categories = symbol_codes(frame)
    columns = {name: frame[name].to_numpy() for name in ("open", "high", "low", "close", "volume", "spread_bps")}
    ts = frame["ts"].array.asi8
    halted = frame["halted"].to_numpy() if "halted" in frame.columns else None
    if not bool(np.all(codes[1:] >= codes[:-1])):
        order = np.argsort(codes, kind="stable")  # keeps each symbol's rows in arrival order
        codes, ts = codes[order], ts[order]
        halted = None if halted is None else halted[order]
        columns = {name: values[order] for name, values in columns.items()}
    starts = np.concatenate([[0], np.flatnonzero(codes[1:] != codes[:-1]) + 1])
    offsets = np.concatenate([starts, [len(codes)]]).astype(np.int64)
    symbols = symbol_names(categories, codes[starts])
    return panel_from_arrays(symbols, offsets, ts, columns, halted, spike_threshold=spike_threshold)


def panel_from_arrays(
    symbols: tuple[str, ...],
    offsets: np.ndarray,
    ts: np.ndarray,
    columns: dict[str, np.ndarray],
    halted: np.ndarray | None,
    *,
    spike_threshold: float = SPIKE_THRESHOLD,
) -> tuple[MarketPanel, DataGuardReport]:
    """The guard and the alignment on arrays already grouped by symbol (rows ``offsets[j]:offsets[j + 1]``
    are ``symbols[j]``'s, in arrival order): what :func:`prepare_panel` runs after reading the frame."""
    o, h, low, c = (columns[name] for name in ("open", "high", "low", "close"))
    faults = ohlc_faults(o, h, low, c)
    keep = np.zeros(len(ts), dtype=bool)
    accepted = np.zeros(len(ts), dtype=bool)
    counts = np.zeros((len(symbols), len(REJECT_REASONS)), dtype=np.int64)
    _guard(ts, faults, h, low, c, offsets, math.exp(spike_threshold), keep, accepted, counts)
    kept_offsets = np.concatenate([[0], np.cumsum(np.diff(offsets) - counts[:, 0])])
    grid = _time_grid(ts if kept_offsets[-1] == len(ts) else ts[keep], kept_offsets)
    # Allocated here, not in compiled code: numpy asks the kernel for huge pages on large arrays, which
    # makes first-touch page faults (most of the cost of a fresh 100 MB panel) several times cheaper.
    values = np.empty((6, len(grid), len(symbols)))
    tradable = np.zeros((len(grid), len(symbols)), dtype=bool)
    present = np.zeros((len(grid), len(symbols)), dtype=bool)
    tradable_rows = accepted if halted is None else accepted & ~halted
    missing = _align(
        grid, ts, offsets, keep, accepted, tradable_rows, o, h, low, c, columns["spread_bps"], columns["volume"],
        values, tradable, present,
    )
    arrays = dict(zip(("open", "high", "low", "close", "spread_bps", "volume"), values, strict=True))
    panel = MarketPanel(
        symbols=symbols, ts=grid, tradable=tradable, bar_seconds=bar_interval_ns(grid) / 1e9, **arrays
    )
    rejected = {
        symbol: {reason: int(counts[j, k]) for k, reason in enumerate(REJECT_REASONS)}
        for j, symbol in enumerate(symbols)
    }
    halted_bars = 0 if halted is None else int(halted.sum())
    report = DataGuardReport(rejected=rejected, halted_bars=halted_bars, missing_bars=int(missing))
    return panel, report


@numba.njit(cache=True)
def _guard(ts, faults, high, low, close, offsets, limit, keep, accepted, counts):  # pragma: no cover - compiled
    """Mark rows kept (not repeated or backwards) and accepted (kept, a valid bar by the OHLC rule, no
    bad tick); count each rejection reason (:data:`REJECT_REASONS`) per segment.

    ``limit`` is ``exp(spike_threshold)``: ratios are compared with it instead of taking logs. A bad
    tick is a bar whose high/low ratio exceeds it, or a close that moves by more than it (either way)
    from the previous candidate close and back to the next one (the last candidate: away only): a
    spike's neighbours are both far from it, so the bar after it is compared with the last good one.
    """
    n_segments = len(offsets) - 1
    longest = 0
    for j in range(n_segments):
        longest = max(longest, offsets[j + 1] - offsets[j])
    candidates = np.empty(longest, dtype=np.int64)
    for j in range(n_segments):
        first, stop = offsets[j], offsets[j + 1]
        m = 0
        latest = ts[first]
        for i in range(first, stop):
            if i > first and ts[i] <= latest:
                counts[j, 0] += 1
                continue
            latest = ts[i]
            keep[i] = True
            if faults[i] == BAD_VALUE:
                counts[j, 1] += 1
            elif faults[i] != VALID:
                counts[j, 2] += 1
            elif high[i] / low[i] > limit:
                counts[j, 3] += 1
            else:
                accepted[i] = True
                candidates[m] = i
                m += 1
        if m < 2:
            continue
        away = _jumps(close[candidates[0]], close[candidates[1]], limit)  # into candidate 1
        for k in range(1, m):
            back = True  # the last candidate only has to jump away
            if k < m - 1:
                back = _jumps(close[candidates[k]], close[candidates[k + 1]], limit)
            if away and back:
                accepted[candidates[k]] = False
                counts[j, 3] += 1
            away = back


@numba.njit(cache=True, inline="always")
def _jumps(before, after, limit):  # pragma: no cover - compiled
    ratio = after / before
    return ratio > limit or ratio * limit < 1.0


def _time_grid(kept_ts: np.ndarray, kept_offsets: np.ndarray) -> np.ndarray:
    """Every timestamp any symbol kept, in order (kept timestamps rise strictly within a symbol)."""
    segments = [kept_ts[kept_offsets[j] : kept_offsets[j + 1]] for j in range(len(kept_offsets) - 1)]
    grid = segments[0]
    for segment in segments[1:]:
        if not np.array_equal(segment, grid):
            grid = _merge_unique(grid, segment)
    return np.ascontiguousarray(grid)


@numba.njit(cache=True)
def _merge_unique(a, b):  # pragma: no cover - compiled
    """The sorted union of two strictly increasing arrays."""
    out = np.empty(len(a) + len(b), dtype=a.dtype)
    i = j = k = 0
    while i < len(a) or j < len(b):
        if j == len(b) or (i < len(a) and a[i] < b[j]):
            out[k] = a[i]
            i += 1
        elif i == len(a) or b[j] < a[i]:
            out[k] = b[j]
            j += 1
        else:
            out[k] = a[i]
            i += 1
            j += 1
        k += 1
    return out[:k]


@numba.njit(cache=True)
def _align(grid, ts, offsets, keep, accepted, ok, open_, high, low, close, spread, volume,
           out, tradable, present):  # fmt: skip  # pragma: no cover - compiled
    """Each symbol's kept rows on the time grid into ``out`` (open, high, low, close, spread, volume, each
    time x symbol) and ``tradable``; returns the number of missing bars.

    A rejected row serves the last accepted close (as its open, high, low and close), the last
    accepted spread, and no volume. A time the symbol has no row for (or only rejected rows before
    any accepted one) is missing: it takes the last value before it, else the first after it, trades
    no volume and shows open = high = low = close. Tradable: present, accepted and not halted.

    One pass in time order writes the (time, symbol) arrays row by row (a pass per symbol would write
    a column at a time, a cache miss per value); leading gaps are filled afterwards.
    """
    n_times, n_symbols = len(grid), len(offsets) - 1
    row = offsets[:-1].copy()
    last_close = np.full(n_symbols, np.nan)
    last_spread = np.full(n_symbols, np.nan)
    previous = np.full((6, n_symbols), np.nan)  # last value of each column, before the missing-bar fix
    first_valid = np.full((6, n_symbols), -1)
    raw = np.empty(6)
    missing = 0
    for t in range(n_times):
        for j in range(n_symbols):
            i, stop = row[j], offsets[j + 1]
            while i < stop and not keep[i]:
                i += 1
            here = False
            if i < stop and ts[i] == grid[t]:
                if accepted[i]:
                    last_close[j] = close[i]
                    if not np.isnan(spread[i]):
                        last_spread[j] = spread[i]
                    raw[0], raw[1], raw[2], raw[5] = open_[i], high[i], low[i], volume[i]
                else:
                    raw[0] = raw[1] = raw[2] = last_close[j]
                    raw[5] = 0.0
                raw[3], raw[4] = last_close[j], last_spread[j]
                here = not np.isnan(last_close[j])
                tradable[t, j] = here and ok[i]
                i += 1
            else:
                raw[:] = np.nan
            row[j] = i
            present[t, j] = here
            for k in range(6):
                v = raw[k]
                if np.isnan(v):
                    v = previous[k, j]
                elif first_valid[k, j] < 0:
                    first_valid[k, j] = t
                out[k, t, j] = v
                previous[k, j] = v
            if not here:
                missing += 1
                out[5, t, j] = 0.0
                out[0, t, j] = out[1, t, j] = out[2, t, j] = out[3, t, j]
    for j in range(n_symbols):
        leading = 0
        for k in range(6):
            leading = max(leading, first_valid[k, j])
        for t in range(leading):
            for k in range(6):
                if t < first_valid[k, j]:
                    out[k, t, j] = out[k, first_valid[k, j], j]  # unchanged by the missing-bar fix
            if not present[t, j]:
                out[5, t, j] = 0.0
                out[0, t, j] = out[1, t, j] = out[2, t, j] = out[3, t, j]
    return missing
