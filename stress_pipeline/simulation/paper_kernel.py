"""The paper engine's hot loop, compiled with numba: bar by bar, every symbol, every order.

Why compiled: the engine is event-driven (latency, partial fills, retries and the risk stack all
depend on what happened before), so it cannot be vectorised, and a Python loop over bars would run
at tens of thousands of bar-symbols per second. Here the state lives in arrays, the risk and
exchange logic are the compiled functions of ``trading.risk`` and ``trading.exchange``, and events
go into preallocated arrays that double when a bar might not fit. ``simulation/paper.py`` is the
thin Python layer around it (configuration in, tables out).

One bar ``k`` (its time runs from ``ts[k]`` to its close ``ts[k] + bar_ns``) goes through:

1. stops: where the path of bar k first reaches the stop of each position held at its start;
2. order actions due by the close, in time order across symbols: sends (rate limits, then a
   latency draw), arrivals at the venue (outage check, then a fill on the path at the arrival
   time), stop triggers; a fill re-arms its symbol's stop from that moment;
3. working orders from earlier bars fill against bar k: market orders at the path's mean price,
   limit orders where the path reaches the limit, at most the participation cap per bar;
4. mark to market at the close; the safety governor and the policy controller step;
5. decisions at the close: target weight -> policy scale -> balancer -> router -> guard -> orders;
6. orders whose latency is zero arrive now and fill at the close (the idealised case);
7. the bar's equity, cash, gross exposure and positions are recorded.

Each symbol has at most one live order: the router cancels and replaces it when the target moves
(a live order heading for the same target is left to finish), and a protective order (stop-loss
exit, safety-governor flatten) is never replaced by the router.

Simplifications, each in the order's favour and small at one-minute bars: the participation cap
counts the whole volume of the bar an order arrives in, even when it arrives late in it; a cancel
takes effect at once (no cancel latency, so a cancelled order never fills afterwards); a limit order
fills when the path touches its price (no queue position). A cancel still weighs on the rate limit.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import sys
from pathlib import Path

import numpy as np
from numba import njit
from numba.core.dispatcher import Dispatcher

from stress_pipeline.simulation.events import (
    CANCEL,
    ESS_TRANSITION,
    EV_AUX,
    EV_FLOAT_COLUMNS,
    EV_INT_COLUMNS,
    EXECUTION_FAILURE,
    FILL,
    ORDER,
    POLICY_CHANGE,
    REJECT,
    RISK_BLOCK,
    SIGNAL,
    STOP_LOSS,
)
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
    CANCEL_FOR_FLATTEN,
    CANCEL_FOR_STOP,
    ESS_FLATTEN,
    EXCHANGE_OUTAGE,
    IOC_EXPIRED,
    LIMIT_TIMEOUT,
    REBALANCE,
    REPLACED,
    RETRIES_EXHAUSTED,
    STOP_LOSS_EXIT,
    TOO_MANY_ORDERS,
    TOO_MANY_REQUESTS,
)
from stress_pipeline.trading.risk.balancer import balance_target
from stress_pipeline.trading.risk.guard import guard_check
from stress_pipeline.trading.risk.policy_controller import DEFENSIVE, NORMAL, policy_mode, record_trade
from stress_pipeline.trading.risk.reasons import (
    BALANCER_STRESS_MAX_POSITIONS,
    ESS_BLOCKED,
    ESS_HALTED,
    LEDGER_DOWN,
    NONE,
    OPERATOR_RESET,
    RISK_MAX_OPEN_POSITIONS,
    ROLLING_WINRATE,
)
from stress_pipeline.trading.risk.reasons import STOP_LOSS as STOP_REASON
from stress_pipeline.trading.risk.safety_governor import ARMED, HALTED, ess_step
from stress_pipeline.trading.risk.stop_loss import stop_fraction, stop_level

# Float parameters (``fp``), filled by ``simulation.paper.pack_params``.
(
    FP_MAX_ORDER, FP_MAX_POSITION, FP_MAX_GROSS, FP_MAX_CONCENTRATION, FP_TRIP_DD, FP_HALT_DD,
    FP_DEFENSIVE_BELOW, FP_AGGRESSIVE_ABOVE, FP_SCALE_NORMAL, FP_SCALE_DEFENSIVE, FP_SCALE_AGGRESSIVE,
    FP_STOP_PCT, FP_LIMIT_OFFSET_BPS, FP_MIN_NOTIONAL, FP_BAND, FP_LAT_MEDIAN_NS, FP_LAT_SIGMA,
    FP_LAT_STRESS_MULT, FP_LAT_MAX_NS, FP_PARTICIPATION, FP_IMPACT_K, FP_MAX_IMPACT_BPS, FP_MAKER_BPS,
    FP_TAKER_BPS, FP_HALF_SPREAD, FP_INITIAL_CAPITAL,
) = range(26)  # fmt: skip
FP_SIZE = 26
# Integer parameters (``ip``).
(
    IP_RISK, IP_STOP, IP_MAX_OPEN, IP_STRESSED_MAX_OPEN, IP_HOLD_BARS, IP_MIN_TRADES, IP_COOLDOWN_NS,
    IP_RESET_NS, IP_FLATTEN, IP_IMPACT, IP_RATE_LIMITS, IP_WEIGHT_LIMIT, IP_ORDER_LIMIT, IP_ORDER_WEIGHT,
    IP_CANCEL_WEIGHT, IP_MAX_RETRIES, IP_BACKOFF_NS, IP_LIMIT_ORDERS, IP_IOC, IP_LIMIT_TIMEOUT_NS, IP_SEED,
    IP_BAR_NS, IP_LEDGER_BLOCK,
) = range(23)  # fmt: skip
IP_SIZE = 23

# Per-symbol order slots: integers (``ord_i``) and floats (``ord_f``).
O_ID, O_STATUS, O_TIME, O_ATTEMPT, O_PURPOSE, O_CREATED, O_BAR, O_LIMIT, O_IOC = range(9)
O_INT_COLUMNS = 9
OF_QTY, OF_REM, OF_PRICE = range(3)
O_FLOAT_COLUMNS = 3
NO_ORDER, PENDING, IN_FLIGHT, WORKING = 0, 1, 2, 3

# Counters (``cnt``).
C_EVENTS, C_ORDER_ID, C_FILL_ID, C_FAILURES, C_TRADES, C_MODE = range(6)
C_SIZE = 6

NEVER = np.iinfo(np.int64).max
_SNAP = 1e-9  # a remainder this small relative to the order is zero (floating-point dust)
_TAKER, _MAKER = float(TAKER), float(MAKER)  # floats: numba types int constants as literals, one compile each
_TOO_MANY_REQUESTS_CODE = _CODES[TOO_MANY_REQUESTS]
_TOO_MANY_ORDERS_CODE = _CODES[TOO_MANY_ORDERS]


@njit(cache=True)
def run_kernel(
    ts, bar_ns, o, h, lo, c, vol, spread, tradable, stressed, weights, fp, ip, outage_w, rate_w, rate_m, lat_w,
    lat_m, ledger_w, ring, ess_i, ess_f, rl_state, event_capacity,
):  # fmt: skip
    """Simulate every bar; returns (ev_i, ev_f, equity, cash, gross, positions, counters)."""
    n_bars, n_sym = c.shape
    cap = max(event_capacity, 64)
    ev_i = np.empty((cap, EV_INT_COLUMNS), dtype=np.int64)
    ev_f = np.empty((cap, EV_FLOAT_COLUMNS), dtype=np.float64)
    equity_out = np.empty(n_bars)
    cash_out = np.empty(n_bars)
    gross_out = np.empty(n_bars)
    pos_out = np.empty((n_bars, n_sym))

    pos = np.zeros(n_sym)
    avg = np.zeros(n_sym)
    tpnl = np.zeros(n_sym)
    last_w = np.zeros(n_sym)
    used = np.zeros(n_sym)
    stop_t = np.full(n_sym, NEVER, dtype=np.int64)
    stop_lock = np.zeros(n_sym)
    dirty = np.zeros(n_sym, dtype=np.bool_)
    block = np.zeros(n_sym, dtype=np.int64)
    ord_i = np.zeros((n_sym, O_INT_COLUMNS), dtype=np.int64)
    ord_f = np.zeros((n_sym, O_FLOAT_COLUMNS))
    acct = np.array([fp[FP_INITIAL_CAPITAL]])
    cnt = np.zeros(C_SIZE, dtype=np.int64)
    committed = np.zeros(n_sym)
    is_open = np.zeros(n_sym, dtype=np.bool_)
    risk = ip[IP_RISK] != 0
    stops = risk and ip[IP_STOP] != 0
    stressed_until = -1
    seen_trades = 0
    band = fp[FP_BAND]
    per_bar = 3 * (2 * (ip[IP_MAX_RETRIES] + 1) + 8) * n_sym + 64

    for k in range(n_bars):
        if cnt[C_EVENTS] + per_bar > ev_i.shape[0]:
            ev_i, ev_f = _grow(ev_i, ev_f, cnt[C_EVENTS] + per_bar)
        t_open = ts[k]
        t_close = t_open + bar_ns
        used[:] = 0.0
        # 1. stops of the positions held at the start of the bar
        for s in range(n_sym):
            stop_t[s] = NEVER
            if stops and pos[s] != 0.0 and tradable[k, s] and not _protective(ord_i, s):
                stop_t[s] = _stop_time(o[k, s], h[k, s], lo[k, s], c[k, s], t_open, bar_ns, 0.0, pos[s], avg[s],
                                       fp[FP_STOP_PCT])  # fmt: skip
        # 2. order actions due by the close
        if _anything_due(ord_i, stop_t, t_close):
            _process_due(k, t_close, ts, bar_ns, o, h, lo, c, vol, spread, tradable, stressed, fp, ip, outage_w,
                         rate_w, rate_m, lat_w, lat_m, pos, avg, tpnl, acct, used, stop_t, stop_lock, dirty, ord_i,
                         ord_f, ring, cnt, rl_state, ev_i, ev_f, stops)  # fmt: skip
        # 3. working orders from earlier bars
        for s in range(n_sym):
            if ord_i[s, O_STATUS] == WORKING and ord_i[s, O_BAR] < k:
                _carried_fill(k, s, ts, bar_ns, o, h, lo, c, vol, spread, tradable, fp, ip, outage_w, pos, avg,
                              tpnl, acct, used, ord_i, ord_f, ring, cnt, ev_i, ev_f)  # fmt: skip
        # 4. mark, safety governor, policy controller, market stress
        equity = _mark(acct, pos, c, k)
        if risk:
            flat = True
            for s in range(n_sym):
                if pos[s] != 0.0 or ord_i[s, O_STATUS] != NO_ORDER:
                    flat = False
            for _ in range(5):
                before, after, why, dd = ess_step(ess_i, ess_f, t_close, equity, flat, fp[FP_TRIP_DD],
                                                  fp[FP_HALT_DD], ip[IP_COOLDOWN_NS], ip[IP_RESET_NS],
                                                  ip[IP_FLATTEN] != 0)  # fmt: skip
                if why == NONE:
                    break
                _emit(ev_i, ev_f, cnt, t_close, ESS_TRANSITION, -1, -1, why, 0, np.nan, np.nan, before, after, dd,
                      equity)  # fmt: skip
                if why == OPERATOR_RESET:
                    dirty[:] = True
            mode, winrate = cnt[C_MODE], np.nan
            if cnt[C_TRADES] != seen_trades:
                seen_trades = cnt[C_TRADES]
                mode, winrate = policy_mode(ring, seen_trades, ip[IP_MIN_TRADES], fp[FP_DEFENSIVE_BELOW],
                                            fp[FP_AGGRESSIVE_ABOVE])  # fmt: skip
            if mode != cnt[C_MODE]:
                _emit(ev_i, ev_f, cnt, t_close, POLICY_CHANGE, -1, -1, ROLLING_WINRATE, 0, np.nan, np.nan,
                      cnt[C_MODE], mode, winrate, cnt[C_TRADES])  # fmt: skip
                cnt[C_MODE] = mode  # applies from the next re-size; open positions are not churned
            for s in range(n_sym):
                if stressed[k, s]:
                    stressed_until = k + ip[IP_HOLD_BARS]
        # 5. decisions at the close
        if band >= 0.0 or (risk and ess_i[0] != ARMED) or _decision_due(weights, k, last_w, dirty, ord_i):
            _decide(k, t_close, equity, k <= stressed_until, c, tradable, weights, fp, ip, pos, last_w, dirty,
                    block, stop_lock, ord_i, ord_f, committed, is_open, ess_i, cnt, rl_state, ev_i, ev_f,
                    ledger_w)  # fmt: skip
        # 6. zero-latency orders arrive at the close
        if _anything_due(ord_i, stop_t, t_close):
            _process_due(k, t_close, ts, bar_ns, o, h, lo, c, vol, spread, tradable, stressed, fp, ip, outage_w,
                         rate_w, rate_m, lat_w, lat_m, pos, avg, tpnl, acct, used, stop_t, stop_lock, dirty, ord_i,
                         ord_f, ring, cnt, rl_state, ev_i, ev_f, stops)  # fmt: skip
        # 7. record
        equity_out[k] = _mark(acct, pos, c, k)
        cash_out[k] = acct[0]
        gross = 0.0
        for s in range(n_sym):
            gross += abs(pos[s]) * c[k, s]
            pos_out[k, s] = pos[s]
        gross_out[k] = gross
    n = cnt[C_EVENTS]
    return ev_i[:n], ev_f[:n], equity_out, cash_out, gross_out, pos_out, cnt


# --------------------------------------------------------------------------------------- decisions


@njit(cache=True)
def _decide(k, t, equity, market_stressed, c, tradable, weights, fp, ip, pos, last_w, dirty, block, stop_lock, ord_i,
            ord_f, committed, is_open, ess_i, cnt, rl_state, ev_i, ev_f, ledger_w):  # fmt: skip
    """The router's pass at a bar close: signals, risk stack, and the orders that follow from them."""
    n_sym = pos.shape[0]
    risk = ip[IP_RISK] != 0
    ess_state = ess_i[0] if risk else ARMED
    scale = fp[FP_SCALE_NORMAL]
    if risk and cnt[C_MODE] != NORMAL:
        scale = fp[FP_SCALE_DEFENSIVE] if cnt[C_MODE] == DEFENSIVE else fp[FP_SCALE_AGGRESSIVE]
    if not risk:
        scale = 1.0
    gross = 0.0
    n_open = 0
    for s in range(n_sym):
        rem = ord_f[s, OF_REM] if ord_i[s, O_STATUS] != NO_ORDER else 0.0
        committed[s] = abs(pos[s] + rem) * c[k, s]
        is_open[s] = pos[s] != 0.0 or rem != 0.0
        gross += committed[s]
        n_open += 1 if is_open[s] else 0
    for s in range(n_sym):
        w = weights[k, s]
        changed = w != last_w[s]
        if changed:
            _emit(ev_i, ev_f, cnt, t, SIGNAL, s, -1, NONE, 0, w, c[k, s], last_w[s], np.nan, np.nan, np.nan)
            if stop_lock[s] != 0.0 and w * stop_lock[s] <= 0.0:
                stop_lock[s] = 0.0
            last_w[s] = w
            dirty[s] = True
            block[s] = NONE  # a new target: its first risk block is news again
        if not tradable[k, s]:
            continue
        price = c[k, s]
        status = ord_i[s, O_STATUS]
        if status != NO_ORDER and _protective(ord_i, s):
            continue
        if (status == WORKING and ord_i[s, O_LIMIT] != 0
                and t - ord_i[s, O_CREATED] >= ip[IP_LIMIT_TIMEOUT_NS]):  # fmt: skip
            _cancel(ev_i, ev_f, cnt, ord_i, ord_f, s, t, LIMIT_TIMEOUT, rl_state, ip)
            dirty[s] = True
            status = NO_ORDER
        if ess_state != ARMED:
            if status != NO_ORDER:
                _cancel(ev_i, ev_f, cnt, ord_i, ord_f, s, t, CANCEL_FOR_FLATTEN, rl_state, ip)
                status = NO_ORDER
            if ip[IP_FLATTEN] != 0:
                if pos[s] != 0.0:
                    _new_order(ord_i, ord_f, cnt, s, t, -pos[s], ESS_FLATTEN, False, np.nan, False)
                    committed[s] = 0.0
                continue
            if ess_state == HALTED:
                continue
        target = w * scale * equity / n_sym / price if equity > 0.0 else 0.0
        requested = target
        why = NONE
        if risk:
            if stop_lock[s] != 0.0 and target * stop_lock[s] > 0.0:
                target = 0.0
            others = n_open - (1 if is_open[s] else 0)
            target, why = balance_target(target, price, equity, fp[FP_MAX_CONCENTRATION], market_stressed,
                                         is_open[s], others, ip[IP_STRESSED_MAX_OPEN])  # fmt: skip
            if ess_state != ARMED:
                reduced = _reduce_only(target, pos[s])
                if reduced != target:
                    target = reduced
                    why = ESS_HALTED if ess_state == HALTED else ESS_BLOCKED
            elif ip[IP_LEDGER_BLOCK] != 0 and in_window(ledger_w, t):
                reduced = _reduce_only(target, pos[s])
                if reduced != target:
                    target = reduced
                    why = LEDGER_DOWN
        rem = ord_f[s, OF_REM] if status != NO_ORDER else 0.0
        diff = target - (pos[s] + rem)
        band = fp[FP_BAND]
        need = dirty[s] or (band >= 0.0 and abs(diff) * price >= band * equity / n_sym)
        if not need:
            continue
        if status != NO_ORDER and not changed and rem * (target - pos[s]) > 0.0 and abs(rem) <= abs(target - pos[s]):
            continue  # the live order is on its way to the same target: let it finish, send the rest after
        dirty[s] = False
        # A risk block is logged once per target it cuts, not again at each retry of that target.
        if why != NONE and why != block[s] and abs(requested - target) * price >= fp[FP_MIN_NOTIONAL]:
            _emit(ev_i, ev_f, cnt, t, RISK_BLOCK, s, -1, why, 0, requested - pos[s], price, target - pos[s], np.nan,
                  np.nan, np.nan)  # fmt: skip
        if why == BALANCER_STRESS_MAX_POSITIONS or why == LEDGER_DOWN:  # noqa: SIM109 (plain compares for numba)
            dirty[s] = True  # a temporary refusal: look again at the next decision
        if abs(diff) * price < fp[FP_MIN_NOTIONAL] and not (target == 0.0 and diff != 0.0):
            block[s] = why
            continue
        if status != NO_ORDER:
            _cancel(ev_i, ev_f, cnt, ord_i, ord_f, s, t, REPLACED, rl_state, ip)
        qty = target - pos[s]
        binding = why
        if risk:
            others = n_open - (1 if is_open[s] else 0)
            guard_gross = gross - committed[s] + abs(pos[s]) * price
            approved, guard_why = guard_check(qty, price, pos[s], equity, others, guard_gross, fp[FP_MAX_ORDER],
                                              fp[FP_MAX_POSITION], ip[IP_MAX_OPEN], fp[FP_MAX_GROSS])  # fmt: skip
            if guard_why != NONE:
                if approved != 0.0 or guard_why == RISK_MAX_OPEN_POSITIONS:
                    dirty[s] = True  # the rest (or the refused entry) is tried again at the next decision
                if guard_why != block[s] and guard_why != why:
                    _emit(ev_i, ev_f, cnt, t, RISK_BLOCK, s, -1, guard_why, 0, qty, price, approved, np.nan, np.nan,
                          np.nan)  # fmt: skip
                binding = guard_why
            qty = approved
        block[s] = binding
        if qty == 0.0 or (abs(qty) * price < fp[FP_MIN_NOTIONAL] and pos[s] + qty != 0.0):
            continue
        limit = ip[IP_LIMIT_ORDERS] != 0
        limit_price = np.nan
        if limit:
            offset = fp[FP_LIMIT_OFFSET_BPS] * 1e-4
            limit_price = price * (1.0 - offset) if qty > 0.0 else price * (1.0 + offset)
        _new_order(ord_i, ord_f, cnt, s, t, qty, REBALANCE, limit, limit_price, ip[IP_IOC] != 0)
        gross += abs(pos[s] + qty) * price - committed[s]
        committed[s] = abs(pos[s] + qty) * price
        if not is_open[s]:
            n_open += 1
            is_open[s] = True


