"""The canonical depth table as dense books (:class:`~stress_pipeline.book.schema.DenseBook`), and back.

The kernels and the paper engine read books as arrays: per symbol, one row per distinct time and one
column per level. :func:`dense_books` replays the table (snapshots and updates) with the compiled
:func:`~stress_pipeline.book.kernels.replay`; :func:`books_table` writes dense books back as snapshot
rows; :func:`book_at` picks, for each bar time, the latest book at or before it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from stress_pipeline.book.kernels import replay
from stress_pipeline.book.schema import DEPTH_COLUMNS, DenseBook, conform_depth
from stress_pipeline.market.schema import symbol_column


def dense_books(table: pd.DataFrame, levels: int | None = None) -> dict[str, DenseBook]:
    """One dense book per symbol of a canonical depth table; ``levels`` defaults to the deepest seen."""
    codes = table["symbol"].array.codes
    names = table["symbol"].array.categories
    ts = np.asarray(table["ts"].array.asi8)
    side = (table["side"].to_numpy(dtype=object) == "ask").astype(np.int8)
    level = table["level"].to_numpy(dtype=np.int64)
    price = table["price"].to_numpy(dtype=np.float64)
    size = table["size"].to_numpy(dtype=np.float64)
    snap = table["kind"].to_numpy(dtype=object) == "snapshot"
    depth = int(level.max()) + 1 if levels is None and len(level) else int(levels or 0)
    out = {}
    for code in np.unique(codes):
        rows = np.flatnonzero(codes == code)
        out[str(names[code])] = DenseBook(*replay(ts[rows], side[rows], level[rows], price[rows], size[rows],
                                                  snap[rows], depth))  # fmt: skip
    return out


def books_table(books: Mapping[str, DenseBook]) -> pd.DataFrame:
    """Dense books as canonical snapshot rows (empty levels left out), validated."""
    frames = []
    names = list(books)
    for code, name in enumerate(names):
        book = books[name]
        for side, px, sz in (("bid", book.bid_px, book.bid_sz), ("ask", book.ask_px, book.ask_sz)):
            keep = np.isfinite(px)
            rows, cols = np.nonzero(keep)
            frames.append(pd.DataFrame({
                "ts": book.ts[rows], "code": code, "side": side, "level": cols.astype(np.int32),
                "price": px[rows, cols], "size": sz[rows, cols],
            }))  # fmt: skip
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["ts", "code", "side", "level"])
    frame = frame.sort_values(["code", "ts", "side", "level"], kind="stable", ascending=[True, True, False, True])
    frame = frame.reset_index(drop=True)
    frame["symbol"] = symbol_column(frame["code"].to_numpy(dtype=np.int64), names)
    frame["ts"] = pd.to_datetime(frame["ts"].to_numpy(dtype=np.int64), utc=True)
    frame["kind"] = "snapshot"
    return conform_depth(frame.loc[:, list(DEPTH_COLUMNS)])


def book_at(book: DenseBook, bar_ts: Sequence[int] | np.ndarray) -> np.ndarray:
    """For each bar time, the row of ``book`` in force (the latest at or before it); -1 before the first."""
    return np.searchsorted(book.ts, np.asarray(bar_ts, dtype=np.int64), side="right") - 1
