"""The simulated venue: sends (request limits, latency), arrivals, fills and their costs.

An order is sent (``send``): the venue's request limits may refuse it (-1003 / -1015, with a
Retry-After; the client retries with backoff up to ``max_retries``), else it travels for a latency
draw. With the router's ``pause_on_outage``, nothing is sent while the session knows the exchange is
down: a send waits for the reconnect (``reconnected``, run by the loop every ``reconnect_s``). An
order arrives (``arrive``): refused while the exchange is down, else it fills on the bar's path from the arrival
time: a market order at the path price there, a limit order at once if the taker price is inside the
limit, else where the path first touches the limit; at most the participation cap of the bar's volume
per symbol. What is left works on later bars (``carried_fill``): market orders at the path's mean
price, limit orders where the path reaches the limit.

A taker pays half the bar's spread and the square-root impact on top of the path price, and the
taker fee; a maker fills at its limit and pays the maker fee. ``execute`` books every fill with
``booking.book_fill``, the backtest's booking, and feeds each round trip it closes to the policy
controller.

Simplifications, each in the order's favour and small at one-minute bars: the participation cap
counts the whole volume of the bar an order arrives in, even when it arrives late in it; a limit
order fills when the path touches its price (no queue position).

Where a book is in force (``market.booked``; ``book.dense.panel_books``), fills walk it instead:
the book's levels, as distances from its mid, are laid around the path price. A market order (and
the marketable part of a limit order, up to its limit) takes the levels from the touch on
(``book.kernels.walk``), after the depth that earlier fills of the symbol took in the same bar; when
the book runs out it fills partially and the rest works on (GTC) or is cancelled (IOC). Its spread
cost is the touch's distance, its impact the average level's distance beyond the touch (the spread
and impact switches remove each); the fill records the levels it took (the event's ``d`` is minus
that count). A limit order that rests joins the queue behind the resting size at or better than its
limit (``book.kernels.queue_ahead``); once the path touches the limit, the bar's volume after the
touch (volume spread evenly over the bar) first works off that queue, and only the excess fills it
(``queue_fill``). Bars without a book keep the square-root impact model, number for number.
"""

from __future__ import annotations

import math

import numpy as np

from stress_pipeline.book.kernels import queue_fill, walk
from stress_pipeline.simulation.booking import book_fill
from stress_pipeline.simulation.engine.routing import protective
from stress_pipeline.simulation.engine.state import IN_FLIGHT, NEVER, NO_ORDER, PENDING, WORKING, emit
from stress_pipeline.simulation.events import CANCEL, EXECUTION_FAILURE, FILL, ORDER, RECONNECT, REJECT
from stress_pipeline.trading.compiled import compiled
from stress_pipeline.trading.exchange.client import retry_delay_ns
from stress_pipeline.trading.exchange.faults import in_window, overlaps, window_mult
from stress_pipeline.trading.exchange.fills import (
    MAKER,
    TAKER,
    first_touch,
    impact_bps,
    parkinson_bps,
    participation_cap,
    path_mean,
    path_price,
    taker_price,
)
from stress_pipeline.trading.exchange.latency import latency_ns
from stress_pipeline.trading.exchange.rate_limits import rate_check
from stress_pipeline.trading.exchange.reasons import BINANCE_CODES as _CODES
from stress_pipeline.trading.exchange.reasons import (
    EXCHANGE_OUTAGE,
    IOC_EXPIRED,
    RETRIES_EXHAUSTED,
    TOO_MANY_ORDERS,
    TOO_MANY_REQUESTS,
)
from stress_pipeline.trading.risk.policy_controller import record_trade
from stress_pipeline.trading.risk.reasons import NONE
from stress_pipeline.trading.risk.stop_loss import stop_fraction, stop_level

_SNAP = 1e-9  # an order remainder this small relative to the order is zero (floating-point dust)
_TAKER, _MAKER = float(TAKER), float(MAKER)  # floats: the event log's liquidity column
_TOO_MANY_REQUESTS_CODE = _CODES[TOO_MANY_REQUESTS]
_TOO_MANY_ORDERS_CODE = _CODES[TOO_MANY_ORDERS]


