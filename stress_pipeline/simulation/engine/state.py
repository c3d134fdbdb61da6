"""The paper engine's mutable state as record arrays, and its event log.

Everything the loop changes lives in a few NumPy record arrays (numba reads and writes their fields
by name) bundled in :class:`EngineState`:

* ``account`` (one record): the cash and the run's counters (events written, next order and fill
  id, execution failures, closed round trips, the policy controller's mode), and the exchange
  session (``venue_down`` and the next reconnect, with the router's ``pause_on_outage``);
* ``book`` (one record per symbol, ``booking.BOOK_DTYPE``): position, average entry, the open
  round trip; booked by ``booking.book_fill``, the function the backtest books with;
* ``orders`` (one per symbol): the symbol's single live order, if any;
* ``symbols`` (one per symbol): the router's and the venue's per-symbol scratch;
* ``ring``, ``ess_i``/``ess_f``, ``rate``: the policy controller's outcomes, the safety governor's
  and the rate limiter's state, in the shapes their own modules define.

Events go into a record array of ``events.EVENT_DTYPE``, preallocated and doubled by the loop when a
bar might not fit, through :func:`emit`.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import from_dtype, types

from stress_pipeline.simulation.booking import BOOK_DTYPE
from stress_pipeline.simulation.events import EVENT_DTYPE
from stress_pipeline.trading.compiled import compiled
from stress_pipeline.trading.exchange.rate_limits import new_state as new_rate_state
from stress_pipeline.trading.risk.safety_governor import new_state as new_ess_state

NEVER = np.iinfo(np.int64).max
NO_ORDER, PENDING, IN_FLIGHT, WORKING = 0, 1, 2, 3  # an order slot's status

ACCOUNT_DTYPE = np.dtype(
    [
        ("cash", np.float64), ("events", np.int64), ("next_order_id", np.int64), ("next_fill_id", np.int64),
        ("failures", np.int64), ("trades", np.int64), ("mode", np.int64), ("venue_down", np.bool_),
        ("reconnect_at", np.int64),
    ],
    align=True,
)  # fmt: skip

#: A symbol's live order: its id, status, the time of its next action (send or arrival), send
#: attempt, purpose (a reason code: REBALANCE, STOP_LOSS_EXIT, ESS_FLATTEN), creation time, the bar
#: it last traded in, limit and IOC flags, signed quantity, signed remainder, limit price, and (a
#: resting limit order against a book) the size still queued ahead of it.
ORDER_DTYPE = np.dtype(
    [
        ("id", np.int64), ("status", np.int64), ("time", np.int64), ("attempt", np.int64), ("purpose", np.int64),
        ("created", np.int64), ("bar", np.int64), ("limit", np.bool_), ("ioc", np.bool_), ("qty", np.float64),
        ("remaining", np.float64), ("price", np.float64), ("queue", np.float64),
    ],
    align=True,
)  # fmt: skip

#: Per symbol: the sized weight it last took, volume used in the current bar, when its stop triggers
#: in this bar (NEVER: not), the side of a stop-loss exit that keeps it from re-entering that way,
#: whether its target is unfinished (``dirty``), the risk reason last logged for its target, and the
#: router's view of its committed notional and whether it counts as an open position.
SYMBOL_DTYPE = np.dtype(
    [
        ("last_weight", np.float64), ("used", np.float64), ("stop_time", np.int64), ("stop_lock", np.float64),
        ("dirty", np.bool_), ("block", np.int64), ("committed", np.float64), ("is_open", np.bool_),
    ],
    align=True,
)  # fmt: skip


class EngineState(NamedTuple):
    account: np.ndarray  # (1,) ACCOUNT_DTYPE
    book: np.ndarray  # (S,) BOOK_DTYPE
    orders: np.ndarray  # (S,) ORDER_DTYPE
    symbols: np.ndarray  # (S,) SYMBOL_DTYPE
    ring: np.ndarray  # (window,) int64: the policy controller's last outcomes
    ess_i: np.ndarray  # safety governor state
    ess_f: np.ndarray
    rate: np.ndarray  # rate limiter state


def new_engine_state(n_symbols: int, initial_capital: float, controller_window: int) -> EngineState:
    """A flat account with ``initial_capital`` of cash and nothing in flight."""
    account = np.zeros(1, dtype=ACCOUNT_DTYPE)
    account[0]["cash"] = initial_capital
    symbols = np.zeros(n_symbols, dtype=SYMBOL_DTYPE)
    symbols["stop_time"] = NEVER
    ess_i, ess_f = new_ess_state(initial_capital)
    return EngineState(
        account=account, book=np.zeros(n_symbols, dtype=BOOK_DTYPE), orders=np.zeros(n_symbols, dtype=ORDER_DTYPE),
        symbols=symbols, ring=np.zeros(controller_window, dtype=np.int64), ess_i=ess_i, ess_f=ess_f,
        rate=new_rate_state(),
    )  # fmt: skip


_EVENTS = types.Array(from_dtype(EVENT_DTYPE), 1, "C")
_ACCOUNT = types.Array(from_dtype(ACCOUNT_DTYPE), 1, "C")
_I, _F = types.int64, types.float64


# An explicit signature: one compile, whatever constants the call sites pass (numba would otherwise
# compile a version per literal kind and reason).
@compiled(signature=types.void(_EVENTS, _ACCOUNT, _I, _I, _I, _I, _I, _I, _F, _F, _F, _F, _F, _F))
def emit(log, account, t, kind, symbol, order_id, reason, aux, qty, price, a, b, c, d):
    """Append one event (its columns: ``events.py``)."""
    n = account[0].events
    row = log[n]
    row.ts = t
    row.kind = kind
    row.symbol = symbol
    row.order_id = order_id
    row.reason = reason
    row.aux = aux
    row.qty = qty
    row.price = price
    row.a = a
    row.b = b
    row.c = c
    row.d = d
    account[0].events = n + 1


@compiled
def grow(log, needed):
    """A larger copy of the event log (double, or ``needed`` rows if more)."""
    out = np.empty(max(2 * log.shape[0], needed), dtype=log.dtype)
    out[: log.shape[0]] = log
    return out
