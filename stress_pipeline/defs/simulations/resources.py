"""The simulation settings a run uses: strategy, its parameters, capital and trading policy.

Set them in the run config (``resources: simulation: config: strategy: "my_pkg.signals:momentum"``)
or leave the defaults: the trend strategy on 100,000 with data/policies/default.yaml.
"""

import dagster as dg
from pydantic import Field

from stress_pipeline.simulation.config import SimConfig
from stress_pipeline.trading.risk.policy import TradingPolicy, load_policy


class SimulationResource(dg.ConfigurableResource):
    """Which trading system runs in the simulations."""

    strategy: str = "trend"
    strategy_params: dict[str, float] = Field(default_factory=dict)
    initial_capital: float = 100_000.0
    # Half the equity at full conviction: keeps the default trend book on three coins inside the
    # emergency stop's 10% drawdown in calm markets, so the baseline shows the system, not its stops.
    position_scale: float = 0.5
    policy: str = "default"

    def sim_config(self) -> SimConfig:
        return SimConfig(
            strategy=self.strategy,
            strategy_params=dict(self.strategy_params),
            initial_capital=self.initial_capital,
            position_scale=self.position_scale,
        )

    def trading_policy(self) -> TradingPolicy:
        return load_policy(self.policy)
