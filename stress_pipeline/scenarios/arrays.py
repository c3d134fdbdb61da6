"""Bars as contiguous numpy arrays, the form every scenario transform works on.

Rows are sorted by symbol then time; ``offsets`` marks where each symbol's segment starts and ends.
Transforms never modify arrays in place: they copy the arrays they change (``replace``) and share the
rest, so the base bars stay intact and a transform costs only what it touches.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Self

import numpy as np
import pandas as pd

from stress_pipeline.market.schema import BAR_COLUMNS, conform_bars

PRICE_FIELDS = ("open", "high", "low", "close")
FLAG_FIELDS = ("stressed", "corrupted", "halted")


@dataclass(frozen=True)
class BarArrays:
    symbols: tuple[str, ...]
    offsets: np.ndarray  # int64, len(symbols) + 1: segment i is rows offsets[i]:offsets[i + 1]
    ts: np.ndarray  # int64 ns since epoch, UTC
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    spread_bps: np.ndarray
    stressed: np.ndarray  # bool
    corrupted: np.ndarray  # bool
    halted: np.ndarray  # bool
    path: np.ndarray | None = None  # int32 Monte Carlo path number, else None

    @property
    def rows(self) -> int:
        return len(self.ts)

    def segment(self, index: int) -> slice:
        return slice(int(self.offsets[index]), int(self.offsets[index + 1]))

    def segment_of(self, symbol: str) -> int:
        try:
            return self.symbols.index(symbol)
        except ValueError:
            raise KeyError(f"no bars for {symbol} (have {', '.join(self.symbols) or 'none'})") from None

    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def replace(self, **arrays: np.ndarray | None) -> Self:
        """A new BarArrays with some arrays swapped (the caller passes fresh copies)."""
        return replace(self, **arrays)

    def copy_arrays(self, *names: str) -> dict[str, np.ndarray]:
        """Fresh copies of the named arrays, ready to modify and pass to :meth:`replace`."""
        return {name: getattr(self, name).copy() for name in names}

    @classmethod
    def from_frame(cls, bars: pd.DataFrame) -> BarArrays:
        """Convert canonical bars; rows are sorted by symbol (then Monte Carlo path) and time (stable)."""
        frame = conform_bars(bars)
        order = ["symbol", "ts"]
        if "path" in bars.columns:
            frame["path"] = bars["path"].to_numpy(dtype=np.int32)
            order = ["symbol", "path", "ts"]
        frame = frame.sort_values(order, kind="stable", ignore_index=True)
        symbol_values = frame["symbol"].to_numpy(dtype=object)
        if len(frame):
            change = np.flatnonzero(symbol_values[1:] != symbol_values[:-1]) + 1
            starts = np.concatenate([[0], change])
            symbols = tuple(str(symbol_values[i]) for i in starts)
            offsets = np.concatenate([starts, [len(frame)]]).astype(np.int64)
        else:
            symbols, offsets = (), np.zeros(1, dtype=np.int64)
        n = len(frame)
        flags = {
            name: frame[name].to_numpy(dtype=bool) if name in frame.columns else np.zeros(n, dtype=bool)
            for name in FLAG_FIELDS
        }
        path = frame["path"].to_numpy(dtype=np.int32) if "path" in frame.columns else None
        return cls(
            symbols=symbols,
            offsets=offsets,
            ts=frame["ts"].array.asi8.copy(),
            **{name: frame[name].to_numpy(dtype=np.float64, copy=True) for name in (*PRICE_FIELDS, "volume")},
            spread_bps=frame["spread_bps"].to_numpy(dtype=np.float64, copy=True),
            **flags,
            path=path,
        )

    def to_frame(self) -> pd.DataFrame:
        """Canonical stressed bars: the bar columns, the three flags, and ``path`` for Monte Carlo."""
        symbol = np.repeat(np.array(self.symbols, dtype=object), self.lengths())
        data: dict[str, object] = {
            "ts": pd.to_datetime(self.ts, unit="ns", utc=True),
            "symbol": symbol,
            **{name: getattr(self, name) for name in (*PRICE_FIELDS, "volume", "spread_bps", *FLAG_FIELDS)},
        }
        if self.path is not None:
            data["path"] = self.path
        frame = pd.DataFrame(data)
        frame["symbol"] = frame["symbol"].astype(str)
        return frame.loc[:, [*BAR_COLUMNS, *FLAG_FIELDS, *(["path"] if self.path is not None else [])]]


def array_field_names() -> tuple[str, ...]:
    return tuple(f.name for f in fields(BarArrays) if f.name not in {"symbols", "offsets"})
