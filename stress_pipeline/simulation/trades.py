"""Closed round trips from signed fills, shared by the backtest and the paper run.

Both simulations must count trades the same way, or the divergence report compares apples with
oranges. The paper run fills one order in several partial fills and may add to or trim a position;
the backtest fills each order at once. So a round trip here is a position episode, not a fill:

* it opens with the fill that takes a symbol's position away from flat, and closes with the fill
  that brings it back to flat; adds and partial closes in between belong to it (one signal, one
  round trip, however many fills it took);
* a fill that goes through zero (a long-to-short flip) closes one episode and opens the next; its
  quantity and fee are split pro rata between the two;
* ``pnl`` is the episode's cash flow, -sum(qty * price) - fees. A closed episode's quantities net
  to zero, so this is its exact realised PnL whatever the cost-basis method (FIFO and average cost
  agree on a whole episode); ``gross_pnl`` is the same before fees;
* ``qty`` is the quantity opened over the episode, ``entry_price`` and ``exit_price`` the
  quantity-weighted average prices of its opening and closing fills;
* an episode still open at the end of the fills is not a closed trade and is left out (the equity
  curve carries its mark-to-market value).

A position within ``ZERO_TOLERANCE`` of the size it came from counts as flat: quantities are float
sums, and a closing fill computed as ``target - position`` can leave 1e-20 behind.

The episode walk is sequential by nature (a flip depends on the position before it), so it is a
compiled pass over the fills sorted by symbol and time; thousands of fills take microseconds.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numba import njit

TRADE_COLUMNS = (
    "symbol", "entry_ts", "exit_ts", "side", "qty", "entry_price", "exit_price", "pnl", "gross_pnl", "fees",
)  # fmt: skip
ZERO_TOLERANCE = 1e-9  # |position| <= this x max(|position before|, |fill qty|) is flat


def round_trips(fills: pd.DataFrame) -> pd.DataFrame:
    """Closed round trips (one row each, ``TRADE_COLUMNS``) from fills with ``ts``, ``symbol``,
    signed ``qty``, ``price`` and ``fee`` (0 if absent), ordered by exit time then symbol."""
    if fills is None or len(fills) == 0:
        return empty_trades()
    codes, names = pd.factorize(fills["symbol"], sort=True)
    fee = fills["fee"].to_numpy(dtype=np.float64) if "fee" in fills.columns else np.zeros(len(fills))
    return round_trips_from_arrays(
        codes,
        np.asarray(names, dtype=object),
        _ts_ns(fills["ts"]),
        fills["qty"].to_numpy(dtype=np.float64),
        fills["price"].to_numpy(dtype=np.float64),
        fee,
    )


def round_trips_from_arrays(
    codes: np.ndarray, names: np.ndarray, ts: np.ndarray, qty: np.ndarray, price: np.ndarray, fee: np.ndarray
) -> pd.DataFrame:
    """:func:`round_trips` on arrays, for a simulation that has them already: ``codes`` index the
    symbol ``names`` (sorted names give rows ordered by symbol name at equal exit times), ``ts`` in
    int64 ns UTC. Fills at the same ts keep their given order."""
    if len(codes) == 0:
        return empty_trades()
    codes = np.asarray(codes, dtype=np.int64)
    ts = np.asarray(ts, dtype=np.int64)
    order = np.lexsort((np.arange(len(codes)), ts, codes))
    out = _episodes(
        codes[order],
        ts[order],
        np.asarray(qty, dtype=np.float64)[order],
        np.asarray(price, dtype=np.float64)[order],
        np.nan_to_num(np.asarray(fee, dtype=np.float64)[order]),
    )
    by_exit = np.lexsort((out[0], out[2]))
    sym, entry, exit_, side, opened, entry_px, exit_px, pnl, gross, fees = (a[by_exit] for a in out)
    return pd.DataFrame(
        {
            "symbol": pd.array(np.asarray(names, dtype=object)[sym], dtype="str"),
            "entry_ts": utc_stamps(entry),
            "exit_ts": utc_stamps(exit_),
            "side": side,
            "qty": opened,
            "entry_price": entry_px,
            "exit_price": exit_px,
            "pnl": pnl,
            "gross_pnl": gross,
            "fees": fees,
        }
    )


def utc_stamps(ns: np.ndarray) -> pd.DatetimeIndex:
    """int64 ns since the epoch as UTC timestamps (four times cheaper than ``pd.to_datetime``)."""
    return pd.DatetimeIndex(np.asarray(ns, dtype=np.int64).view("M8[ns]")).tz_localize("UTC")


def empty_trades() -> pd.DataFrame:
    """A trades frame with no rows and the right dtypes."""
    return pd.DataFrame(
        {
            "symbol": pd.array([], dtype="str"),
            "entry_ts": utc_stamps(np.array([], dtype=np.int64)),
            "exit_ts": utc_stamps(np.array([], dtype=np.int64)),
            "side": np.array([], dtype=np.int64),
            **{name: np.array([], dtype=np.float64) for name in TRADE_COLUMNS[4:]},
        }
    )


def _ts_ns(values: pd.Series) -> np.ndarray:
    return pd.DatetimeIndex(pd.to_datetime(values, utc=True)).as_unit("ns").asi8


@njit(cache=True)
def _episodes(sym, ts, qty, price, fee):
    """Walk fills sorted by symbol then time; emit one row per closed episode."""
    n = sym.shape[0]
    o_sym = np.empty(n, np.int64)
    o_entry = np.empty(n, np.int64)
    o_exit = np.empty(n, np.int64)
    o_side = np.empty(n, np.int64)
    o_qty = np.empty(n)
    o_entry_px = np.empty(n)
    o_exit_px = np.empty(n)
    o_pnl = np.empty(n)
    o_gross = np.empty(n)
    o_fees = np.empty(n)
    k = 0
    position = 0.0
    side = 0
    entry_ts = 0
    opened = opened_value = closed = closed_value = cash = fees = 0.0
    for i in range(n):
        if i == 0 or sym[i] != sym[i - 1]:
            position = 0.0  # an episode left open by the previous symbol is not a closed trade
        q = qty[i]
        if q == 0.0:
            continue
        size = abs(q)
        after = position + q
        if abs(after) <= ZERO_TOLERANCE * max(abs(position), size):
            after = 0.0
        if position == 0.0:  # a new episode
            side = 1 if q > 0.0 else -1
            entry_ts = ts[i]
            opened, opened_value, closed, closed_value = size, size * price[i], 0.0, 0.0
            cash, fees = -q * price[i], fee[i]
        elif (q > 0.0) == (side > 0):  # adding to the position
            opened += size
            opened_value += size * price[i]
            cash -= q * price[i]
            fees += fee[i]
        else:  # reducing, closing or flipping
            part = size if (after == 0.0 or (after > 0.0) == (side > 0)) else abs(position)
            share = part / size
            closed += part
            closed_value += part * price[i]
            cash += side * part * price[i]
            fees += fee[i] * share
            if after == 0.0 or part < size:
                o_sym[k] = sym[i]
                o_entry[k] = entry_ts
                o_exit[k] = ts[i]
                o_side[k] = side
                o_qty[k] = opened
                o_entry_px[k] = opened_value / opened
                o_exit_px[k] = closed_value / closed
                o_gross[k] = cash
                o_pnl[k] = cash - fees
                o_fees[k] = fees
                k += 1
            if part < size:  # the rest of the fill opens the opposite episode
                rest = size - part
                side = -side
                entry_ts = ts[i]
                opened, opened_value, closed, closed_value = rest, rest * price[i], 0.0, 0.0
                cash, fees = -side * rest * price[i], fee[i] * (1.0 - share)
        position = after
    return (
        o_sym[:k], o_entry[:k], o_exit[:k], o_side[:k], o_qty[:k],
        o_entry_px[:k], o_exit_px[:k], o_pnl[:k], o_gross[:k], o_fees[:k],
    )  # fmt: skip
