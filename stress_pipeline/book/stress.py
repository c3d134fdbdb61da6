"""Depth stress on dense books: a collapse of resting size on one or both sides, with recovery.

``depth_collapse`` (the scenario type in ``scenarios/model.py``) multiplies the size at every level by
a factor path over its window: ``1 - drop_pct`` for ``duration_bars`` bars, then back to 1 in a
straight line over ``recovery_bars`` bars (the j-th recovery bar, j = 1..R, at
``1 - drop_pct * (1 - j / (R + 1))``). Prices are left alone: the touch moves with the spread, which
the scenario widens on the bars by the same path (``factor ** -spread_elasticity``), so spread and
depth move together as they do in a flash crash. Sizes only shrink: no level is emptied or clipped,
and a factor is never below ``1 - drop_pct``.
"""

from __future__ import annotations

import numpy as np

from stress_pipeline.book.schema import DenseBook

SIDES = ("both", "bid", "ask")


def collapse_path(drop_pct: float, duration_bars: int, recovery_bars: int) -> np.ndarray:
    """The depth factor of each bar of the window (``duration_bars + recovery_bars`` values)."""
    if not 0 < drop_pct < 1:
        raise ValueError(f"drop_pct must be between 0 and 1 (got {drop_pct})")
    recovery = 1.0 - drop_pct * (1.0 - np.arange(1, recovery_bars + 1) / (recovery_bars + 1))
    return np.concatenate([np.full(duration_bars, 1.0 - drop_pct), recovery])


def collapse_book(book: DenseBook, rows: np.ndarray, factors: np.ndarray, side: str = "both") -> DenseBook:
    """A copy of ``book`` with the sizes of ``rows`` (book rows) times ``factors`` on ``side``."""
    if side not in SIDES:
        raise ValueError(f"side must be one of {', '.join(SIDES)} (got {side!r})")
    rows = np.asarray(rows, dtype=np.int64)
    factors = np.asarray(factors, dtype=np.float64)[:, None]
    bid_sz, ask_sz = book.bid_sz, book.ask_sz
    if side in ("both", "bid"):
        bid_sz = bid_sz.copy()
        bid_sz[rows] *= factors
    if side in ("both", "ask"):
        ask_sz = ask_sz.copy()
        ask_sz[rows] *= factors
    return book._replace(bid_sz=bid_sz, ask_sz=ask_sz)
