"""The bar loop: bar by bar, every symbol, every order (the paper engine's one compiled entry point).

One bar ``k`` (its time runs from ``ts[k]`` to its close ``ts[k] + bar_ns``) goes through:

1. stops: where the path of bar k first reaches the stop of each position held at its start;
2. order actions due by the close, in time order across symbols (:func:`process_due`): sends,
   arrivals at the venue, stop triggers (``venue.py``), and the exchange session's reconnects;
3. working orders from earlier bars fill against bar k (``venue.carried_fill``);
4. mark to market at the close; the safety governor and the policy controller step;
5. decisions at the close: target weight -> policy scale -> balancer -> router -> guard -> orders
   (``routing.decide``);
6. orders whose latency is zero arrive now and fill at the close (the idealised case);
7. the bar's equity, cash, gross exposure and positions are recorded.
"""

from __future__ import annotations

import numpy as np

from stress_pipeline.simulation.engine.routing import cancel, decide, new_order, protective
from stress_pipeline.simulation.engine.state import IN_FLIGHT, NEVER, NO_ORDER, PENDING, WORKING, emit, grow
from stress_pipeline.simulation.engine.venue import arrive, carried_fill, reconnected, send, stop_time
from stress_pipeline.simulation.events import ESS_TRANSITION, EVENT_DTYPE, POLICY_CHANGE, STOP_LOSS
from stress_pipeline.trading.compiled import compiled
from stress_pipeline.trading.exchange.reasons import CANCEL_FOR_STOP, STOP_LOSS_EXIT
from stress_pipeline.trading.risk.policy_controller import policy_mode
from stress_pipeline.trading.risk.reasons import NONE, OPERATOR_RESET, ROLLING_WINRATE
from stress_pipeline.trading.risk.reasons import STOP_LOSS as STOP_REASON
from stress_pipeline.trading.risk.safety_governor import ARMED, ess_step
from stress_pipeline.trading.risk.stop_loss import stop_level


@compiled
def run_engine(market, windows, params, state, event_capacity):
    """Simulate every bar; returns (events, equity, cash, gross exposure, positions). ``state`` (an
    ``EngineState``) holds the account and counters afterwards."""
    n_bars, n_sym = market.close.shape
    risk = params.risk
    log = np.empty(max(event_capacity, 64), dtype=EVENT_DTYPE)
    equity_out = np.empty(n_bars)
    cash_out = np.empty(n_bars)
    gross_out = np.empty(n_bars)
    positions_out = np.empty((n_bars, n_sym))
    account, book, orders, symbols = state.account, state.book, state.orders, state.symbols
    ts, bar_ns, weights, stressed, tradable = market.ts, market.bar_ns, market.weights, market.stressed, market.tradable
    o, h, lo, c = market.open, market.high, market.low, market.close
    ess_i, ess_f, ring = state.ess_i, state.ess_f, state.ring
    stressed_until = -1
    seen_trades = 0
    band = params.router.rebalance_band
    per_bar = 3 * (2 * (params.router.max_retries + 1) + 8) * n_sym + 64  # the most events one bar can write
    for k in range(n_bars):
        if account[0].events + per_bar > log.shape[0]:
            log = grow(log, account[0].events + per_bar)
        t_open = ts[k]
        t_close = t_open + bar_ns
        # 1. stops of the positions held at the start of the bar
        for s in range(n_sym):
            sym = symbols[s]
            sym.used = 0.0
            sym.stop_time = NEVER
            position = book[s].position
            if risk.stops and position != 0.0 and tradable[k, s] and not protective(orders[s]):
                sym.stop_time = stop_time(o[k, s], h[k, s], lo[k, s], c[k, s],
                                          t_open, bar_ns, 0.0, position, book[s].avg_price,
                                          risk.stop_pct)  # fmt: skip
        # 2. order actions due by the close
        if anything_due(orders, symbols, t_close) or reconnect_due(account, params, t_close):
            process_due(k, t_close, market, windows, params, state, log)
        # 3. working orders from earlier bars
        for s in range(n_sym):
            if orders[s].status == WORKING and orders[s].bar < k:
                carried_fill(k, s, market, windows, params, state, log)
        # 4. mark, safety governor, policy controller, market stress
        equity = mark(account, book, c, k)
        if risk.enabled:
            flat = True
            for s in range(n_sym):
                if book[s].position != 0.0 or orders[s].status != NO_ORDER:
                    flat = False
            for _ in range(5):
                before, after, why, drawdown = ess_step(ess_i, ess_f, t_close, equity, flat,
                                                        risk.trip_drawdown, risk.halt_drawdown, risk.cooldown_ns,
                                                        risk.reset_delay_ns, risk.flatten_on_trip)  # fmt: skip
                if why == NONE:
                    break
                emit(log, account, t_close, ESS_TRANSITION, -1, -1, why, 0, np.nan, np.nan, before, after, drawdown,
                     equity)  # fmt: skip
                if why == OPERATOR_RESET:
                    for s in range(n_sym):
                        symbols[s].dirty = True
            mode, winrate = account[0].mode, np.nan
            if account[0].trades != seen_trades:
                seen_trades = account[0].trades
                mode, winrate = policy_mode(ring, seen_trades, risk.min_trades, risk.defensive_below,
                                            risk.aggressive_above)  # fmt: skip
            if mode != account[0].mode:
                emit(log, account, t_close, POLICY_CHANGE, -1, -1, ROLLING_WINRATE, 0, np.nan, np.nan,
                     account[0].mode, mode, winrate, account[0].trades)  # fmt: skip
                account[0].mode = mode  # applies from the next re-size; open positions are not churned
            for s in range(n_sym):
                if stressed[k, s]:
                    stressed_until = k + risk.stress_hold_bars
        # 5. decisions at the close
        if band >= 0.0 or (risk.enabled and ess_i[0] != ARMED) or decision_due(weights, k, orders,
                                                                                       symbols):  # fmt: skip
            decide(k, t_close, equity, k <= stressed_until, market, windows, params, state, log)
        # 6. zero-latency orders arrive at the close
        if anything_due(orders, symbols, t_close) or reconnect_due(account, params, t_close):
            process_due(k, t_close, market, windows, params, state, log)
        # 7. record
        equity_out[k] = mark(account, book, c, k)
        cash_out[k] = account[0].cash
        gross = 0.0
        for s in range(n_sym):
            position = book[s].position
            gross += abs(position) * c[k, s]
            positions_out[k, s] = position
        gross_out[k] = gross
    return log[: account[0].events], equity_out, cash_out, gross_out, positions_out