@compiled
def send(k, s, t, market, windows, params, state, log):
    """One send attempt of symbol ``s``'s pending order at ``t``: the venue's request limits, then
    the latency to the matching engine."""
    venue, router = params.venue, params.router
    order = state.orders[s]
    if router.pause_on_outage and state.account[0].venue_down:
        order.time = state.account[0].reconnect_at  # held: sent after the next reconnect, if that succeeds
        return
    attempt = order.attempt
    why = NONE
    retry_after = 0
    if venue.rate_limits:
        mult = window_mult(windows.rate_limit, windows.rate_limit_mult, t)
        why, retry_after = rate_check(state.rate, t, venue.order_weight, True, int(venue.weight_per_minute * mult),
                                      int(venue.orders_per_10s * mult))  # fmt: skip
    qty = order.remaining
    limit = 1.0 if order.limit else 0.0
    ioc = 1.0 if order.ioc else 0.0
    if why != NONE:
        emit(log, state.account, t, ORDER, s, order.id, order.purpose, 0, qty, order.price, np.nan, attempt, limit,
             ioc)  # fmt: skip
        retry = attempt < router.max_retries
        code = _TOO_MANY_REQUESTS_CODE if why == TOO_MANY_REQUESTS else _TOO_MANY_ORDERS_CODE
        emit(log, state.account, t, REJECT, s, order.id, why, 0, qty, np.nan, retry_after / 1e9, attempt, code,
             1.0 if retry else 0.0)  # fmt: skip
        if retry:
            order.attempt = attempt + 1
            order.time = t + retry_delay_ns(attempt, retry_after, router.backoff_ns)
        else:
            emit(log, state.account, t, EXECUTION_FAILURE, s, order.id, RETRIES_EXHAUSTED, 0, qty, np.nan,
                 attempt + 1, code, np.nan, np.nan)  # fmt: skip
            state.account[0].failures += 1
            order.status = NO_ORDER
            state.symbols[s].dirty = True
        return
    delay = 0
    if venue.latency_median_ns > 0.0:
        mult = venue.latency_stress_mult if market.stressed[k, s] else 1.0
        mult *= window_mult(windows.latency, windows.latency_mult, t)
        delay = latency_ns(venue.seed, s, t, attempt, venue.latency_median_ns, venue.latency_sigma, mult,
                           venue.latency_max_ns)  # fmt: skip
    emit(log, state.account, t, ORDER, s, order.id, order.purpose, 0, qty, order.price, delay / 1e6, attempt, limit,
         ioc)  # fmt: skip
    order.status = IN_FLIGHT
    order.time = t + delay


@compiled
def reconnected(t, windows, params, state, log):
    """The exchange session's reconnect at ``t`` (the loop runs it at ``account.reconnect_at``, every
    ``reconnect_ns`` while the exchange is down, whether an order waits or not): whether the exchange
    answers (logged as a ``reconnect`` event); if not, the next try is ``reconnect_ns`` later."""
    account = state.account
    up = not in_window(windows.outage, t)
    waiting = 0
    for i in range(state.orders.shape[0]):
        waiting += 1 if state.orders[i].status == PENDING else 0
    emit(log, account, t, RECONNECT, -1, -1, NONE if up else EXCHANGE_OUTAGE, 0, np.nan, np.nan, 1.0 if up else 0.0,
         waiting, np.nan, np.nan)  # fmt: skip
    if up:
        account[0].venue_down = False
    else:
        account[0].reconnect_at = t + params.router.reconnect_ns


