"""The rules both simulations share, written once: how a weight becomes a position, how a fill is
booked, and what a round trip is.

The backtest's loop (``backtest._simulate``), the paper engine (``simulation/engine``) and the trades
table (``trades.round_trips``) all call these compiled functions, so the two simulations cannot size,
book or count trades differently.

Sizing (:func:`sized_weight`, :func:`target_quantity`): equal allocation. A strategy weight ``w``
of a symbol becomes ``clip(w x position_scale, +-max_weight)`` (NaN counts as 0, +-inf as +-1), and
that weight means ``weight x equity / n_symbols`` of notional, equity marked to market at the
decision bar's close. The paper engine's policy controller multiplies by its mode's scale (1 with
the risk stack off). A ruined account (equity <= 0) or a price that is not positive sizes to 0.

Booking (:func:`book_fill`), per symbol, average cost: a fill of signed ``q`` at ``price`` with
``fee`` takes ``q x price + fee`` from the cash; a fill that adds to the position (or opens one)
moves the average entry price; one that reduces it realises ``closed x (price - average) x side``
(``realised``, before fees; ``fees`` accumulate separately); a fill through zero closes the
position and opens the opposite one at the fill price.

Round trips: a round trip is a position episode, not a fill. It opens with the fill that takes the
symbol away from flat and closes with the fill that brings it back; adds and partial closes in
between belong to it; a fill through zero closes one and opens the next, its quantity and fee split
pro rata. Its ``pnl`` is its cash flow less its fees (exact realised PnL whatever the cost basis,
since a closed episode's quantities net to zero); ``gross_pnl`` the same before fees. A position
within ``ZERO_TOLERANCE`` of the larger of its size before and the fill counts as flat: quantities
are float sums, and a closing fill computed as ``target - position`` can leave 1e-20 behind.
:func:`book_fill` returns the round trip a fill closes, so the paper engine's win-rate controller
counts exactly the trades the metrics count.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from stress_pipeline.trading.compiled import compiled

ZERO_TOLERANCE = 1e-9  # |position| <= this x max(|position before|, |fill qty|) is flat

#: One symbol's book: the position and its average entry price, realised PnL (before fees) and fees
#: since the start, and the open round trip: its side (+1 long, -1 short, 0 none), entry time,
#: quantity and value opened, quantity and value closed, cash flow and fees so far.
BOOK_DTYPE = np.dtype(
    [
        ("position", np.float64), ("avg_price", np.float64), ("realised", np.float64), ("fees", np.float64),
        ("side", np.int64), ("entry_ts", np.int64), ("opened", np.float64), ("opened_value", np.float64),
        ("closed", np.float64), ("closed_value", np.float64), ("flow", np.float64), ("trip_fees", np.float64),
    ],
    align=True,
)  # fmt: skip


class Sizing(NamedTuple):
    """How both simulations size: ``SimConfig.position_scale`` and ``max_weight``, and the number of
    symbols the equity is shared among."""

    position_scale: float
    max_weight: float
    n_symbols: int


class RoundTrip(NamedTuple):
    """The round trip a fill closed (``closed`` False: it closed none; the other fields are then 0)."""

    closed: bool
    side: int
    entry_ts: int
    exit_ts: int
    qty: float
    entry_price: float
    exit_price: float
    pnl: float
    gross_pnl: float
    fees: float


def sizing_of(config, n_symbols: int) -> Sizing:
    """The :class:`Sizing` of a ``SimConfig`` for ``n_symbols`` symbols (types fixed for the compiler)."""
    return Sizing(float(config.position_scale), float(config.max_weight), int(n_symbols))


def new_book(n_symbols: int) -> np.ndarray:
    """Flat books for ``n_symbols`` symbols."""
    return np.zeros(n_symbols, dtype=BOOK_DTYPE)


# ------------------------------------------------------------------------------------------- sizing


@compiled(inline="always")
def sized_weight(raw, sizing):
    """The weight a strategy's ``raw`` weight is traded to: finite, x position_scale, clipped."""
    if raw != raw:
        w = 0.0
    elif raw == np.inf:
        w = 1.0
    elif raw == -np.inf:
        w = -1.0
    else:
        w = raw
    w *= sizing.position_scale
    return min(max(w, -sizing.max_weight), sizing.max_weight)


@compiled(inline="always")
def target_quantity(weight, equity, price, sizing, mode_scale):
    """Signed quantity for a sized ``weight``: weight x mode_scale x max(equity, 0) / n_symbols / price;
    0 when the price is not a positive number."""
    if not price > 0.0:
        return 0.0
    allocation = max(equity, 0.0) / sizing.n_symbols
    qty = weight * mode_scale * allocation / price
    return qty if np.isfinite(qty) else 0.0


@compiled
def sized_weights(weights, sizing):
    """:func:`sized_weight` of every element of a (T, S) array, as a new C-contiguous array."""
    n, m = weights.shape
    out = np.empty((n, m))
    for t in range(n):
        for j in range(m):
            out[t, j] = sized_weight(weights[t, j], sizing)
    return out


# ------------------------------------------------------------------------------------------ booking


@compiled
def book_fill(entry, cash, ts, q, price, fee):
    """Book a fill of signed ``q`` at ``price`` with ``fee`` at time ``ts`` on one symbol's book
    ``entry`` (a ``BOOK_DTYPE`` record, updated in place). Returns (cash after the fill, the
    :class:`RoundTrip` it closed)."""
    none = RoundTrip(False, 0, 0, 0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    if q == 0.0:
        return cash, none
    cash -= q * price + fee
    size = abs(q)
    position = entry.position
    after = position + q
    if abs(after) <= ZERO_TOLERANCE * max(abs(position), size):
        after = 0.0
    entry.fees += fee
    trip = none
    if position == 0.0:  # a new round trip
        _open_trip(entry, 1 if q > 0.0 else -1, ts, size, price, fee)
    elif (q > 0.0) == (entry.side > 0):  # adding to the position
        entry.avg_price = (entry.avg_price * abs(position) + price * size) / (abs(position) + size)
        entry.opened += size
        entry.opened_value += size * price
        entry.flow -= q * price
        entry.trip_fees += fee
    else:  # reducing, closing or flipping
        side = entry.side
        part = size if (after == 0.0 or (after > 0.0) == (side > 0)) else abs(position)
        share = part / size
        entry.realised += part * (price - entry.avg_price) * side
        entry.closed += part
        entry.closed_value += part * price
        entry.flow += side * part * price
        entry.trip_fees += fee * share
        if after == 0.0 or part < size:
            trip = RoundTrip(
                True, side, entry.entry_ts, ts, entry.opened, entry.opened_value / entry.opened,
                entry.closed_value / entry.closed, entry.flow - entry.trip_fees, entry.flow, entry.trip_fees,
            )  # fmt: skip
            entry.side = 0
            entry.avg_price = 0.0
        if part < size:  # the rest of the fill opens the opposite round trip
            _open_trip(entry, -side, ts, size - part, price, fee * (1.0 - share))
    entry.position = after
    return cash, trip


@compiled(inline="always")
def _open_trip(entry, side, ts, size, price, fee):
    entry.side = side
    entry.entry_ts = ts
    entry.avg_price = price
    entry.opened = size
    entry.opened_value = size * price
    entry.closed = 0.0
    entry.closed_value = 0.0
    entry.flow = -side * size * price
    entry.trip_fees = fee
