"""The order client's retry policy, and a replay of it for one order (for tests and what-if questions).

A refused order (-1003 or -1015) is sent again after max(Retry-After, base * 2**attempt): the venue's
instruction wins when it asks for longer than the client's own backoff. After ``max_retries`` retries
the client gives up and the engine records an execution failure. Seed 004: at most 3 retries,
backoff 0.1 s doubling.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stress_pipeline.trading.compiled import compiled
from stress_pipeline.trading.exchange.config import RateLimitConfig
from stress_pipeline.trading.exchange.rate_limits import new_state, rate_check
from stress_pipeline.trading.exchange.reasons import BINANCE_CODES, NONE


@dataclass(frozen=True)
class Attempt:
    t_ns: int
    code: int  # 0 accepted, else the Binance error code (-1003, -1015)
    retry_after_ns: int


def replay_submission(
    t_ns: int, config: RateLimitConfig, *, state: np.ndarray | None = None, limit_mult=lambda t_ns: 1.0
) -> tuple[list[Attempt], bool]:
    """Submit one order at ``t_ns`` against the limiter ``state`` (new if None), retrying as the engine
    does; ``limit_mult(t)`` scales both limits (a rate_limit fault). Returns the attempts and whether
    the order got through."""
    state = new_state() if state is None else state
    base_ns = int(config.backoff_base_s * 1e9)
    attempts: list[Attempt] = []
    for attempt in range(config.max_retries + 1):
        mult = float(limit_mult(t_ns))
        reason, retry_after = rate_check(
            state, t_ns, config.order_weight, True,
            int(config.weight_per_minute * mult), int(config.orders_per_10s * mult),
        )  # fmt: skip
        attempts.append(Attempt(t_ns, BINANCE_CODES.get(int(reason), 0), int(retry_after)))
        if reason == NONE:
            return attempts, True
        t_ns += retry_delay_ns(attempt, retry_after, base_ns)
    return attempts, False


@compiled
def retry_delay_ns(attempt: int, retry_after_ns: int, backoff_base_ns: int) -> int:
    """How long to wait before retry number ``attempt + 1``."""
    return max(retry_after_ns, backoff_base_ns * (1 << attempt))
