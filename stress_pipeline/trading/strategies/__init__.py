"""Reference strategies (trend, mean reversion, breakout) and the adapters for user strategies."""

from stress_pipeline.trading.strategies.base import PanelStrategy, Strategy, panel_to_bars, weights_frame
from stress_pipeline.trading.strategies.breakout import BreakoutStrategy
from stress_pipeline.trading.strategies.external import FunctionStrategy, StrategySpecError, as_strategy, load_external
from stress_pipeline.trading.strategies.mean_reversion import MeanReversionStrategy
from stress_pipeline.trading.strategies.trend import TrendStrategy

REFERENCE_STRATEGIES: dict[str, type[PanelStrategy]] = {
    "trend": TrendStrategy,
    "mean_reversion": MeanReversionStrategy,
    "breakout": BreakoutStrategy,
}

__all__ = [
    "REFERENCE_STRATEGIES",
    "BreakoutStrategy",
    "FunctionStrategy",
    "MeanReversionStrategy",
    "PanelStrategy",
    "Strategy",
    "StrategySpecError",
    "TrendStrategy",
    "as_strategy",
    "load_external",
    "panel_to_bars",
    "weights_frame",
]
