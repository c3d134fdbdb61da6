"""The risk stack of the system under test: pre-trade guard, portfolio balancer, safety governor
(emergency stop), policy controller and per-position stop-loss, configured from data/policies/*.yaml.

Each part is a small compiled function the paper engine calls bar by bar, with a plain Python class
around it for tests and notebooks.
"""

from stress_pipeline.trading.risk.balancer import PortfolioBalancer, detect_stress
from stress_pipeline.trading.risk.guard import GuardDecision, RiskGuard
from stress_pipeline.trading.risk.policy import (
    BalancerConfig,
    GuardLimits,
    PolicyControllerConfig,
    PolicyFileError,
    RiskPolicy,
    SafetyConfig,
    StopLossConfig,
    StressConfig,
    TradingPolicy,
    load_policy,
)
from stress_pipeline.trading.risk.policy_controller import PolicyController
from stress_pipeline.trading.risk.safety_governor import SafetyGovernor, Transition
from stress_pipeline.trading.risk.stop_loss import stop_trigger

__all__ = [
    "BalancerConfig",
    "GuardDecision",
    "GuardLimits",
    "PolicyController",
    "PolicyControllerConfig",
    "PolicyFileError",
    "PortfolioBalancer",
    "RiskGuard",
    "RiskPolicy",
    "SafetyConfig",
    "SafetyGovernor",
    "StopLossConfig",
    "StressConfig",
    "TradingPolicy",
    "Transition",
    "detect_stress",
    "load_policy",
    "stop_trigger",
]
