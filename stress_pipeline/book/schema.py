"""The canonical depth table and its dense form: order-book levels, defined once, validated at the boundary.

One row per book level: ``ts`` timestamp[ns, UTC], ``symbol`` (dictionary codes, as in the bar table),
``side`` ("bid" or "ask"), ``level`` (0 = best), ``price``, ``size`` (in base units, >= 0) and
``kind``: "snapshot" rows at a ``ts`` replace that side of the book (levels not given are empty);
"update" rows replace one level (price and size; size 0 empties it) and leave the others.

Rules a table must keep (checked by :func:`validate_depth`, each failure naming the row's place in
the file and the field): sides and kinds from their lists; rows in time order per symbol (symbols may
interleave: rows are grouped by symbol, stably, before the checks); within one
snapshot side, levels 0, 1, 2, ... in order with prices moving away from the touch (bids strictly
falling, asks strictly rising); sizes finite and >= 0; prices finite and > 0; best bid below best
ask in each snapshot (a crossed book is an error, never fixed up).

The kernels read the dense form (:class:`DenseBook`): per symbol, for each distinct ``ts``, arrays of
shape (T, L) for bid and ask prices and sizes, level 0 first; an empty level has price NaN and size 0.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa

from stress_pipeline.market.schema import SYMBOL_TYPE, conform_symbols

DEPTH_COLUMNS = ("ts", "symbol", "side", "level", "price", "size", "kind")
SIDES = ("bid", "ask")
KINDS = ("snapshot", "update")
BID, ASK = 0, 1
SNAPSHOT, UPDATE = 0, 1

DEPTH_SCHEMA = pa.schema(
    [
        pa.field("ts", pa.timestamp("ns", tz="UTC"), nullable=False),
        pa.field("symbol", SYMBOL_TYPE, nullable=False),
        pa.field("side", pa.string(), nullable=False),
        pa.field("level", pa.int32(), nullable=False),
        pa.field("price", pa.float64(), nullable=False),
        pa.field("size", pa.float64(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),
    ]
)

_TS_DTYPE = pd.DatetimeTZDtype("ns", "UTC")


class DepthError(ValueError):
    """A depth table or file breaks the canonical layout; the message names where and the field.

    ``location`` is e.g. ``"line 7"`` (CSV, 1-based with the header), ``"row 6"`` (Parquet, 0-based)
    or ``"bids[3]"`` (JSON); ``field`` the column.
    """

    def __init__(self, source: str, problem: str, *, location: str | None = None, field: str | None = None):
        self.source, self.location, self.field, self.problem = str(source), location, field, problem
        where = ", ".join(part for part in (location, f"field {field}" if field else None) if part)
        super().__init__(f"{self.source}: {where}: {problem}" if where else f"{self.source}: {problem}")


Locate = Callable[[int], str]


def row_locator(row: int) -> str:
    return f"row {row}"


class DenseBook(NamedTuple):
    """One symbol's book at each of its distinct times: ``ts`` (T,) int64 ns; prices and sizes (T, L)."""

    ts: np.ndarray
    bid_px: np.ndarray
    bid_sz: np.ndarray
    ask_px: np.ndarray
    ask_sz: np.ndarray

    @property
    def levels(self) -> int:
        return self.bid_px.shape[1]