@njit(cache=True, inline="always")
def _reduce_only(target, position):
    """The part of ``target`` that only takes risk off ``position``."""
    if position == 0.0 or target * position <= 0.0:
        return 0.0
    if abs(target) > abs(position):
        return position
    return target


# ------------------------------------------------------------------------------------- order path


@njit(cache=True)
def _process_due(k, horizon, ts, bar_ns, o, h, lo, c, vol, spread, tradable, stressed, fp, ip, outage_w, rate_w,
                 rate_m, lat_w, lat_m, pos, avg, tpnl, acct, used, stop_t, stop_lock, dirty, ord_i, ord_f, ring, cnt,
                 rl_state, ev_i, ev_f, stops):  # fmt: skip
    """Run every send, arrival and stop trigger due by ``horizon``, earliest first."""
    while True:
        s, best_t, best_stop = _next_action(ord_i, stop_t, horizon)
        if s < 0:
            return
        if best_stop:
            stop_t[s] = NEVER
            side = 1.0 if pos[s] > 0.0 else -1.0
            level = stop_level(avg[s], side, fp[FP_STOP_PCT])
            _emit(ev_i, ev_f, cnt, best_t, STOP_LOSS, s, -1, STOP_REASON, 0, pos[s], level, avg[s], np.nan, np.nan,
                  np.nan)  # fmt: skip
            if ord_i[s, O_STATUS] != NO_ORDER:
                _cancel(ev_i, ev_f, cnt, ord_i, ord_f, s, best_t, CANCEL_FOR_STOP, rl_state, ip)
            _new_order(ord_i, ord_f, cnt, s, best_t, -pos[s], STOP_LOSS_EXIT, False, np.nan, False)
            stop_lock[s] = side
        elif ord_i[s, O_STATUS] == PENDING:
            _send(k, s, best_t, stressed, fp, ip, rate_w, rate_m, lat_w, lat_m, dirty, ord_i, ord_f, cnt, rl_state,
                  ev_i, ev_f)  # fmt: skip
        else:
            _arrive(k, s, best_t, ts, bar_ns, o, h, lo, c, vol, spread, tradable, fp, ip, outage_w, pos, avg, tpnl,
                    acct, used, stop_t, dirty, ord_i, ord_f, ring, cnt, ev_i, ev_f, stops)  # fmt: skip


