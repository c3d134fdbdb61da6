"""Both simulations of one scenario, and their comparison: what the Dagster assets call.

Monte Carlo scenarios hold several paths: each path is simulated on its own, path 0 is the
representative result, and the distribution of every path's PnL and drawdown joins its metrics.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from stress_pipeline.market.panel import MarketPanel, prepare_panel
from stress_pipeline.scenarios.depth_books import stressed_books
from stress_pipeline.simulation.attribution import Attribution, attribute_pnl, paper_pnl_runner
from stress_pipeline.simulation.backtest import resolve_strategy, run_backtest
from stress_pipeline.simulation.config import SimConfig
from stress_pipeline.simulation.divergence import MetricDivergence, compare_metrics
from stress_pipeline.simulation.paper import RealismToggles, run_paper
from stress_pipeline.simulation.result import SimResult
from stress_pipeline.trading.lookahead import LookaheadReport, check_lookahead
from stress_pipeline.trading.risk.policy import TradingPolicy

KINDS = ("backtest", "paper")


def paths_of(stressed: pd.DataFrame) -> list[pd.DataFrame]:
    """One frame per Monte Carlo path (path 0 first), or the frame itself."""
    if "path" not in stressed.columns:
        return [stressed]
    return [frame.drop(columns="path") for _, frame in stressed.groupby("path", sort=True)]


def simulate_scenario(
    kind: str, stressed: pd.DataFrame, scenario, config: SimConfig, policy: TradingPolicy
) -> SimResult:
    """Run the backtest or the paper simulation of ``scenario`` on its stressed bars."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
    strategy = resolve_strategy(None, config)
    results = [_run(kind, frame, strategy, scenario, config, policy) for frame in paths_of(stressed)]
    result = results[0]
    if len(results) > 1:
        result.metrics.update(_distribution(results))
    return result


def scenario_lookahead(stressed: pd.DataFrame, config: SimConfig) -> LookaheadReport:
    """The lookahead guard on the weights the simulations of this scenario use (its first path):
    both simulation assets refuse to produce results when it fails."""
    return check_lookahead(resolve_strategy(None, config), paths_of(stressed)[0])


def _run(kind: str, bars: pd.DataFrame, strategy, scenario, config: SimConfig, policy: TradingPolicy) -> SimResult:
    if kind == "backtest":
        return run_backtest(bars, strategy, config, scenario_name=scenario.name)
    books = stressed_books(scenario, bars, calendar=config.calendar) if scenario.type == "depth_collapse" else None
    return run_paper(bars, strategy, config, policy=policy, faults=scenario.faults, scenario_name=scenario.name,
                     books=books)  # fmt: skip


def _distribution(results: Sequence[SimResult]) -> dict[str, object]:
    pnl = np.array([r.metrics["total_pnl"] for r in results], dtype=float)
    drawdown = np.array([r.metrics["max_drawdown"] for r in results], dtype=float)
    return {
        "paths": len(results),
        "pnl_p05": float(np.percentile(pnl, 5)),
        "pnl_p50": float(np.percentile(pnl, 50)),
        "pnl_p95": float(np.percentile(pnl, 95)),
        "max_drawdown_p95": float(np.percentile(drawdown, 95)),
        "loss_probability": float((pnl < 0).mean()),
    }


@dataclass(frozen=True)
class ScenarioComparison:
    divergence: list[MetricDivergence]
    attribution: Attribution

    @property
    def passed(self) -> bool:
        return all(row.passed for row in self.divergence)

    def divergence_table(self) -> pd.DataFrame:
        return pd.DataFrame([row.__dict__ for row in self.divergence])


def compare_scenario(
    backtest: SimResult, paper: SimResult, stressed: pd.DataFrame | MarketPanel, scenario, config: SimConfig,
    policy: TradingPolicy,
) -> ScenarioComparison:
    """Divergence of the two records and the PnL attribution ladder (on path 0 for Monte Carlo).
    ``stressed``: the scenario's bars, or path 0 already prepared as a panel (then nothing is cleaned
    again)."""
    rows = compare_metrics(backtest.metrics, paper.metrics, initial_capital=config.initial_capital)
    panel = stressed if isinstance(stressed, MarketPanel) else prepare_panel(paths_of(stressed)[0])[0]
    runner = paper_pnl_runner(panel, resolve_strategy(None, config), config, policy, scenario.faults)
    attribution = attribute_pnl(runner, RealismToggles, backtest_pnl=float(backtest.metrics["total_pnl"]))
    return ScenarioComparison(divergence=rows, attribution=attribution)
