"""Reason codes of the risk stack, as small integers for the compiled engine.

The event log spells them out (``simulation.events.REASON_NAMES``); order-path codes live in
``trading.exchange.reasons``.
"""

from __future__ import annotations

NONE = 0

# Pre-trade guard: the order was cut down or refused.
RISK_MAX_ORDER_NOTIONAL = 100
RISK_MAX_POSITION = 101
RISK_MAX_OPEN_POSITIONS = 102
RISK_MAX_GROSS_EXPOSURE = 103

# Portfolio balancer: the target was cut down.
BALANCER_CONCENTRATION = 110
BALANCER_STRESS_MAX_POSITIONS = 111

# Safety governor: orders that add risk are blocked while it is not armed.
ESS_BLOCKED = 120
ESS_HALTED = 121
# The ledger (PostgreSQL) is down: no new or larger positions until it is back (reduce only).
LEDGER_DOWN = 122
# The KILL_SWITCH is on: no new order at all (the per-order risk stack and the paper engine's router).
KILL_SWITCH = 123

# Safety governor transitions.
DRAWDOWN_LIMIT = 130
FLATTENED = 131
COOLDOWN_ELAPSED = 132
OPERATOR_RESET = 133
CATASTROPHIC_DRAWDOWN = 134

# Policy controller and stop-loss.
ROLLING_WINRATE = 140
STOP_LOSS = 150

REASON_NAMES = {
    RISK_MAX_ORDER_NOTIONAL: "RISK_MAX_ORDER_NOTIONAL",
    RISK_MAX_POSITION: "RISK_MAX_POSITION",
    RISK_MAX_OPEN_POSITIONS: "RISK_MAX_OPEN_POSITIONS",
    RISK_MAX_GROSS_EXPOSURE: "RISK_MAX_GROSS_EXPOSURE",
    BALANCER_CONCENTRATION: "BALANCER_CONCENTRATION",
    BALANCER_STRESS_MAX_POSITIONS: "BALANCER_STRESS_MAX_POSITIONS",
    ESS_BLOCKED: "ESS_BLOCKED",
    ESS_HALTED: "ESS_HALTED",
    LEDGER_DOWN: "LEDGER_DOWN",
    KILL_SWITCH: "KILL_SWITCH",
    DRAWDOWN_LIMIT: "DRAWDOWN_LIMIT",
    FLATTENED: "FLATTENED",
    COOLDOWN_ELAPSED: "COOLDOWN_ELAPSED",
    OPERATOR_RESET: "OPERATOR_RESET",
    CATASTROPHIC_DRAWDOWN: "CATASTROPHIC_DRAWDOWN",
    ROLLING_WINRATE: "ROLLING_WINRATE",
    STOP_LOSS: "STOP_LOSS",
}