@njit(cache=True)
def _next_action(ord_i, stop_t, horizon):
    """(symbol, time, is a stop) of the earliest send, arrival or stop due by ``horizon``; symbol -1
    when none is. Ties go to the order action, then to the lower symbol index."""
    best = -1
    best_t = NEVER
    best_stop = False
    for s in range(stop_t.shape[0]):
        status = ord_i[s, O_STATUS]
        if status in (PENDING, IN_FLIGHT) and ord_i[s, O_TIME] <= horizon and ord_i[s, O_TIME] < best_t:
            best, best_t, best_stop = s, ord_i[s, O_TIME], False
        if stop_t[s] <= horizon and stop_t[s] < best_t:
            best, best_t, best_stop = s, stop_t[s], True
    return best, best_t, best_stop


@njit(cache=True)
def _send(k, s, t, stressed, fp, ip, rate_w, rate_m, lat_w, lat_m, dirty, ord_i, ord_f, cnt, rl_state, ev_i, ev_f):
    """One send attempt: the venue's rate limits, then the latency to the matching engine."""
    attempt = ord_i[s, O_ATTEMPT]
    why = NONE
    retry_after = 0
    if ip[IP_RATE_LIMITS] != 0:
        mult = window_mult(rate_w, rate_m, t)
        why, retry_after = rate_check(rl_state, t, ip[IP_ORDER_WEIGHT], True, int(ip[IP_WEIGHT_LIMIT] * mult),
                                      int(ip[IP_ORDER_LIMIT] * mult))  # fmt: skip
    qty = ord_f[s, OF_REM]
    limit = ord_i[s, O_LIMIT]
    if why != NONE:
        _emit(ev_i, ev_f, cnt, t, ORDER, s, ord_i[s, O_ID], ord_i[s, O_PURPOSE], 0, qty, ord_f[s, OF_PRICE], np.nan,
              attempt, limit, ord_i[s, O_IOC])  # fmt: skip
        retry = attempt < ip[IP_MAX_RETRIES]
        code = _TOO_MANY_REQUESTS_CODE if why == TOO_MANY_REQUESTS else _TOO_MANY_ORDERS_CODE
        _emit(ev_i, ev_f, cnt, t, REJECT, s, ord_i[s, O_ID], why, 0, qty, np.nan, retry_after / 1e9, attempt, code,
              1.0 if retry else 0.0)  # fmt: skip
        if retry:
            ord_i[s, O_ATTEMPT] = attempt + 1
            ord_i[s, O_TIME] = t + retry_delay_ns(attempt, retry_after, ip[IP_BACKOFF_NS])
        else:
            _emit(ev_i, ev_f, cnt, t, EXECUTION_FAILURE, s, ord_i[s, O_ID], RETRIES_EXHAUSTED, 0, qty, np.nan,
                  attempt + 1, code, np.nan, np.nan)  # fmt: skip
            cnt[C_FAILURES] += 1
            ord_i[s, O_STATUS] = NO_ORDER
            dirty[s] = True
        return
    delay = 0
    if fp[FP_LAT_MEDIAN_NS] > 0.0:
        mult = fp[FP_LAT_STRESS_MULT] if stressed[k, s] else 1.0
        mult *= window_mult(lat_w, lat_m, t)
        delay = latency_ns(ip[IP_SEED], s, t, attempt, fp[FP_LAT_MEDIAN_NS], fp[FP_LAT_SIGMA], mult,
                           fp[FP_LAT_MAX_NS])  # fmt: skip
    _emit(ev_i, ev_f, cnt, t, ORDER, s, ord_i[s, O_ID], ord_i[s, O_PURPOSE], 0, qty, ord_f[s, OF_PRICE], delay / 1e6,
          attempt, limit, ord_i[s, O_IOC])  # fmt: skip
    ord_i[s, O_STATUS] = IN_FLIGHT
    ord_i[s, O_TIME] = t + delay


