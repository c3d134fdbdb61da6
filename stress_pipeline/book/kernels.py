"""The book kernels (numba): replaying level rows into dense books, and walking a book with an order.

Walk (:func:`walk`): a market order takes the levels in order from the touch, each up to its size,
until it is filled or the book runs out (a partial fill); it returns the quantity filled, the average
price and the number of levels it took from. ``skip`` is depth already taken from the same book by
earlier fills (the book does not refill within a snapshot), so successive orders walk on from where
the last one stopped. A ``limit`` stops the walk at the first level priced beyond it.

Queue (:func:`queue_fill`): a resting limit order joins the back of the queue. The size ahead of it
is the resting size on its side at prices at or better than its limit when it arrives
(:func:`queue_ahead`). Volume that trades at or through the limit price afterwards first works off
that queue, and only the excess fills the order. This is the conservative queue model (no
cancellations ahead of us are assumed; hftbacktest's "risk-averse" model).

Replay (:func:`replay`): level rows in time order (the canonical table's columns as arrays) into one
dense book per distinct time: a snapshot side replaces that side (levels not given are emptied), an
update row replaces one level. The book after the last row of a time is the book at that time.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit


@njit(cache=True)
def walk(prices: np.ndarray, sizes: np.ndarray, qty: float, skip: float = 0.0, limit: float = math.nan,
         buy: bool = True) -> tuple[float, float, int]:  # fmt: skip
    """Fill ``qty`` (> 0) against levels ``prices``/``sizes`` (touch first: asks for a ``buy``, bids for
    a sell) after ``skip`` of depth is gone; stop at a level priced beyond ``limit`` (NaN: no limit).
    Returns (filled, average price, levels taken); (0, NaN, 0) when nothing fills."""
    filled = 0.0
    cost = 0.0
    taken = 0
    rising = buy
    for i in range(prices.shape[0]):
        if filled >= qty:
            break
        size = sizes[i]
        price = prices[i]
        if size <= 0.0 or price != price:
            continue
        if skip >= size:
            skip -= size
            continue
        if limit == limit and ((rising and price > limit) or (not rising and price < limit)):
            break
        here = min(size - skip, qty - filled)
        skip = 0.0
        filled += here
        cost += here * price
        taken += 1
    if filled <= 0.0:
        return 0.0, math.nan, 0
    return filled, cost / filled, taken


@njit(cache=True)
def queue_ahead(prices: np.ndarray, sizes: np.ndarray, limit: float, buy: bool) -> float:
    """Resting size on the order's own side (``prices``/``sizes``: bids for a buy) at or better than
    ``limit``: what must trade before a new order at ``limit`` fills."""
    ahead = 0.0
    for i in range(prices.shape[0]):
        price = prices[i]
        if price != price:
            continue
        if (buy and price >= limit) or (not buy and price <= limit):
            ahead += sizes[i]
    return ahead


@njit(cache=True)
def queue_fill(queue: float, traded: float, qty: float) -> tuple[float, float]:
    """``traded`` volume at or through the limit: first works off ``queue``, the rest fills up to
    ``qty``. Returns (filled, queue left)."""
    eaten = min(queue, traded)
    return min(qty, traded - eaten), queue - eaten


@njit(cache=True)
def replay(ts: np.ndarray, side: np.ndarray, level: np.ndarray, price: np.ndarray, size: np.ndarray,
           snapshot: np.ndarray, levels: int):  # fmt: skip
    """Dense books (distinct times, and (T, ``levels``) bid/ask prices and sizes) from level rows in
    time order; ``side`` 0 bid / 1 ask, ``snapshot`` True for snapshot rows. Levels beyond ``levels``
    are dropped by the caller's choice of ``levels`` (the loader passes the deepest level seen)."""
    n = ts.shape[0]
    times = 0
    for i in range(n):
        if i == 0 or ts[i] != ts[i - 1]:
            times += 1
    out_ts = np.empty(times, dtype=np.int64)
    px = np.full((2, times, levels), np.nan)
    sz = np.zeros((2, times, levels))
    cur_px = np.full((2, levels), np.nan)
    cur_sz = np.zeros((2, levels))
    t = -1
    last_cleared_t = np.full(2, -1, dtype=np.int64)
    for i in range(n):
        if i == 0 or ts[i] != ts[i - 1]:
            if t >= 0:
                px[:, t, :] = cur_px
                sz[:, t, :] = cur_sz
            t += 1
            out_ts[t] = ts[i]
        s = side[i]
        if snapshot[i] and last_cleared_t[s] != t:
            cur_px[s, :] = np.nan
            cur_sz[s, :] = 0.0
            last_cleared_t[s] = t
        lv = level[i]
        if lv < levels:
            cur_px[s, lv] = price[i]
            cur_sz[s, lv] = size[i]
    if t >= 0:
        px[:, t, :] = cur_px
        sz[:, t, :] = cur_sz
    return out_ts, px[0], sz[0], px[1], sz[1]


@njit(cache=True)
def replay_walk(ts: np.ndarray, side: np.ndarray, level: np.ndarray, price: np.ndarray, size: np.ndarray,
                snapshot: np.ndarray, levels: int, qty: float):  # fmt: skip
    """Replay level rows (as :func:`replay`) and, each time the rows of a time are in, walk a market buy
    of ``qty`` up the asks and a market sell down the bids of the book at that time. Returns (books,
    quantity bought, notional bought, quantity sold, notional sold, levels taken): what
    ``stress-pipeline bench book`` times per row (one row = one book update)."""
    n = ts.shape[0]
    cur_px = np.full((2, levels), np.nan)
    cur_sz = np.zeros((2, levels))
    last_cleared_t = np.full(2, -1, dtype=np.int64)
    t = -1
    books = 0
    bought = bought_value = sold = sold_value = 0.0
    taken_total = 0
    for i in range(n):
        if i == 0 or ts[i] != ts[i - 1]:
            t += 1
        s = side[i]
        if snapshot[i] and last_cleared_t[s] != t:
            cur_px[s, :] = np.nan
            cur_sz[s, :] = 0.0
            last_cleared_t[s] = t
        lv = level[i]
        if lv < levels:
            cur_px[s, lv] = price[i]
            cur_sz[s, lv] = size[i]
        if i == n - 1 or ts[i + 1] != ts[i]:
            books += 1
            filled, average, taken = walk(cur_px[1], cur_sz[1], qty, 0.0, math.nan, True)
            if filled > 0.0:
                bought += filled
                bought_value += filled * average
            taken_total += taken
            filled, average, taken = walk(cur_px[0], cur_sz[0], qty, 0.0, math.nan, False)
            if filled > 0.0:
                sold += filled
                sold_value += filled * average
            taken_total += taken
    return books, bought, bought_value, sold, sold_value, taken_total