@compiled
def arrive(k, s, t, market, windows, params, state, log):
    """Symbol ``s``'s order reaches the venue at ``t``: refused in an outage, else it fills on the
    path from ``t``; a fill re-arms the symbol's stop from that moment."""
    order, sym = state.orders[s], state.symbols[s]
    if in_window(windows.outage, t):
        emit(log, state.account, t, REJECT, s, order.id, EXCHANGE_OUTAGE, 0, order.remaining, np.nan, np.nan,
             order.attempt, np.nan, 0.0)  # fmt: skip
        order.status = NO_ORDER
        sym.dirty = True
        if params.router.pause_on_outage and not state.account[0].venue_down:
            state.account[0].venue_down = True
            state.account[0].reconnect_at = t + params.router.reconnect_ns
        return
    order.status = WORKING
    order.bar = k
    order.queue = 0.0
    if market.tradable[k, s]:
        ts, bar_ns = market.ts, market.bar_ns
        o, h, lo, c = market.open[k, s], market.high[k, s], market.low[k, s], market.close[k, s]
        frac = min(max((t - ts[k]) / bar_ns, 0.0), 1.0)
        rem = order.remaining
        side = 1.0 if rem > 0.0 else -1.0
        avail = min(abs(rem), participation_cap(market.volume[k, s], params.venue.participation, sym.used))
        if avail > 0.0:
            mid = path_price(o, h, lo, c, frac)
            fill_t = t
            fill_frac = frac
            if order.limit and booked(k, s, market):
                fill_t, fill_frac = book_limit_arrival(k, s, t, frac, mid, side, avail, market, params, state, log)
            elif order.limit:
                limit = order.price
                half, impact = costs_bps(k, s, avail, market, params)
                all_in = taker_price(mid, side, half, impact)
                if (side > 0.0 and all_in <= limit) or (side < 0.0 and all_in >= limit):
                    taker_fill(k, s, t, mid, side, avail, market, params, state, log)
                else:
                    touch = first_touch(o, h, lo, c, frac, limit, side > 0.0)
                    if touch >= 0.0:
                        fill_frac = touch
                        fill_t = max(ts[k] + int(touch * bar_ns), t)
                        maker_fill(s, fill_t, limit, side, avail, params, state, log)
                    else:
                        fill_t = -1
            else:
                taker_fill(k, s, t, mid, side, avail, market, params, state, log)
            position = state.book[s].position
            if params.risk.stops and fill_t >= 0 and position != 0.0 and not protective(order):
                sym.stop_time = stop_time(o, h, lo, c, ts[k], bar_ns, fill_frac, position, state.book[s].avg_price,
                                          params.risk.stop_pct)  # fmt: skip
            if params.risk.stops and position == 0.0:
                sym.stop_time = NEVER
    if order.status == WORKING and order.ioc:
        emit(log, state.account, t, CANCEL, s, order.id, IOC_EXPIRED, 0, order.remaining, np.nan, np.nan, np.nan,
             np.nan, np.nan)  # fmt: skip
        order.status = NO_ORDER
        sym.dirty = True


@compiled
def carried_fill(k, s, market, windows, params, state, log):
    """A working order from an earlier bar fills against bar ``k`` (not while the venue is down)."""
    ts, bar_ns = market.ts, market.bar_ns
    t_close = ts[k] + bar_ns
    order = state.orders[s]
    if not market.tradable[k, s] or overlaps(windows.outage, ts[k], t_close):
        return
    order.bar = k
    rem = order.remaining
    side = 1.0 if rem > 0.0 else -1.0
    avail = min(abs(rem), participation_cap(market.volume[k, s], params.venue.participation, state.symbols[s].used))
    if avail <= 0.0:
        return
    o, h, lo, c = market.open[k, s], market.high[k, s], market.low[k, s], market.close[k, s]
    if order.limit:
        limit = order.price
        touch = first_touch(o, h, lo, c, 0.0, limit, side > 0.0)
        if touch >= 0.0:
            if booked(k, s, market):
                avail, left = queue_fill(order.queue, market.volume[k, s] * (1.0 - touch), avail)
                order.queue = left
            if avail > 0.0:
                maker_fill(s, ts[k] + int(touch * bar_ns), limit, side, avail, params, state, log)
        return
    taker_fill(k, s, t_close, path_mean(o, h, lo, c), side, avail, market, params, state, log)


@compiled(inline="always")
def costs_bps(k, s, qty, market, params):
    """(half spread, impact) in bps that a taker of ``qty`` pays in bar ``k``."""
    venue = params.venue
    half = market.spread_bps[k, s] * venue.half_spread
    impact = 0.0
    if venue.impact:
        sigma = parkinson_bps(market.high[k, s], market.low[k, s])
        impact = impact_bps(qty, market.volume[k, s], sigma, venue.impact_k, venue.max_impact_bps)
    return half, impact


@compiled
def taker_fill(k, s, t, mid, side, qty, market, params, state, log):
    if booked(k, s, market):
        book_taker_fill(k, s, t, mid, side, qty, np.nan, market, params, state, log)
        return
    half, impact = costs_bps(k, s, qty, market, params)
    price = taker_price(mid, side, half, impact)
    fee = qty * price * params.venue.taker_bps * 1e-4
    state.symbols[s].used += qty
    execute(s, t, side * qty, price, fee, qty * mid * half * 1e-4, qty * mid * impact * 1e-4, _TAKER, state, log)


@compiled(inline="always")
def booked(k, s, market):
    """Whether symbol ``s`` fills against a book in bar ``k``."""
    return market.book_levels > 0 and market.booked[k, s]