@njit(cache=True)
def _arrive(k, s, t, ts, bar_ns, o, h, lo, c, vol, spread, tradable, fp, ip, outage_w, pos, avg, tpnl, acct, used,
            stop_t, dirty, ord_i, ord_f, ring, cnt, ev_i, ev_f, stops):  # fmt: skip
    """The order reaches the venue at ``t``: refused in an outage, else it fills on the path from ``t``."""
    if in_window(outage_w, t):
        _emit(ev_i, ev_f, cnt, t, REJECT, s, ord_i[s, O_ID], EXCHANGE_OUTAGE, 0, ord_f[s, OF_REM], np.nan, np.nan,
              ord_i[s, O_ATTEMPT], np.nan, 0.0)  # fmt: skip
        ord_i[s, O_STATUS] = NO_ORDER
        dirty[s] = True
        return
    ord_i[s, O_STATUS] = WORKING
    ord_i[s, O_BAR] = k
    if tradable[k, s]:
        frac = min(max((t - ts[k]) / bar_ns, 0.0), 1.0)
        rem = ord_f[s, OF_REM]
        side = 1.0 if rem > 0.0 else -1.0
        avail = min(abs(rem), participation_cap(vol[k, s], fp[FP_PARTICIPATION], used[s]))
        if avail > 0.0:
            mid = path_price(o[k, s], h[k, s], lo[k, s], c[k, s], frac)
            fill_t = t
            fill_frac = frac
            if ord_i[s, O_LIMIT] != 0:
                limit = ord_f[s, OF_PRICE]
                all_in = _taker(k, s, mid, side, avail, h, lo, vol, spread, fp, ip)
                if (side > 0.0 and all_in <= limit) or (side < 0.0 and all_in >= limit):
                    _taker_fill(k, s, t, mid, side, avail, h, lo, vol, spread, fp, ip, pos, avg, tpnl, acct, used,
                                ord_i, ord_f, ring, cnt, ev_i, ev_f)  # fmt: skip
                else:
                    touch = first_touch(o[k, s], h[k, s], lo[k, s], c[k, s], frac, limit, side > 0.0)
                    if touch >= 0.0:
                        fill_frac = touch
                        fill_t = max(ts[k] + int(touch * bar_ns), t)
                        _maker_fill(s, fill_t, limit, side, avail, fp, pos, avg, tpnl, acct, used, ord_i, ord_f, ring,
                                    cnt, ev_i, ev_f)  # fmt: skip
                    else:
                        fill_t = -1
            else:
                _taker_fill(k, s, t, mid, side, avail, h, lo, vol, spread, fp, ip, pos, avg, tpnl, acct, used,
                            ord_i, ord_f, ring, cnt, ev_i, ev_f)  # fmt: skip
            if stops and fill_t >= 0 and pos[s] != 0.0 and not _protective(ord_i, s):
                stop_t[s] = _stop_time(o[k, s], h[k, s], lo[k, s], c[k, s], ts[k], bar_ns, fill_frac, pos[s],
                                       avg[s], fp[FP_STOP_PCT])  # fmt: skip
            if stops and pos[s] == 0.0:
                stop_t[s] = NEVER
    if ord_i[s, O_STATUS] == WORKING and ord_i[s, O_IOC] != 0:
        _emit(ev_i, ev_f, cnt, t, CANCEL, s, ord_i[s, O_ID], IOC_EXPIRED, 0, ord_f[s, OF_REM], np.nan, np.nan, np.nan,
              np.nan, np.nan)  # fmt: skip
        ord_i[s, O_STATUS] = NO_ORDER
        dirty[s] = True


