"""The two simulations of the trading system under test, their metrics and their comparison.

``run_backtest`` is the idealised vectorised backtest a researcher would write; ``run_paper`` the
event-driven paper run through the risk stack and the exchange simulator. Both return a
:class:`SimResult` computed by the same metrics module.
"""

from stress_pipeline.simulation.backtest import run_backtest
from stress_pipeline.simulation.config import SimConfig
from stress_pipeline.simulation.paper import RealismToggles, run_paper
from stress_pipeline.simulation.result import RESULT_FIELDS, SimResult

__all__ = ["RESULT_FIELDS", "RealismToggles", "SimConfig", "SimResult", "run_backtest", "run_paper"]
