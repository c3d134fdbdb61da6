"""Dagster wiring of the simulations group."""

import dagster as dg

from stress_pipeline.defs.simulations.assets import backtest_results, divergence_report, paper_results
from stress_pipeline.defs.simulations.checks import divergence_within_limit, lookahead_guard, paper_not_optimistic

defs = dg.Definitions(
    assets=[backtest_results, paper_results, divergence_report],
    asset_checks=[divergence_within_limit, paper_not_optimistic, lookahead_guard],
)