@njit(cache=True)
def _carried_fill(k, s, ts, bar_ns, o, h, lo, c, vol, spread, tradable, fp, ip, outage_w, pos, avg, tpnl, acct, used,
                  ord_i, ord_f, ring, cnt, ev_i, ev_f):  # fmt: skip
    """A working order from an earlier bar fills against bar ``k`` (not while the venue is down)."""
    t_close = ts[k] + bar_ns
    if not tradable[k, s] or overlaps(outage_w, ts[k], t_close):
        return
    ord_i[s, O_BAR] = k
    rem = ord_f[s, OF_REM]
    side = 1.0 if rem > 0.0 else -1.0
    avail = min(abs(rem), participation_cap(vol[k, s], fp[FP_PARTICIPATION], used[s]))
    if avail <= 0.0:
        return
    if ord_i[s, O_LIMIT] != 0:
        limit = ord_f[s, OF_PRICE]
        touch = first_touch(o[k, s], h[k, s], lo[k, s], c[k, s], 0.0, limit, side > 0.0)
        if touch >= 0.0:
            _maker_fill(s, ts[k] + int(touch * bar_ns), limit, side, avail, fp, pos, avg, tpnl, acct, used, ord_i,
                        ord_f, ring, cnt, ev_i, ev_f)  # fmt: skip
        return
    mid = path_mean(o[k, s], h[k, s], lo[k, s], c[k, s])
    _taker_fill(k, s, t_close, mid, side, avail, h, lo, vol, spread, fp, ip, pos, avg, tpnl, acct, used, ord_i, ord_f,
                ring, cnt, ev_i, ev_f)  # fmt: skip


