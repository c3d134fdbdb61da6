"""The canonical depth table as dense books (:class:`~stress_pipeline.book.schema.DenseBook`), and back.

The kernels and the paper engine read books as arrays: per symbol, one row per distinct time and one
column per level. :func:`dense_books` replays the table (snapshots and updates) with the compiled
:func:`~stress_pipeline.book.kernels.replay`; :func:`books_table` writes dense books back as snapshot
rows; :func:`book_at` picks, for each bar time, the latest book at or before it, and
:func:`panel_books` lines books up with a bar panel for the paper engine.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

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


class PanelBooks(NamedTuple):
    """Books aligned to a bar panel, as the paper engine reads them: ``booked`` (T, S) says a book is in
    force at the bar; levels (T, S, L) as distances from that book's mid in bps (``bid_off``: how far
    below, ``ask_off``: how far above; NaN for an empty level) and sizes (0 for an empty level)."""

    booked: np.ndarray
    bid_off: np.ndarray
    bid_sz: np.ndarray
    ask_off: np.ndarray
    ask_sz: np.ndarray


def panel_books(books: Mapping[str, DenseBook], symbols: Sequence[str], bar_ts: np.ndarray) -> PanelBooks:
    """For each bar and symbol, the book in force (the latest at or before the bar's open), as level
    distances from its mid. The mid is halfway between the best bid and ask; with one side empty, the
    other side's best (that side's touch is then at 0 bps and the empty side fills nothing). A symbol
    without books, and bars before its first book, are not ``booked``."""
    bar_ts = np.asarray(bar_ts, dtype=np.int64)
    n, s_count = len(bar_ts), len(symbols)
    levels = max((books[name].levels for name in symbols if name in books), default=0)
    booked = np.zeros((n, s_count), dtype=np.bool_)
    offsets = {side: np.full((n, s_count, levels), np.nan) for side in ("bid", "ask")}
    sizes = {side: np.zeros((n, s_count, levels)) for side in ("bid", "ask")}
    for s, name in enumerate(symbols):
        book = books.get(name)
        if book is None or not len(book.ts):
            continue
        rows = book_at(book, bar_ts)
        ok = rows >= 0
        booked[:, s] = ok
        rows = np.where(ok, rows, 0)
        bid, ask = book.bid_px[rows], book.ask_px[rows]
        best_bid, best_ask = bid[:, 0], ask[:, 0]
        mid = np.where(np.isnan(best_bid), best_ask, np.where(np.isnan(best_ask), best_bid, (best_bid + best_ask) / 2))
        width = book.levels
        with np.errstate(invalid="ignore"):
            offsets["bid"][:, s, :width] = np.where(ok[:, None], 1e4 * (1.0 - bid / mid[:, None]), np.nan)
            offsets["ask"][:, s, :width] = np.where(ok[:, None], 1e4 * (ask / mid[:, None] - 1.0), np.nan)
        sizes["bid"][:, s, :width] = np.where(ok[:, None], book.bid_sz[rows], 0.0)
        sizes["ask"][:, s, :width] = np.where(ok[:, None], book.ask_sz[rows], 0.0)
    return PanelBooks(booked, offsets["bid"], sizes["bid"], offsets["ask"], sizes["ask"])


def no_panel_books(n_bars: int, n_symbols: int) -> PanelBooks:
    """The bars-only case: nothing booked, no levels."""
    empty = np.zeros((n_bars, n_symbols, 0))
    return PanelBooks(np.zeros((n_bars, n_symbols), dtype=np.bool_), empty, empty, empty, empty)
