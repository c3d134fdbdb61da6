"""The risk stack as one decision per order: kill switch, safety governor, balancer, pre-trade guard.

The paper engine applies the same parts bar by bar; a live system asks them once per order. This
module is that per-order path, over a small book of arrays (one slot per symbol: the signed position
the decider has approved so far and the symbol's last price), so a batch of requests is judged by one
compiled call and state lives wherever the caller keeps it (``state/risk_decisions.py``: Redis).

Rules, in order, for each request (a batch is judged in order, each approved order moving the book
before the next request is judged):

1. The kill switch is on: refused (KILL_SWITCH), reducing orders included; a kill switch stops all
   new orders.
2. The safety governor is not ARMED and the order adds risk: refused (ESS_BLOCKED, or ESS_HALTED once
   halted). An order that only reduces a position passes, as in the paper engine.
3. An order that adds risk is shaped by the balancer (``balancer.balance_target`` on the resulting
   position), then by the guard (``guard.guard_check``); a reducing order goes to the guard, which
   always passes it. The reason is the guard's when it cut, else the balancer's.

The rules themselves are the balancer's and the guard's compiled functions: nothing is re-implemented
here. This kernel is compiled without numba's disk cache: it reaches into other modules, which the
engines' digest (``trading/compiled.py``) does not cover, and a stale cache would be wrong; it
compiles once per process, on first use.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from stress_pipeline.trading.risk.balancer import balance_target
from stress_pipeline.trading.risk.guard import guard_check
from stress_pipeline.trading.risk.policy import RiskPolicy
from stress_pipeline.trading.risk.reasons import ESS_BLOCKED, ESS_HALTED, NONE, REASON_NAMES
from stress_pipeline.trading.risk.reasons import KILL_SWITCH as KILL_SWITCH_CODE
from stress_pipeline.trading.risk.safety_governor import ARMED, HALTED, STATE_NAMES

#: The reason of an order refused because the kill switch is on (code ``reasons.KILL_SWITCH``, which the
#: paper engine's router uses too).
KILL_SWITCH = REASON_NAMES[KILL_SWITCH_CODE]
DECISION_REASONS = dict(REASON_NAMES)


def policy_params(policy: RiskPolicy) -> tuple[float, float, int, float, float, int]:
    """The policy's numbers in the kernel's argument order."""
    g, b = policy.guard, policy.balancer
    return (
        g.max_order_notional, g.max_position_notional, g.max_open_positions, g.max_gross_exposure,
        b.max_concentration, b.stressed_max_positions,
    )  # fmt: skip


def ess_code(state: str) -> int:
    """The governor's state name as its code; an unknown name is an error naming it."""
    try:
        return STATE_NAMES.index(state)
    except ValueError:
        raise ValueError(f"unknown ESS state {state!r}; expected one of {', '.join(STATE_NAMES)}") from None


@njit(cache=False)
def decide_orders(
    sym: np.ndarray, signed_qty: np.ndarray, price: np.ndarray, book_qty: np.ndarray, book_price: np.ndarray,
    equity: float, ess_state: int, kill: bool, stressed: bool, max_order: float, max_position: float,
    max_open: int, max_gross: float, max_concentration: float, stressed_max_positions: int,
    out_qty: np.ndarray, out_reason: np.ndarray,
) -> None:  # fmt: skip
    """Judge requests ``i`` in order: ``out_qty[i]`` the approved signed quantity, ``out_reason[i]`` the
    reason code (0 when passed unchanged). ``book_qty``/``book_price`` are updated in place."""
    n_symbols = book_qty.shape[0]
    for i in range(sym.shape[0]):
        s = sym[i]
        q = signed_qty[i]
        p = price[i]
        pos = book_qty[s]
        book_price[s] = p
        new = pos + q
        reducing = abs(new) <= abs(pos) and new * pos >= 0.0
        if kill:
            out_qty[i] = 0.0
            out_reason[i] = KILL_SWITCH_CODE
            continue
        if not reducing and ess_state != ARMED:
            out_qty[i] = 0.0
            out_reason[i] = ESS_HALTED if ess_state == HALTED else ESS_BLOCKED
            continue
        open_other = 0
        gross = 0.0
        for j in range(n_symbols):
            gross += abs(book_qty[j]) * book_price[j]
            if j != s and book_qty[j] != 0.0:
                open_other += 1
        shaped = q
        balancer_reason = NONE
        if not reducing:
            target, balancer_reason = balance_target(
                new, p, equity, max_concentration, stressed, pos != 0.0, open_other, stressed_max_positions
            )
            shaped = target - pos
            if shaped * q <= 0.0:
                shaped = 0.0
            elif abs(shaped) > abs(q):
                shaped = q
        approved = 0.0
        guard_reason = NONE
        if shaped != 0.0:
            approved, guard_reason = guard_check(
                shaped, p, pos, equity, open_other, gross, max_order, max_position, max_open, max_gross
            )
        book_qty[s] = pos + approved
        out_qty[i] = approved
        out_reason[i] = guard_reason if guard_reason != NONE else balancer_reason


def compile_stack() -> None:
    """Compile :func:`decide_orders` now (a second or so, once per process) rather than on a live order."""
    one = np.ones(1)
    decide_orders(np.zeros(1, dtype=np.int64), one.copy(), one.copy(), np.zeros(1), np.zeros(1), 1.0, ARMED, False,
                  False, *policy_params(RiskPolicy()), np.zeros(1), np.zeros(1, dtype=np.int64))  # fmt: skip