@njit(cache=True, inline="always")
def _taker(k, s, mid, side, qty, h, lo, vol, spread, fp, ip):
    """The all-in taker price of ``qty`` at path price ``mid``."""
    half, impact = _costs_bps(k, s, qty, h, lo, vol, spread, fp, ip)
    return taker_price(mid, side, half, impact)


@njit(cache=True, inline="always")
def _costs_bps(k, s, qty, h, lo, vol, spread, fp, ip):
    half = spread[k, s] * fp[FP_HALF_SPREAD]
    impact = 0.0
    if ip[IP_IMPACT] != 0:
        impact = impact_bps(qty, vol[k, s], parkinson_bps(h[k, s], lo[k, s]), fp[FP_IMPACT_K], fp[FP_MAX_IMPACT_BPS])
    return half, impact


@njit(cache=True)
def _taker_fill(k, s, t, mid, side, qty, h, lo, vol, spread, fp, ip, pos, avg, tpnl, acct, used, ord_i, ord_f, ring,
                cnt, ev_i, ev_f):  # fmt: skip
    half, impact = _costs_bps(k, s, qty, h, lo, vol, spread, fp, ip)
    price = taker_price(mid, side, half, impact)
    fee = qty * price * fp[FP_TAKER_BPS] * 1e-4
    used[s] += qty
    _fill(s, t, side * qty, price, fee, qty * mid * half * 1e-4, qty * mid * impact * 1e-4, _TAKER, pos, avg, tpnl,
          acct, ord_i, ord_f, ring, cnt, ev_i, ev_f)  # fmt: skip


