"""Venue request limits, counted in fixed windows the way Binance counts them.

Two counters: request weight per minute (refused with -1003 TOO_MANY_REQUESTS) and new orders per 10
seconds (refused with -1015 TOO_MANY_ORDERS). A refusal carries a Retry-After: the time to the end of
the window that is full. Refused requests are not counted (the client waits as told, so it never
piles weight onto a full window). State is a small int64 array so the compiled engine can keep it.
"""

from __future__ import annotations

import numpy as np

from stress_pipeline.trading.compiled import compiled
from stress_pipeline.trading.exchange.reasons import NONE, TOO_MANY_ORDERS, TOO_MANY_REQUESTS

MINUTE_NS = 60_000_000_000
TEN_SECONDS_NS = 10_000_000_000
STATE_SIZE = 4  # weight window id, weight used, order window id, orders used


def new_state() -> np.ndarray:
    """A fresh limiter (nothing counted yet)."""
    state = np.zeros(STATE_SIZE, dtype=np.int64)
    state[0] = state[2] = np.iinfo(np.int64).min
    return state


@compiled
def rate_check(state: np.ndarray, t_ns: int, weight: int, is_order: bool, weight_limit: int, order_limit: int):
    """Count a request at ``t_ns`` if it fits; return (reason, retry_after_ns), reason 0 when it does.

    The weight window is checked first (-1003), then, for new orders, the order window (-1015).
    """
    minute = t_ns // MINUTE_NS
    if state[0] != minute:
        state[0] = minute
        state[1] = 0
    ten = t_ns // TEN_SECONDS_NS
    if state[2] != ten:
        state[2] = ten
        state[3] = 0
    if state[1] + weight > weight_limit:
        return TOO_MANY_REQUESTS, (minute + 1) * MINUTE_NS - t_ns
    if is_order and state[3] + 1 > order_limit:
        return TOO_MANY_ORDERS, (ten + 1) * TEN_SECONDS_NS - t_ns
    state[1] += weight
    if is_order:
        state[3] += 1
    return NONE, 0
