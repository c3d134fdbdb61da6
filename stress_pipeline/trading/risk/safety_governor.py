"""The safety governor: the emergency stop system (ESS) and the catastrophic halt.

States and transitions (evaluated at every bar close on mark-to-market equity; see ``SafetyConfig``
for the defaults and where they come from):

    ARMED --(drawdown from peak > trip_drawdown)--> TRIPPED          reason DRAWDOWN_LIMIT
    TRIPPED --(positions flat, at a later close)--> COOLDOWN          reason FLATTENED
    COOLDOWN --(cooldown_s elapsed)--> AWAITING_RESET                 reason COOLDOWN_ELAPSED
    AWAITING_RESET --(operator_reset_delay_s later)--> ARMED          reason OPERATOR_RESET
    any --(drawdown from the run's peak > halt_drawdown)--> HALTED    reason CATASTROPHIC_DRAWDOWN

The "manual reset" of a live desk is an operator's action; a simulation has no operator, so it is a
configured delay after the cooldown ends (None: nobody resets, trading stays stopped). The reset
re-bases the ESS peak at the equity of the moment (the operator accepts the loss), so the governor
does not trip again on the same drawdown; the halt keeps measuring from the run's peak. Only HALTED
is final. "More than" is strict: a drawdown equal to a threshold (up to float rounding) does not act.
The state lives in two small arrays so the compiled paper engine can carry it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stress_pipeline.trading.compiled import compiled
from stress_pipeline.trading.risk.policy import SafetyConfig
from stress_pipeline.trading.risk.reasons import (
    CATASTROPHIC_DRAWDOWN,
    COOLDOWN_ELAPSED,
    DRAWDOWN_LIMIT,
    FLATTENED,
    NONE,
    OPERATOR_RESET,
    REASON_NAMES,
)

ARMED, TRIPPED, COOLDOWN, AWAITING_RESET, HALTED = 0, 1, 2, 3, 4
STATE_NAMES = ("ARMED", "TRIPPED", "COOLDOWN", "AWAITING_RESET", "HALTED")
NEVER = -1  # operator reset delay: nobody comes
_TOLERANCE = 1e-12


@dataclass(frozen=True)
class Transition:
    t_ns: int
    bar: int
    from_state: str
    to_state: str
    reason: str
    drawdown: float  # from the ESS peak, at the transition
    equity: float


class SafetyGovernor:
    """Runs the compiled :func:`ess_step` over an equity path (for tests, notebooks and replays)."""

    def __init__(self, config: SafetyConfig | None = None) -> None:
        self.config = config or SafetyConfig()

    def run(
        self, t_ns: np.ndarray, equity: np.ndarray, flat: np.ndarray | None = None
    ) -> tuple[list[Transition], np.ndarray]:
        """Every transition along the path, and the state after each bar (as names). ``flat[i]``
        says whether positions were flat at bar i (default: always)."""
        cfg = self.config
        t_ns = np.asarray(t_ns, dtype=np.int64)
        equity = np.asarray(equity, dtype=np.float64)
        flat = np.ones(len(equity), dtype=bool) if flat is None else np.asarray(flat, dtype=bool)
        state_i, state_f = new_state(float(equity[0]))
        params = safety_params(cfg)
        transitions: list[Transition] = []
        states = []
        for i in range(len(equity)):
            while True:
                step = ess_step(state_i, state_f, int(t_ns[i]), float(equity[i]), bool(flat[i]), *params)
                before, after, reason, drawdown = step
                if reason == NONE:
                    break
                name = REASON_NAMES[int(reason)]
                transitions.append(Transition(int(t_ns[i]), i, STATE_NAMES[before], STATE_NAMES[after], name,
                                              float(drawdown), float(equity[i])))  # fmt: skip
            states.append(STATE_NAMES[int(state_i[0])])
        return transitions, np.array(states)


def new_state(initial_equity: float) -> tuple[np.ndarray, np.ndarray]:
    """(int64 [state, entered_ns, activations from ARMED], float64 [ESS peak, run peak])."""
    state_i = np.zeros(3, dtype=np.int64)
    state_f = np.array([initial_equity, initial_equity], dtype=np.float64)
    return state_i, state_f


def safety_params(cfg: SafetyConfig) -> tuple[float, float, int, int, bool]:
    reset = NEVER if cfg.operator_reset_delay_s is None else round(cfg.operator_reset_delay_s * 1e9)
    return cfg.trip_drawdown, cfg.halt_drawdown, round(cfg.cooldown_s * 1e9), reset, cfg.flatten_on_trip


@compiled
def ess_step(
    state_i: np.ndarray, state_f: np.ndarray, t_ns: int, equity: float, flat: bool, trip_drawdown: float,
    halt_drawdown: float, cooldown_ns: int, reset_delay_ns: int, require_flat: bool,
) -> tuple[int, int, int, float]:
    """Take at most one transition at time ``t_ns``; returns (from, to, reason, drawdown), reason 0
    when nothing changed. Call again until it returns 0: a zero cooldown or reset delay may allow
    several transitions at one close."""
    state = state_i[0]
    if equity > state_f[1]:
        state_f[1] = equity
    if state == ARMED and equity > state_f[0]:
        state_f[0] = equity
    drawdown = 1.0 - equity / state_f[0] if state_f[0] > 0.0 else 0.0
    if state != HALTED and state_f[1] > 0.0 and _beyond(1.0 - equity / state_f[1], halt_drawdown):
        if state == ARMED:
            state_i[2] += 1
        return _move(state_i, HALTED, t_ns, CATASTROPHIC_DRAWDOWN, drawdown)
    if state == ARMED:
        if _beyond(drawdown, trip_drawdown):
            state_i[2] += 1
            return _move(state_i, TRIPPED, t_ns, DRAWDOWN_LIMIT, drawdown)
    elif state == TRIPPED:
        if t_ns > state_i[1] and (flat or not require_flat):
            return _move(state_i, COOLDOWN, t_ns, FLATTENED, drawdown)
    elif state == COOLDOWN:
        if t_ns - state_i[1] >= cooldown_ns:
            return _move(state_i, AWAITING_RESET, state_i[1] + cooldown_ns, COOLDOWN_ELAPSED, drawdown)
    elif state == AWAITING_RESET and reset_delay_ns >= 0 and t_ns - state_i[1] >= reset_delay_ns:
        state_f[0] = equity
        return _move(state_i, ARMED, t_ns, OPERATOR_RESET, drawdown)
    return state, state, NONE, drawdown


@compiled
def _beyond(drawdown: float, threshold: float) -> bool:
    """Strictly past the threshold; a drawdown equal to it up to float rounding (1e-12) is not."""
    return drawdown - threshold > _TOLERANCE


@compiled
def _move(state_i: np.ndarray, to: int, entered_ns: int, reason: int, drawdown: float) -> tuple[int, int, int, float]:
    before = state_i[0]
    state_i[0] = to
    state_i[1] = entered_ns
    return before, to, reason, drawdown
