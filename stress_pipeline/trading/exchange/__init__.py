"""The venue the system under test trades on, simulated: latency, bar-path fills, spread, impact,
fees, participation caps, rate limits and outages, plus the order router's settings."""

from stress_pipeline.trading.exchange.client import Attempt, replay_submission, retry_delay_ns
from stress_pipeline.trading.exchange.config import (
    ExchangeConfig,
    FeeConfig,
    FillConfig,
    LatencyConfig,
    RateLimitConfig,
    RouterConfig,
)
from stress_pipeline.trading.exchange.faults import FaultWindows, as_fault_specs, fault_windows

__all__ = [
    "Attempt",
    "ExchangeConfig",
    "FaultWindows",
    "FeeConfig",
    "FillConfig",
    "LatencyConfig",
    "RateLimitConfig",
    "RouterConfig",
    "as_fault_specs",
    "fault_windows",
    "replay_submission",
    "retry_delay_ns",
]