@compiled
def book_taker_fill(k, s, t, mid, side, qty, limit_bps, market, params, state, log):
    """Take up to ``qty`` from the book of bar ``k`` around the path price ``mid``, no further than
    ``limit_bps`` beyond the mid (NaN: no limit); returns the quantity filled."""
    offsets = market.ask_off[k, s] if side > 0.0 else market.bid_off[k, s]
    sizes = market.ask_sz[k, s] if side > 0.0 else market.bid_sz[k, s]
    sym = state.symbols[s]
    filled, average, taken = walk(offsets, sizes, qty, sym.used, limit_bps, True)
    if filled <= 0.0:
        return 0.0
    touch = average
    for i in range(offsets.shape[0]):
        if sizes[i] > 0.0 and offsets[i] == offsets[i]:
            touch = offsets[i]
            break
    venue = params.venue
    spread_bps = touch if venue.half_spread > 0.0 else 0.0
    impact = average - touch if venue.impact else 0.0
    price = mid * (1.0 + side * (spread_bps + impact) * 1e-4)
    fee = filled * price * venue.taker_bps * 1e-4
    sym.used += filled
    execute(s, t, side * filled, price, fee, filled * mid * spread_bps * 1e-4, filled * mid * impact * 1e-4,
            -float(taken), state, log)  # fmt: skip
    return filled


@compiled
def book_limit_arrival(k, s, t, frac, mid, side, avail, market, params, state, log):
    """A limit order arriving against a book: its marketable part walks the book up to the limit; else
    it rests behind the size at or better than its limit and fills from the volume that trades after
    the path touches it. Returns (time, fraction of the bar) of its fill, or (-1, ``frac``)."""
    order = state.orders[s]
    ts, bar_ns = market.ts, market.bar_ns
    limit_bps = side * (order.price / mid - 1.0) * 1e4  # how far past the mid, on the side it takes from
    if book_taker_fill(k, s, t, mid, side, avail, limit_bps, market, params, state, log) > 0.0:
        return t, frac
    own_off = market.bid_off[k, s] if side > 0.0 else market.ask_off[k, s]
    own_sz = market.bid_sz[k, s] if side > 0.0 else market.ask_sz[k, s]
    ahead = 0.0
    for i in range(own_off.shape[0]):
        if own_off[i] == own_off[i] and own_off[i] <= -limit_bps:  # priced at or better than the limit
            ahead += own_sz[i]
    order.queue = ahead
    o, h, lo, c = market.open[k, s], market.high[k, s], market.low[k, s], market.close[k, s]
    touch = first_touch(o, h, lo, c, frac, order.price, side > 0.0)
    if touch < 0.0:
        return -1, frac
    qty, left = queue_fill(order.queue, market.volume[k, s] * (1.0 - touch), avail)
    order.queue = left
    if qty <= 0.0:
        return -1, frac
    fill_t = max(ts[k] + int(touch * bar_ns), t)
    maker_fill(s, fill_t, order.price, side, qty, params, state, log)
    return fill_t, touch


@compiled
def maker_fill(s, t, limit, side, qty, params, state, log):
    fee = qty * limit * params.venue.maker_bps * 1e-4
    state.symbols[s].used += qty
    execute(s, t, side * qty, limit, fee, 0.0, 0.0, _MAKER, state, log)


@compiled
def execute(s, t, q, price, fee, spread_cost, impact_cost, liquidity, state, log):
    """A fill: logged, booked (``booking.book_fill``), its closed round trip fed to the policy
    controller, the order's remainder reduced."""
    account, order = state.account, state.orders[s]
    emit(log, account, t, FILL, s, order.id, order.purpose, account[0].next_fill_id, q, price, spread_cost,
         impact_cost, fee, liquidity)  # fmt: skip
    account[0].next_fill_id += 1
    cash, trip = book_fill(state.book[s], account[0].cash, t, q, price, fee)
    account[0].cash = cash
    if trip.closed:
        record_trade(state.ring, account[0].trades, trip.pnl)
        account[0].trades += 1
    rem = order.remaining - q
    if abs(rem) <= _SNAP * abs(order.qty):
        order.remaining = 0.0
        order.status = NO_ORDER
    else:
        order.remaining = rem


@compiled(inline="always")
def stop_time(o, h, lo, c, t_open, bar_ns, from_frac, position, entry, pct):
    """When the stop of ``position`` (average entry ``entry``) triggers in this bar, or NEVER."""
    side = 1.0 if position > 0.0 else -1.0
    frac = stop_fraction(o, h, lo, c, from_frac, side, stop_level(entry, side, pct))
    return t_open + math.ceil(frac * bar_ns) if frac >= 0.0 else NEVER
