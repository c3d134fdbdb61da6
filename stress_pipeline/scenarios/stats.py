"""Realised statistics of a stress: what the stressed bars actually do, next to what the transform promised.

A transform promises a drop (``StressResult.expected_drop``, by ``drop_measure``); the pipeline and its
reports need the drop the bars realise, measured independently from the bars alone, plus how volatility,
spread and volume moved against the base bars. One row per symbol, measured over the symbol's stress
window (``StressResult.windows``, first to last bar inclusive):

* ``drop_pct`` by ``drop_measure``: ``pre_close_to_low`` (alias ``prior_close_to_low``) = 1 - lowest low /
  pre-shock close; ``high_to_low`` = 1 - lowest low / highest high; ``gap_open`` = 1 - open of the first
  bar of the window that is not halted (the reopening bar of a trading halt) / pre-shock close.
* ``time_to_trough_bars``: rows from the window start to the lowest low.
* ``vol_ratio``: standard deviation of the log close returns in the window (the first one from the bar
  before it), stressed over base; exactly 1.0 when the window's closes are unaltered.
* ``spread_mult``: the largest stressed / base spread ratio; ``volume_mult``: mean stressed volume over mean
  base volume.

Rows flagged ``corrupted`` never count in a measurement. Stressed bars that keep the base timestamps are
compared row by row. When a stress adds, removes or reorders rows (data corruption), spread and volume are
compared on the rows whose timestamp matches a base bar, returns are not defined (``vol_ratio`` NaN), and
the counts still are.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from stress_pipeline.scenarios.arrays import BarArrays
from stress_pipeline.scenarios.result import StressResult

STATS_COLUMNS = (
    "symbol",
    "window_start",
    "window_end",
    "pre_shock_close",
    "drop_pct",
    "expected_drop_pct",
    "time_to_trough_bars",
    "vol_ratio",
    "spread_mult",
    "volume_mult",
    "corrupted_rows",
    "stressed_rows",
)


def realised_stats(base: BarArrays, result: StressResult) -> pd.DataFrame:
    """One row per symbol of ``result.bars`` (columns :data:`STATS_COLUMNS`); NaN where not defined."""
    stressed = result.bars
    rows = [_symbol_stats(base, stressed, index, result) for index in range(len(stressed.symbols))]
    frame = pd.DataFrame(rows, columns=list(STATS_COLUMNS))
    return frame.astype({"time_to_trough_bars": "Int64", "corrupted_rows": "int64", "stressed_rows": "int64"})


def _symbol_stats(base: BarArrays, stressed: BarArrays, index: int, result: StressResult) -> dict[str, object]:
    symbol = stressed.symbols[index]
    seg = stressed.segment(index)
    ts = stressed.ts[seg]
    corrupted = stressed.corrupted[seg]
    out: dict[str, object] = {
        "symbol": symbol,
        "window_start": None,
        "window_end": None,
        "pre_shock_close": np.nan,
        "drop_pct": np.nan,
        "expected_drop_pct": float(result.expected_drop.get(symbol, np.nan)),
        "time_to_trough_bars": pd.NA,
        "vol_ratio": np.nan,
        "spread_mult": np.nan,
        "volume_mult": np.nan,
        "corrupted_rows": int(corrupted.sum()),
        "stressed_rows": int(stressed.stressed[seg].sum()),
    }
    window = result.windows.get(symbol)
    if window is None:
        return out
    start_ns, end_ns = window
    out["window_start"] = _iso(start_ns)
    out["window_end"] = _iso(end_ns)
    positions = np.flatnonzero((ts >= start_ns) & (ts <= end_ns) & ~corrupted)
    if not positions.size:
        return out
    values = {name: getattr(stressed, name)[seg] for name in ("open", "high", "low", "close", "volume", "spread_bps")}
    pre_close = _pre_shock_close(ts, values["close"], corrupted, result.pre_shock_ns.get(symbol))
    out["pre_shock_close"] = pre_close
    out["drop_pct"] = _drop(result.drop_measure, values, stressed.halted[seg], positions, pre_close)
    trough = positions[int(np.argmin(values["low"][positions]))]
    out["time_to_trough_bars"] = int(trough - positions[0])
    out.update(_against_base(base, symbol, ts, values, positions))
    return out


def _drop(measure: str, values: dict[str, np.ndarray], halted: np.ndarray, positions: np.ndarray, pre_close: float):
    low = float(values["low"][positions].min())
    if measure in ("pre_close_to_low", "prior_close_to_low"):
        return 1.0 - low / pre_close
    if measure == "high_to_low":
        return 1.0 - low / float(values["high"][positions].max())
    if measure == "gap_open":
        trading = positions[~halted[positions]]
        return 1.0 - float(values["open"][trading[0]]) / pre_close if trading.size else np.nan
    return np.nan


def _against_base(
    base: BarArrays, symbol: str, ts: np.ndarray, values: dict[str, np.ndarray], positions: np.ndarray
) -> dict[str, float]:
    """vol_ratio, spread_mult and volume_mult against the base bars of ``symbol``."""
    if symbol not in base.symbols:
        return {}
    seg = base.segment(base.symbols.index(symbol))
    base_ts = base.ts[seg]
    aligned = np.array_equal(base_ts, ts)
    if aligned:
        matched = base_positions = positions
    else:
        found = np.minimum(np.searchsorted(base_ts, ts[positions]), len(base_ts) - 1)
        hit = base_ts[found] == ts[positions]
        matched, base_positions = positions[hit], found[hit]
    if not matched.size:
        return {}
    base_spread = base.spread_bps[seg][base_positions]
    with np.errstate(divide="ignore", invalid="ignore"):
        spread_ratio = values["spread_bps"][matched] / base_spread
        volume_ratio = values["volume"][matched].mean() / base.volume[seg][base_positions].mean()
    out = {"spread_mult": float(np.nanmax(spread_ratio)) if np.any(~np.isnan(spread_ratio)) else np.nan}
    out["volume_mult"] = float(volume_ratio)
    if aligned:
        out["vol_ratio"] = _vol_ratio(base.close[seg], values["close"], positions)
    return out


def _vol_ratio(base_close: np.ndarray, close: np.ndarray, positions: np.ndarray) -> float:
    span = np.arange(max(int(positions[0]) - 1, 0), int(positions[-1]) + 1)
    if np.array_equal(base_close[span], close[span]):
        return 1.0
    if span.size < 2:
        return np.nan
    base_sd = np.diff(np.log(base_close[span])).std()
    sd = np.diff(np.log(close[span])).std()
    return float(sd / base_sd) if base_sd > 0 else np.nan


def _pre_shock_close(ts: np.ndarray, close: np.ndarray, corrupted: np.ndarray, pre_shock_ns: int | None) -> float:
    if pre_shock_ns is None:
        return np.nan
    hits = np.flatnonzero((ts == pre_shock_ns) & ~corrupted)
    return float(close[hits[0]]) if hits.size else np.nan


def _iso(ns: int) -> str:
    return pd.Timestamp(int(ns), unit="ns", tz="UTC").isoformat()
