"""The pre-trade risk guard: every order passes through it before it is sent.

Rules, in order (limits are inclusive: exactly at a limit passes):

1. An order that only reduces a position (toward zero, not past it) always passes: a guard must
   never stand in the way of taking risk off.
2. Opening a position in a flat symbol when ``max_open_positions`` other symbols are already open is
   refused (RISK_MAX_OPEN_POSITIONS).
3. Otherwise the order is cut to the largest size that keeps: its notional within
   ``max_order_notional`` (RISK_MAX_ORDER_NOTIONAL), the symbol's resulting position notional within
   ``max_position_notional`` (RISK_MAX_POSITION), and the portfolio's gross exposure within
   ``max_gross_exposure`` times equity (RISK_MAX_GROSS_EXPOSURE). The reason is the limit that cut
   deepest. The part of a flip that closes the old position is never cut. Cut to nothing is a refusal.

The router sends the rest of a cut order at the next decision, so ``max_order_notional`` slices a
large rebalance into pieces rather than losing it.
"""

from __future__ import annotations

from dataclasses import dataclass

from stress_pipeline.trading.compiled import compiled
from stress_pipeline.trading.risk.policy import GuardLimits
from stress_pipeline.trading.risk.reasons import (
    NONE,
    REASON_NAMES,
    RISK_MAX_GROSS_EXPOSURE,
    RISK_MAX_OPEN_POSITIONS,
    RISK_MAX_ORDER_NOTIONAL,
    RISK_MAX_POSITION,
)

_SLACK = 1.0 + 1e-12  # "at the limit" up to float rounding still passes


@dataclass(frozen=True)
class GuardDecision:
    requested_qty: float
    approved_qty: float
    reason: str  # "" when the order passed unchanged

    @property
    def blocked(self) -> bool:
        """Refused outright (nothing approved)."""
        return self.approved_qty == 0.0 and self.requested_qty != 0.0


class RiskGuard:
    """Checks orders against :class:`GuardLimits` (the compiled :func:`guard_check` does the work)."""

    def __init__(self, limits: GuardLimits | None = None) -> None:
        self.limits = limits or GuardLimits()

    def check(
        self, qty: float, price: float, *, position: float = 0.0, equity: float, open_positions: int = 0,
        gross_notional: float = 0.0,
    ) -> GuardDecision:
        """``open_positions``: open positions in other symbols; ``gross_notional``: sum of |position
        notional| over all symbols, this one included."""
        lim = self.limits
        approved, reason = guard_check(
            float(qty), float(price), float(position), float(equity), int(open_positions), float(gross_notional),
            lim.max_order_notional, lim.max_position_notional, lim.max_open_positions, lim.max_gross_exposure,
        )  # fmt: skip
        return GuardDecision(float(qty), float(approved), REASON_NAMES.get(int(reason), ""))


@compiled
def guard_check(
    qty: float, price: float, position: float, equity: float, open_positions: int, gross_notional: float,
    max_order: float, max_position: float, max_open: int, max_gross: float,
) -> tuple[float, int]:
    """(approved signed qty, reason code); see the module docstring for the rules."""
    if qty == 0.0:
        return 0.0, NONE
    new = position + qty
    if abs(new) <= abs(position) and new * position >= 0.0:
        return qty, NONE
    if position == 0.0 and open_positions >= max_open:
        return 0.0, RISK_MAX_OPEN_POSITIONS
    side = 1.0 if qty > 0.0 else -1.0
    size = abs(qty)
    gross_other = gross_notional - abs(position) * price
    ok_order = size * price <= max_order * _SLACK
    ok_position = abs(new) * price <= max_position * _SLACK
    ok_gross = gross_other + abs(new) * price <= max_gross * equity * _SLACK
    if ok_order and ok_position and ok_gross:
        return qty, NONE
    allowed = size
    reason = NONE
    if not ok_order:
        allowed = max_order / price
        reason = RISK_MAX_ORDER_NOTIONAL
    if not ok_position:
        cap = max_position / price - side * position
        if cap < allowed:
            allowed = cap
            reason = RISK_MAX_POSITION
    if not ok_gross:
        cap = (max_gross * equity - gross_other) / price - side * position
        if cap < allowed:
            allowed = cap
            reason = RISK_MAX_GROSS_EXPOSURE
    closing = abs(position) if position * side < 0.0 else 0.0
    allowed = max(allowed, min(size, closing), 0.0)
    return side * allowed, reason
