"""Bars as contiguous numpy arrays, the form every scenario transform works on.

Rows are sorted by symbol then time; ``offsets`` marks where each symbol's segment starts and ends.
Transforms never modify arrays in place: they copy the arrays they change (``replace``) and share the
rest, so the base bars stay intact and a transform costs only what it touches.

Converting from a canonical frame costs next to nothing when the frame is already in order (the
usual case: loaders, the IO manager and the transforms all produce ordered frames): the symbol's
dictionary codes give the segments, the order is checked in one pass, and the arrays are read-only
views of the frame's columns. Converting back reuses the frame's columns that no transform replaced
(pandas copy-on-write keeps both sides safe) and wraps the new ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Self

import numpy as np
import pandas as pd

from stress_pipeline.market.schema import bar_order, conform_bars, symbol_codes, symbol_column, symbol_names

PRICE_FIELDS = ("open", "high", "low", "close")
FLAG_FIELDS = ("stressed", "corrupted", "halted")
VALUE_FIELDS = (*PRICE_FIELDS, "volume", "spread_bps")


@dataclass(frozen=True)
class _Source:
    """The canonical frame arrays were read from without reordering, and which array is which column."""

    frame: pd.DataFrame
    columns: dict[int, str]  # id(array) -> column name, for the arrays that are views of the frame
    arrays: tuple[np.ndarray, ...]  # keeps those arrays (and so their ids) alive
    offsets: np.ndarray


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
    source: _Source | None = field(default=None, compare=False, repr=False)  # the frame read, when in order

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
        """Convert canonical bars; rows are sorted by symbol (then Monte Carlo path) and time (stable),
        unless they already are (checked, not redone)."""
        frame = conform_bars(bars)
        n = len(frame)
        codes, categories = symbol_codes(frame)
        path = bars["path"].to_numpy(dtype=np.int32) if "path" in bars.columns else None
        arrays: dict[str, np.ndarray] = {"ts": frame["ts"].array.asi8}
        for name in VALUE_FIELDS:
            arrays[name] = frame[name].to_numpy()
        for name in FLAG_FIELDS:
            arrays[name] = frame[name].to_numpy() if name in frame.columns else np.zeros(n, dtype=bool)
        order = bar_order(codes, arrays["ts"], path)
        if order is not None:
            codes = codes[order]
            arrays = {name: values[order] for name, values in arrays.items()}
            path = None if path is None else path[order]
        if n:
            starts = np.concatenate([[0], np.flatnonzero(codes[1:] != codes[:-1]) + 1])
            symbols = symbol_names(categories, codes[starts])
            offsets = np.concatenate([starts, [n]]).astype(np.int64)
        else:
            symbols, offsets = (), np.zeros(1, dtype=np.int64)
        source = None
        if order is None:
            shared = tuple(values for name, values in arrays.items() if name in frame.columns)
            source = _Source(
                frame=frame,
                columns={id(values): name for name, values in arrays.items() if name in frame.columns},
                arrays=shared,
                offsets=offsets,
            )
        return cls(symbols=symbols, offsets=offsets, path=path, source=source, **arrays)

    def to_frame(self, *, copy: bool = True) -> pd.DataFrame:
        """Canonical stressed bars: the bar columns, the three flags, and ``path`` for Monte Carlo.

        Columns still holding the arrays read by :meth:`from_frame` are that frame's columns (no
        copy). ``copy=False`` also wraps the other arrays without copying them: only for a caller that
        drops this object afterwards, since the frame and these arrays then share memory.
        """
        source = self.source
        data: dict[str, object] = {}
        for name in ("ts", "symbol", *VALUE_FIELDS, *FLAG_FIELDS):
            if name == "symbol":
                if source is not None and self.offsets is source.offsets:
                    data[name] = source.frame[name]
                else:
                    codes = np.repeat(np.arange(len(self.symbols), dtype=np.int32), self.lengths())
                    data[name] = symbol_column(codes, self.symbols)
                continue
            values = getattr(self, name)
            if source is not None and source.columns.get(id(values)) == name:
                data[name] = source.frame[name]
            elif name == "ts":
                data[name] = pd.Series(values.view("M8[ns]"), copy=copy).dt.tz_localize("UTC")
            else:
                data[name] = values.copy() if copy else values
        if self.path is not None:
            data["path"] = self.path.copy() if copy else self.path
        # Series of the source frame share its index: passing it skips pandas' index alignment.
        same_rows = source is not None and len(source.frame) == self.rows
        index = source.frame.index if same_rows else pd.RangeIndex(self.rows)
        return pd.DataFrame(data, index=index, copy=False)


def array_field_names() -> tuple[str, ...]:
    return tuple(f.name for f in fields(BarArrays) if f.name not in {"symbols", "offsets", "source"})