def conform_depth(frame: pd.DataFrame, source: str = "<table>", locate: Locate = row_locator) -> pd.DataFrame:
    """``frame`` as the canonical depth table (column order, dtypes), validated; else :class:`DepthError`.

    ``kind`` may be left out (every row a snapshot row). ``locate`` turns a row position into the
    place in the file that an error names.
    """
    if "kind" not in frame.columns:
        frame = frame.assign(kind="snapshot")
    missing = [c for c in DEPTH_COLUMNS if c not in frame.columns]
    if missing:
        raise DepthError(source, f"missing column(s) {', '.join(missing)}; expected {', '.join(DEPTH_COLUMNS)}",
                         field=missing[0])  # fmt: skip
    out = frame.loc[:, list(DEPTH_COLUMNS)].reset_index(drop=True)
    if out["ts"].dtype != _TS_DTYPE:
        out["ts"] = pd.to_datetime(out["ts"], utc=True).astype(_TS_DTYPE)
    out["symbol"] = conform_symbols(out["symbol"])
    codes = out["symbol"].array.codes
    if len(codes) > 1 and bool(np.any(codes[1:] < codes[:-1])):  # symbols interleaved: group them, stably
        order = np.argsort(codes, kind="stable")
        out = out.take(order).reset_index(drop=True)
        file_locate = locate
        locate = lambda row: file_locate(int(order[row]))  # noqa: E731 - errors still name the file's row
    for name, allowed in (("side", SIDES), ("kind", KINDS)):
        values = out[name].astype("str")
        bad = ~values.isin(allowed)
        if bad.any():
            row = int(np.argmax(bad.to_numpy()))
            raise DepthError(source, f"{values.iloc[row]!r} is not one of {', '.join(allowed)}", location=locate(row),
                             field=name)  # fmt: skip
        out[name] = values
    level = pd.to_numeric(out["level"], errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(level) | (level < 0) | (level != np.floor(level))
    if bad.any():
        row = int(np.argmax(bad))
        raise DepthError(source, f"level must be a whole number >= 0 (got {out['level'].iloc[row]!r})",
                         location=locate(row), field="level")  # fmt: skip
    out["level"] = level.astype(np.int32)
    for name in ("price", "size"):
        out[name] = pd.to_numeric(out[name], errors="coerce").astype(np.float64)
    validate_depth(out, source, locate)
    return out


def validate_depth(table: pd.DataFrame, source: str = "<table>", locate: Locate = row_locator) -> None:
    """Raise :class:`DepthError` at the first row that breaks a rule of the module docstring."""
    ts = np.asarray(table["ts"].array.asi8)
    codes = table["symbol"].array.codes.astype(np.int64)
    side = (table["side"].to_numpy(dtype=object) == "ask").astype(np.int8)
    snap = table["kind"].to_numpy(dtype=object) == "snapshot"
    level = table["level"].to_numpy(dtype=np.int64)
    price = table["price"].to_numpy(dtype=np.float64)
    size = table["size"].to_numpy(dtype=np.float64)

    def fail(mask: np.ndarray, field: str, problem: Callable[[int], str]) -> None:
        if mask.any():
            row = int(np.argmax(mask))
            raise DepthError(source, problem(row), location=locate(row), field=field)

    fail(~np.isfinite(price) | (price <= 0), "price",
         lambda r: f"price must be a finite number > 0 (got {float(price[r])!r})")
    fail(~np.isfinite(size), "size", lambda r: f"size must be a finite number (got {float(size[r])!r})")
    fail(size < 0, "size", lambda r: f"negative size {float(size[r])!r}")
    n = len(table)
    if n < 2:
        fail(snap & (level != 0), "level", lambda r: f"a snapshot side starts at level 0 (got {level[r]})")
        return
    same_symbol = np.r_[False, codes[1:] == codes[:-1]]
    fail(same_symbol & np.r_[False, ts[1:] < ts[:-1]], "ts", lambda r: "rows are not in time order for the symbol")
    same_group = same_symbol & np.r_[False, (ts[1:] == ts[:-1]) & (side[1:] == side[:-1]) & snap[1:] & snap[:-1]]
    start = snap & ~same_group
    fail(start & (level != 0), "level", lambda r: f"a snapshot side starts at level 0 (got {level[r]})")
    prev_level = np.r_[-1, level[:-1]]
    fail(same_group & (level != prev_level + 1), "level",
         lambda r: f"unsorted levels: level {level[r]} after level {prev_level[r]} (expected {prev_level[r] + 1})")
    prev_price = np.r_[np.nan, price[:-1]]
    worse = np.where(side == BID, price < prev_price, price > prev_price)
    fail(same_group & ~worse, "price",
         lambda r: f"unsorted levels: {SIDES[side[r]]} level {level[r]} at {float(price[r])!r} is not "
                   f"{'below' if side[r] == BID else 'above'} level {level[r] - 1} at {float(prev_price[r])!r}")
    _check_crossed(ts, codes, side, snap & (level == 0), price, source, locate)


def _check_crossed(ts, codes, side, best, price, source: str, locate: Locate) -> None:
    rows = np.flatnonzero(best)
    if not len(rows):
        return
    key = np.stack([codes[rows], ts[rows]])
    order = np.lexsort((side[rows], key[1], key[0]))
    rows = rows[order]
    pair = (codes[rows[1:]] == codes[rows[:-1]]) & (ts[rows[1:]] == ts[rows[:-1]])
    pair &= (side[rows[:-1]] == BID) & (side[rows[1:]] == ASK)
    crossed = pair & (price[rows[:-1]] >= price[rows[1:]])
    if crossed.any():
        i = int(np.argmax(crossed))
        bid_row, ask_row = int(rows[i]), int(rows[i + 1])
        raise DepthError(source, f"crossed book: best bid {float(price[bid_row])!r} ({locate(bid_row)}) >= best ask "
                                 f"{float(price[ask_row])!r}", location=locate(ask_row), field="price")  # fmt: skip


def to_arrow(table: pd.DataFrame) -> pa.Table:
    """A canonical depth frame as an Arrow table with :data:`DEPTH_SCHEMA`."""
    return pa.Table.from_pandas(table.loc[:, list(DEPTH_COLUMNS)], schema=DEPTH_SCHEMA, preserve_index=False)


def empty_depth() -> pd.DataFrame:
    frame = DEPTH_SCHEMA.empty_table().to_pandas()
    return conform_depth(frame.assign(symbol=frame["symbol"].astype(object)))