@njit(cache=True)
def _maker_fill(s, t, limit, side, qty, fp, pos, avg, tpnl, acct, used, ord_i, ord_f, ring, cnt, ev_i, ev_f):
    fee = qty * limit * fp[FP_MAKER_BPS] * 1e-4
    used[s] += qty
    _fill(s, t, side * qty, limit, fee, 0.0, 0.0, _MAKER, pos, avg, tpnl, acct, ord_i, ord_f, ring, cnt, ev_i, ev_f)


@njit(cache=True)
def _fill(s, t, q, price, fee, spread_cost, impact_cost, liquidity, pos, avg, tpnl, acct, ord_i, ord_f, ring, cnt,
          ev_i, ev_f):  # fmt: skip
    """Book a fill: cash, position, average entry, the round trip's PnL, the order's remainder."""
    _emit(ev_i, ev_f, cnt, t, FILL, s, ord_i[s, O_ID], ord_i[s, O_PURPOSE], cnt[C_FILL_ID], q, price, spread_cost,
          impact_cost, fee, liquidity)  # fmt: skip
    cnt[C_FILL_ID] += 1
    acct[0] -= q * price + fee
    p0 = pos[s]
    if p0 == 0.0 or p0 * q > 0.0:
        avg[s] = (avg[s] * abs(p0) + price * abs(q)) / (abs(p0) + abs(q))
        pos[s] = p0 + q
        tpnl[s] -= fee
    else:
        closed = min(abs(q), abs(p0))
        share = closed / abs(q)
        tpnl[s] += closed * (price - avg[s]) * (1.0 if p0 > 0.0 else -1.0) - fee * share
        new = p0 + q
        if abs(new) <= _SNAP * abs(p0):
            new = 0.0
        if new == 0.0 or new * p0 < 0.0:
            record_trade(ring, cnt[C_TRADES], tpnl[s])
            cnt[C_TRADES] += 1
            tpnl[s] = -fee * (1.0 - share) if new != 0.0 else 0.0
            avg[s] = price if new != 0.0 else 0.0
        pos[s] = new
    rem = ord_f[s, OF_REM] - q
    if abs(rem) <= _SNAP * abs(ord_f[s, OF_QTY]):
        ord_f[s, OF_REM] = 0.0
        ord_i[s, O_STATUS] = NO_ORDER
    else:
        ord_f[s, OF_REM] = rem


@njit(cache=True, inline="always")
def _new_order(ord_i, ord_f, cnt, s, t, qty, purpose, limit, limit_price, ioc):
    """Open the symbol's order slot; the send happens in the next pass over due actions."""
    ord_i[s, O_ID] = cnt[C_ORDER_ID]
    cnt[C_ORDER_ID] += 1
    ord_i[s, O_STATUS] = PENDING
    ord_i[s, O_TIME] = t
    ord_i[s, O_ATTEMPT] = 0
    ord_i[s, O_PURPOSE] = purpose
    ord_i[s, O_CREATED] = t
    ord_i[s, O_BAR] = -1
    ord_i[s, O_LIMIT] = 1 if limit else 0
    ord_i[s, O_IOC] = 1 if ioc else 0
    ord_f[s, OF_QTY] = qty
    ord_f[s, OF_REM] = qty
    ord_f[s, OF_PRICE] = limit_price


@njit(cache=True, inline="always")
def _cancel(ev_i, ev_f, cnt, ord_i, ord_f, s, t, reason, rl_state, ip):
    """Cancel the symbol's live order; the cancel weighs on the request limit but is never refused."""
    _emit(ev_i, ev_f, cnt, t, CANCEL, s, ord_i[s, O_ID], reason, 0, ord_f[s, OF_REM], np.nan, np.nan, np.nan, np.nan,
          np.nan)  # fmt: skip
    if ip[IP_RATE_LIMITS] != 0 and ord_i[s, O_STATUS] != PENDING:
        rate_check(rl_state, t, ip[IP_CANCEL_WEIGHT], False, NEVER, NEVER)
    ord_i[s, O_STATUS] = NO_ORDER


