"""Order routing: at a bar close, target weights become orders through the risk stack.

For each symbol (``decide``): a new weight is logged as a signal; the weight is sized
(``booking.target_quantity``, the backtest's sizing) in the policy controller's mode; the balancer
caps it (concentration, fewer open positions while the market is stressed); while the KILL_SWITCH is
on nothing is sent at all (the target waits for the switch to go off); while the safety
governor is not ARMED, or the ledger is down, only risk-reducing targets pass; the guard checks the
order (notional, position, open positions, gross exposure); what remains becomes the symbol's order.

Each symbol has at most one live order: the router cancels and replaces it when the target moves
(a live order heading for the same target is left to finish), and a protective order (stop-loss
exit, safety-governor flatten) is never replaced. A risk block is logged once per target it cuts,
not again at each retry of that target. A cancel takes effect at once (no cancel latency) and
weighs on the venue's request limit, but is never refused.
"""

from __future__ import annotations

import numpy as np

from stress_pipeline.simulation.booking import target_quantity
from stress_pipeline.simulation.engine.state import NEVER, NO_ORDER, PENDING, WORKING, emit
from stress_pipeline.simulation.events import CANCEL, RISK_BLOCK, SIGNAL
from stress_pipeline.trading.compiled import compiled
from stress_pipeline.trading.exchange.faults import in_window
from stress_pipeline.trading.exchange.rate_limits import rate_check
from stress_pipeline.trading.exchange.reasons import (
    CANCEL_FOR_FLATTEN,
    ESS_FLATTEN,
    LIMIT_TIMEOUT,
    REBALANCE,
    REPLACED,
    STOP_LOSS_EXIT,
)
from stress_pipeline.trading.risk.balancer import balance_target
from stress_pipeline.trading.risk.guard import guard_check
from stress_pipeline.trading.risk.policy_controller import DEFENSIVE, NORMAL
from stress_pipeline.trading.risk.reasons import (
    BALANCER_STRESS_MAX_POSITIONS,
    ESS_BLOCKED,
    ESS_HALTED,
    KILL_SWITCH,
    LEDGER_DOWN,
    NONE,
    RISK_MAX_OPEN_POSITIONS,
)
from stress_pipeline.trading.risk.safety_governor import ARMED, HALTED


