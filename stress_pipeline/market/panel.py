"""Bars as a time x symbol panel, cleaned the way a live system's market-data guard would clean them.

Both simulations read the same panel, so they see the same market. The guard works without the
``corrupted`` flag (a live system has none): a row is rejected when its timestamp repeats or goes
backwards, a price is missing or not positive, OHLC is inconsistent, or a bad tick shows: the close
jumps more than ``spike_threshold`` (log return) from the last accepted close and back, or the bar's
high/low range exceeds it. Rejected, halted and missing bars keep
the last accepted close (no volume) and are not tradable: the paper engine places no order on them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

SPIKE_THRESHOLD = 0.5  # |log(close / last accepted close)|; a 30% crash bar is 0.36
ASSET_CLASS_PERIODS = {"crypto": 365, "equity": 252}


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
    symbols = tuple(sorted(bars["symbol"].astype(str).unique()))
    per_symbol = {}
    rejected: dict[str, dict[str, int]] = {}
    for symbol in symbols:
        rows = bars[bars["symbol"] == symbol]
        clean, reasons = _guard_symbol(rows, spike_threshold)
        per_symbol[symbol] = clean
        rejected[symbol] = reasons
    ts = np.unique(np.concatenate([frame.index.to_numpy(dtype=np.int64) for frame in per_symbol.values()]))
    shape = (len(ts), len(symbols))
    arrays = {name: np.empty(shape) for name in ("open", "high", "low", "close", "volume", "spread_bps")}
    tradable = np.zeros(shape, dtype=bool)
    missing = 0
    for j, symbol in enumerate(symbols):
        frame = per_symbol[symbol].reindex(ts)
        present = frame["close"].notna().to_numpy()
        missing += int((~present).sum())
        frame = frame.ffill().bfill()  # before the first bar: the first accepted values
        for name in arrays:
            arrays[name][:, j] = frame[name].to_numpy(dtype=np.float64)
        arrays["volume"][~present, j] = 0.0
        for name in ("open", "high", "low"):
            arrays[name][~present, j] = arrays["close"][~present, j]
        tradable[:, j] = present & frame["ok"].fillna(False).to_numpy(dtype=bool)
    halted = int(bars["halted"].sum()) if "halted" in bars.columns else 0
    steps = np.diff(ts)
    bar_seconds = float(np.median(steps)) / 1e9 if len(steps) else 60.0
    panel = MarketPanel(symbols=symbols, ts=ts, tradable=tradable, bar_seconds=bar_seconds, **arrays)
    return panel, DataGuardReport(rejected=rejected, halted_bars=halted, missing_bars=missing)


def _guard_symbol(rows: pd.DataFrame, spike_threshold: float) -> tuple[pd.DataFrame, dict[str, int]]:
    ts = np.asarray(rows["ts"].array.asi8, dtype=np.int64)
    running_max = np.maximum.accumulate(ts)
    backwards = np.zeros(len(ts), dtype=bool)
    backwards[1:] = ts[1:] <= running_max[:-1]  # repeated or earlier than a bar already seen
    o, h, low, c = (rows[name].to_numpy(dtype=np.float64) for name in ("open", "high", "low", "close"))
    with np.errstate(invalid="ignore"):
        bad_value = ~np.isfinite(o + h + low + c) | (np.minimum.reduce([o, h, low, c]) <= 0)
        inconsistent = ~bad_value & ((h < np.maximum(o, c)) | (low > np.minimum(o, c)))
    keep = ~backwards
    candidate = keep & ~bad_value & ~inconsistent
    with np.errstate(divide="ignore", invalid="ignore"):
        wide_bar = candidate & (np.log(h / low) > spike_threshold)  # a bad tick in open, high or low
    spike = wide_bar | _spikes(c, candidate & ~wide_bar, spike_threshold)
    ok = candidate & ~spike
    halted = rows["halted"].to_numpy(dtype=bool) if "halted" in rows.columns else np.zeros(len(ts), dtype=bool)
    frame = pd.DataFrame(
        {
            "open": o, "high": h, "low": low, "close": c,
            "volume": rows["volume"].to_numpy(dtype=np.float64),
            "spread_bps": rows["spread_bps"].to_numpy(dtype=np.float64),
            "ok": ok & ~halted,
        },
        index=ts,
    )[keep]
    accepted = ok[keep]
    # Rejected rows keep their slot but carry the last accepted prices, as the guard would serve them.
    for name in ("open", "high", "low", "close", "spread_bps"):
        frame.loc[~accepted, name] = np.nan
    frame.loc[~accepted, "volume"] = 0.0
    carried = ["open", "high", "low", "close", "spread_bps"]
    frame[carried] = frame[carried].ffill()
    frame.loc[~accepted, ["open", "high", "low"]] = frame.loc[~accepted, ["close"]].to_numpy().repeat(3, axis=1)
    reasons = {
        "out_of_order_or_duplicate": int(backwards.sum()),
        "bad_value": int((keep & bad_value).sum()),
        "inconsistent_ohlc": int((keep & inconsistent).sum()),
        "spike": int(spike.sum()),
    }
    return frame, reasons


def _spikes(close: np.ndarray, candidate: np.ndarray, threshold: float) -> np.ndarray:
    """Closes that jump more than ``threshold`` from the previous accepted close (vectorised, one pass
    against the previous candidate close; a single bad tick is rejected and the next bar compares to
    the last good one because a spike's neighbours are both far from it)."""
    spike = np.zeros(len(close), dtype=bool)
    idx = np.flatnonzero(candidate)
    if len(idx) < 2:
        return spike
    values = np.log(close[idx])
    jump_prev = np.abs(np.diff(values))
    # A bad tick jumps away and back: both its incoming and outgoing moves are large.
    away = np.zeros(len(idx), dtype=bool)
    away[1:] = jump_prev > threshold
    back = np.zeros(len(idx), dtype=bool)
    back[:-1] = jump_prev > threshold
    isolated = away & back
    isolated[-1] = away[-1]
    spike[idx[isolated]] = True
    return spike
