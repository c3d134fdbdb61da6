"""The safety governor live: its state in Redis, stepped on equity marks, reset by an operator.

:class:`LiveGovernor` runs the governor's own transition function (``safety_governor.ess_step``) on
every equity mark and writes each new state to the run's hot state (``...:ess_state``), where the
decider reads it before every batch. There is no simulated operator here: the reset is an operator's
command (``stress-pipeline drills reset-ess RUN``, :func:`operator_reset`), accepted only in
AWAITING_RESET, i.e. after the cooldown; the governor sees the reset on its next mark and applies the
governor's OPERATOR_RESET transition (the peak re-based at the equity of the moment).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import redis

from stress_pipeline.state.hot_state import HotState, HotStateNotInitialisedError
from stress_pipeline.trading.risk.policy import SafetyConfig
from stress_pipeline.trading.risk.reasons import NONE, REASON_NAMES
from stress_pipeline.trading.risk.safety_governor import (
    ARMED,
    AWAITING_RESET,
    STATE_NAMES,
    ess_step,
    new_state,
    safety_params,
)


class EssResetRefused(RuntimeError):
    """The operator asked for a reset the governor's state does not allow."""


@dataclass(frozen=True)
class LiveTransition:
    t_s: float
    from_state: str
    to_state: str
    reason: str
    drawdown: float
    equity: float


class LiveGovernor:
    """The safety governor of one run, its state mirrored in Redis; ``clock()`` gives seconds."""

    def __init__(self, hot: HotState, config: SafetyConfig, equity: float, clock: Callable[[], float]) -> None:
        self.hot = hot
        self.clock = clock
        self._state_i, self._state_f = new_state(float(equity))
        trip, halt, cooldown_ns, _, flatten = safety_params(config)
        self._params = (trip, halt, cooldown_ns, -1, flatten)  # the reset is the operator's, never automatic
        self.transitions: list[LiveTransition] = []
        hot.set_ess_state(STATE_NAMES[ARMED])

    @property
    def state(self) -> str:
        return STATE_NAMES[int(self._state_i[0])]

    def mark(self, equity: float, *, flat: bool) -> list[LiveTransition]:
        """Step the governor at the clock's time on ``equity``; returns the transitions taken."""
        t_ns = round(self.clock() * 1e9)
        taken: list[LiveTransition] = []
        if self._state_i[0] == AWAITING_RESET and self.hot.snapshot().ess_state == STATE_NAMES[ARMED]:
            taken += self._step(t_ns, equity, flat, reset_delay_ns=0)  # the operator reset it
        taken += self._step(t_ns, equity, flat, reset_delay_ns=self._params[3])
        if taken:
            self.hot.set_ess_state(self.state)
        self.transitions += taken
        return taken

    def _step(self, t_ns: int, equity: float, flat: bool, *, reset_delay_ns: int) -> list[LiveTransition]:
        trip, halt, cooldown_ns, _, flatten = self._params
        out = []
        while True:
            before, after, reason, drawdown = ess_step(self._state_i, self._state_f, t_ns, float(equity), flat,
                                                       trip, halt, cooldown_ns, reset_delay_ns, flatten)  # fmt: skip
            if reason == NONE:
                return out
            out.append(LiveTransition(t_ns / 1e9, STATE_NAMES[before], STATE_NAMES[after], REASON_NAMES[int(reason)],
                                      float(drawdown), float(equity)))  # fmt: skip
            if reset_delay_ns == 0 and after == ARMED:
                return out


def operator_reset(client: redis.Redis, hot: HotState) -> str:
    """Return the ESS to ARMED; refused (:class:`EssResetRefused`) unless it is AWAITING_RESET, so the
    cooldown cannot be skipped. Atomic: a transaction watching the state key."""
    key = hot.keys.ess_state
    with client.pipeline(transaction=True) as pipe:
        pipe.watch(key)
        state = pipe.get(key)
        if state is None:
            raise HotStateNotInitialisedError(f"hot state {hot.keys.prefix} has no ESS state")
        name = state.decode() if isinstance(state, bytes) else state
        if name != STATE_NAMES[AWAITING_RESET]:
            raise EssResetRefused(f"{hot.keys.prefix}: the ESS is {name}; an operator reset is accepted only in "
                                  "AWAITING_RESET (after the cooldown)")  # fmt: skip
        pipe.multi()
        pipe.set(key, STATE_NAMES[ARMED])
        pipe.execute()
    return STATE_NAMES[ARMED]