@compiled(inline="always")
def decide(k, t, equity, market_stressed, market, windows, params, state, log):
    """The router's pass at the close ``t`` of bar ``k``: signals, risk stack, and the orders that
    follow from them (sent in the loop's next pass over due actions)."""
    risk, router = params.risk, params.router
    orders, symbols, book, account = state.orders, state.symbols, state.book, state.account
    close, tradable, weights = market.close, market.tradable, market.weights
    n_sym = orders.shape[0]
    ess_state = state.ess_i[0] if risk.enabled else ARMED
    scale = 1.0
    if risk.enabled:
        mode = account[0].mode
        scale = risk.normal_scale
        if mode != NORMAL:
            scale = risk.defensive_scale if mode == DEFENSIVE else risk.aggressive_scale
    gross = 0.0
    n_open = 0
    for s in range(n_sym):
        rem = orders[s].remaining if orders[s].status != NO_ORDER else 0.0
        position = book[s].position
        symbols[s].committed = abs(position + rem) * close[k, s]
        symbols[s].is_open = position != 0.0 or rem != 0.0
        gross += symbols[s].committed
        n_open += 1 if symbols[s].is_open else 0
    for s in range(n_sym):
        sym = symbols[s]
        order = orders[s]
        w = weights[k, s]
        changed = w != sym.last_weight
        if changed:
            emit(log, account, t, SIGNAL, s, -1, NONE, 0, w, close[k, s], sym.last_weight, np.nan, np.nan, np.nan)
            if sym.stop_lock != 0.0 and w * sym.stop_lock <= 0.0:
                sym.stop_lock = 0.0
            sym.last_weight = w
            sym.dirty = True
            sym.block = NONE  # a new target: its first risk block is news again
        if not tradable[k, s]:
            continue
        price = close[k, s]
        position = book[s].position
        status = order.status
        if status != NO_ORDER and protective(order):
            continue
        if status == WORKING and order.limit and t - order.created >= router.limit_timeout_ns:
            cancel(log, account, order, s, t, LIMIT_TIMEOUT, state.rate, params)
            sym.dirty = True
            status = NO_ORDER
        if risk.enabled and in_window(windows.kill_switch, t):
            # No new order of the router's, reducing and flattening ones included; one block per target,
            # and the target is routed again at the first decision after the switch is off.
            want = target_quantity(w, equity, price, params.sizing, scale)
            if sym.block != KILL_SWITCH and abs(want - position) * price >= router.min_order_notional:
                emit(log, account, t, RISK_BLOCK, s, -1, KILL_SWITCH, 0, want - position, price, 0.0, np.nan, np.nan,
                     np.nan)  # fmt: skip
                sym.block = KILL_SWITCH
            sym.dirty = True
            continue
        if ess_state != ARMED:
            if status != NO_ORDER:
                cancel(log, account, order, s, t, CANCEL_FOR_FLATTEN, state.rate, params)
                status = NO_ORDER
            if risk.flatten_on_trip:
                if position != 0.0:
                    new_order(account, order, t, -position, ESS_FLATTEN, False, np.nan, False)
                    sym.committed = 0.0
                continue
            if ess_state == HALTED:
                continue
        band = router.rebalance_band
        if band < 0.0 and not sym.dirty:
            continue  # nothing to re-size: the sizing and risk checks below would change nothing
        target = target_quantity(w, equity, price, params.sizing, scale)
        requested = target
        why = NONE
        if risk.enabled:
            if sym.stop_lock != 0.0 and target * sym.stop_lock > 0.0:
                target = 0.0
            others = n_open - (1 if sym.is_open else 0)
            target, why = balance_target(target, price, equity, risk.max_concentration, market_stressed,
                                         sym.is_open, others, risk.stressed_max_positions)  # fmt: skip
            if ess_state != ARMED:
                reduced = reduce_only(target, position)
                if reduced != target:
                    target = reduced
                    why = ESS_HALTED if ess_state == HALTED else ESS_BLOCKED
            elif risk.block_openings_when_ledger_down and in_window(windows.ledger_down, t):
                reduced = reduce_only(target, position)
                if reduced != target:
                    target = reduced
                    why = LEDGER_DOWN
        rem = order.remaining if status != NO_ORDER else 0.0
        diff = target - (position + rem)
        need = sym.dirty or (band >= 0.0 and abs(diff) * price >= band * equity / n_sym)
        if not need:
            continue
        move = target - position
        if status != NO_ORDER and not changed and rem * move > 0.0 and abs(rem) <= abs(move):
            continue  # the live order is on its way to the same target: let it finish, send the rest after
        sym.dirty = False
        if why != NONE and why != sym.block and abs(requested - target) * price >= router.min_order_notional:
            emit(log, account, t, RISK_BLOCK, s, -1, why, 0, requested - position, price, target - position, np.nan,
                 np.nan, np.nan)  # fmt: skip
        if why == BALANCER_STRESS_MAX_POSITIONS or why == LEDGER_DOWN:  # noqa: SIM109 (plain compares for numba)
            sym.dirty = True  # a temporary refusal: look again at the next decision
        if abs(diff) * price < router.min_order_notional and not (target == 0.0 and diff != 0.0):
            sym.block = why
            continue
        if status != NO_ORDER:
            cancel(log, account, order, s, t, REPLACED, state.rate, params)
        qty = target - position
        binding = why
        if risk.enabled:
            others = n_open - (1 if sym.is_open else 0)
            guard_gross = gross - sym.committed + abs(position) * price
            approved, guard_why = guard_check(qty, price, position, equity, others, guard_gross,
                                              risk.max_order_notional, risk.max_position_notional,
                                              risk.max_open_positions, risk.max_gross_exposure)  # fmt: skip
            if guard_why != NONE:
                if approved != 0.0 or guard_why == RISK_MAX_OPEN_POSITIONS:
                    sym.dirty = True  # the rest (or the refused entry) is tried again at the next decision
                if guard_why != sym.block and guard_why != why:
                    emit(log, account, t, RISK_BLOCK, s, -1, guard_why, 0, qty, price, approved, np.nan, np.nan,
                         np.nan)  # fmt: skip
                binding = guard_why
            qty = approved
        sym.block = binding
        if qty == 0.0 or (abs(qty) * price < router.min_order_notional and position + qty != 0.0):
            continue
        limit_price = np.nan
        if router.limit_orders:
            offset = router.limit_offset_bps * 1e-4
            limit_price = price * (1.0 - offset) if qty > 0.0 else price * (1.0 + offset)
        new_order(account, order, t, qty, REBALANCE, router.limit_orders, limit_price, router.ioc)
        gross += abs(position + qty) * price - sym.committed
        sym.committed = abs(position + qty) * price
        if not sym.is_open:
            n_open += 1
            sym.is_open = True


@compiled(inline="always")
def reduce_only(target, position):
    """The part of ``target`` that only takes risk off ``position``."""
    if position == 0.0 or target * position <= 0.0:
        return 0.0
    if abs(target) > abs(position):
        return position
    return target


@compiled(inline="always")
def new_order(account, order, t, qty, purpose, limit, limit_price, ioc):
    """Open a symbol's order slot; the send happens in the loop's next pass over due actions."""
    order.id = account[0].next_order_id
    account[0].next_order_id += 1
    order.status = PENDING
    order.time = t
    order.attempt = 0
    order.purpose = purpose
    order.created = t
    order.bar = -1
    order.limit = limit
    order.ioc = ioc
    order.qty = qty
    order.remaining = qty
    order.price = limit_price


@compiled(inline="always")
def cancel(log, account, order, s, t, reason, rate, params):
    """Cancel a symbol's live order; the cancel weighs on the request limit but is never refused."""
    emit(log, account, t, CANCEL, s, order.id, reason, 0, order.remaining, np.nan, np.nan, np.nan, np.nan, np.nan)
    if params.venue.rate_limits and order.status != PENDING:
        rate_check(rate, t, params.venue.cancel_weight, False, NEVER, NEVER)
    order.status = NO_ORDER


@compiled(inline="always")
def protective(order):
    """A live stop-loss exit or safety-governor flatten, which the router never replaces."""
    return order.status != NO_ORDER and (order.purpose == STOP_LOSS_EXIT or order.purpose == ESS_FLATTEN)