@compiled
def process_due(k, horizon, market, windows, params, state, log):
    """Run every send, arrival and stop trigger due by ``horizon``, earliest first."""
    orders, symbols, book, account = state.orders, state.symbols, state.book, state.account
    while True:
        s, best_t, best_stop = next_action(orders, symbols, horizon)
        if reconnect_due(account, params, horizon) and (s < 0 or account[0].reconnect_at <= best_t):
            reconnected(account[0].reconnect_at, windows, params, state, log)  # before a send due at that time
            continue
        if s < 0:
            return
        if best_stop:
            symbols[s].stop_time = NEVER
            position = book[s].position
            side = 1.0 if position > 0.0 else -1.0
            level = stop_level(book[s].avg_price, side, params.risk.stop_pct)
            emit(log, account, best_t, STOP_LOSS, s, -1, STOP_REASON, 0, position, level, book[s].avg_price, np.nan,
                 np.nan, np.nan)  # fmt: skip
            if orders[s].status != NO_ORDER:
                cancel(log, account, orders[s], s, best_t, CANCEL_FOR_STOP, state.rate, params)
            new_order(account, orders[s], best_t, -position, STOP_LOSS_EXIT, False, np.nan, False)
            symbols[s].stop_lock = side
        elif orders[s].status == PENDING:
            send(k, s, best_t, market, windows, params, state, log)
        else:
            arrive(k, s, best_t, market, windows, params, state, log)


@compiled
def next_action(orders, symbols, horizon):
    """(symbol, time, is a stop) of the earliest send, arrival or stop due by ``horizon``; symbol -1
    when none is. Ties go to the order action, then to the lower symbol index."""
    best = -1
    best_t = NEVER
    best_stop = False
    for s in range(orders.shape[0]):
        status = orders[s].status
        due = orders[s].time
        if status in (PENDING, IN_FLIGHT) and due <= horizon and due < best_t:
            best, best_t, best_stop = s, due, False
        stop = symbols[s].stop_time
        if stop <= horizon and stop < best_t:
            best, best_t, best_stop = s, stop, True
    return best, best_t, best_stop


@compiled(inline="always")
def anything_due(orders, symbols, horizon):
    """Whether a send, an arrival or a stop falls due by ``horizon`` (cheap; most bars have none)."""
    for s in range(orders.shape[0]):
        status = orders[s].status
        if status in (PENDING, IN_FLIGHT) and orders[s].time <= horizon:
            return True
        if symbols[s].stop_time <= horizon:
            return True
    return False


@compiled(inline="always")
def reconnect_due(account, params, horizon):
    """Whether the exchange session (``pause_on_outage``) is down with a reconnect due by ``horizon``."""
    return params.router.pause_on_outage and account[0].venue_down and account[0].reconnect_at <= horizon


@compiled(inline="always")
def decision_due(weights, k, orders, symbols):
    """Whether the router has anything to look at: a new weight, an unfinished target, a working
    limit order that may time out."""
    for s in range(orders.shape[0]):
        if weights[k, s] != symbols[s].last_weight or symbols[s].dirty:
            return True
        if orders[s].status == WORKING and orders[s].limit:
            return True
    return False


@compiled(inline="always")
def mark(account, book, close, k):
    """Equity marked to market at the close of bar ``k``."""
    equity = account[0].cash
    for s in range(book.shape[0]):
        equity += book[s].position * close[k, s]
    return equity