@njit(cache=True, inline="always")
def _protective(ord_i, s):
    purpose = ord_i[s, O_PURPOSE]
    return ord_i[s, O_STATUS] != NO_ORDER and purpose in (STOP_LOSS_EXIT, ESS_FLATTEN)


@njit(cache=True, inline="always")
def _stop_time(o, h, lo, c, t_open, bar_ns, from_frac, position, entry, pct):
    """When the stop of ``position`` (average entry ``entry``) triggers in this bar, or NEVER."""
    side = 1.0 if position > 0.0 else -1.0
    frac = stop_fraction(o, h, lo, c, from_frac, side, stop_level(entry, side, pct))
    return t_open + math.ceil(frac * bar_ns) if frac >= 0.0 else NEVER


@njit(cache=True, inline="always")
def _anything_due(ord_i, stop_t, horizon):
    """Whether a send, an arrival or a stop falls due by ``horizon`` (cheap; most bars have none)."""
    for s in range(stop_t.shape[0]):
        status = ord_i[s, O_STATUS]
        if status in (PENDING, IN_FLIGHT) and ord_i[s, O_TIME] <= horizon:
            return True
        if stop_t[s] <= horizon:
            return True
    return False


@njit(cache=True, inline="always")
def _decision_due(weights, k, last_w, dirty, ord_i):
    """Whether the router has anything to look at: a new weight, an unfinished target, a working
    limit order that may time out."""
    for s in range(last_w.shape[0]):
        if weights[k, s] != last_w[s] or dirty[s] or (ord_i[s, O_STATUS] == WORKING and ord_i[s, O_LIMIT] != 0):
            return True
    return False


# ------------------------------------------------------------------------------------------ plumbing


@njit(cache=True, inline="always")
def _mark(acct, pos, c, k):
    equity = acct[0]
    for s in range(pos.shape[0]):
        equity += pos[s] * c[k, s]
    return equity


@njit(
    "void(int64[:, ::1], float64[:, ::1], int64[::1], int64, int64, int64, int64, int64, int64, float64, float64, "
    "float64, float64, float64, float64)",
    cache=True,
)  # an explicit signature: one compile, whatever constants the call sites pass
def _emit(ev_i, ev_f, cnt, t, kind, sym, oid, reason, aux, qty, price, a, b, cc, d):
    n = cnt[C_EVENTS]
    ev_i[n, 0] = t
    ev_i[n, 1] = kind
    ev_i[n, 2] = sym
    ev_i[n, 3] = oid
    ev_i[n, 4] = reason
    ev_i[n, EV_AUX] = aux
    ev_f[n, 0] = qty
    ev_f[n, 1] = price
    ev_f[n, 2] = a
    ev_f[n, 3] = b
    ev_f[n, 4] = cc
    ev_f[n, 5] = d
    cnt[C_EVENTS] = n + 1


@njit(cache=True)
def _grow(ev_i, ev_f, needed):
    size = max(2 * ev_i.shape[0], needed)
    new_i = np.empty((size, ev_i.shape[1]), dtype=np.int64)
    new_f = np.empty((size, ev_f.shape[1]), dtype=np.float64)
    for row in range(ev_i.shape[0]):  # a loop, not a slice copy: numba compiles no error-message formatting
        for col in range(ev_i.shape[1]):
            new_i[row, col] = ev_i[row, col]
        for col in range(ev_f.shape[1]):
            new_f[row, col] = ev_f[row, col]
    return new_i, new_f


# ------------------------------------------------------------------------------------ compile cache

_CACHE_STAMP = "paper_kernel.sources"
_SOURCE_MODULES = (
    "stress_pipeline.simulation.events",
    "stress_pipeline.trading.exchange.client",
    "stress_pipeline.trading.exchange.faults",
    "stress_pipeline.trading.exchange.fills",
    "stress_pipeline.trading.exchange.latency",
    "stress_pipeline.trading.exchange.rate_limits",
    "stress_pipeline.trading.exchange.reasons",
    "stress_pipeline.trading.risk.balancer",
    "stress_pipeline.trading.risk.guard",
    "stress_pipeline.trading.risk.policy_controller",
    "stress_pipeline.trading.risk.reasons",
    "stress_pipeline.trading.risk.safety_governor",
    "stress_pipeline.trading.risk.stop_loss",
    __name__,
)


def refresh_compile_cache() -> bool:
    """Drop the engine's cached machine code when any module it is compiled from has changed.

    numba keys a cached function on its own source file only (numba issues 1833 and 9304), so a
    change to, say, the guard would leave this loop running the old guard from the disk cache. A
    digest of every source module is kept next to the cache; when it differs, every compiled function
    of those modules is flushed and recompiled on first use. Returns whether it flushed.
    """
    modules = [sys.modules[name] for name in _SOURCE_MODULES]
    digest = hashlib.sha256(b"".join(Path(m.__file__).read_bytes() for m in modules)).hexdigest()
    stamp = Path(run_kernel._cache._cache_path) / _CACHE_STAMP
    try:
        if stamp.read_text() == digest:
            return False
    except OSError:
        pass
    for module in modules:
        for value in vars(module).values():
            if isinstance(value, Dispatcher) and value.__module__ == module.__name__:
                value._cache.flush()
    with contextlib.suppress(OSError):  # a read-only cache location: flush again next time, still correct
        stamp.write_text(digest)
    return True


refresh_compile_cache()
