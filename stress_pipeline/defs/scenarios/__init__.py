"""Dagster wiring of the scenarios group."""

import dagster as dg

from stress_pipeline.defs.scenarios.assets import scenario_catalog, stressed_bars
from stress_pipeline.defs.scenarios.checks import scenario_packs_valid, stressed_bars_invariants

scenario_sweep_job = dg.define_asset_job(
    "scenario_sweep",
    selection=dg.AssetSelection.assets(stressed_bars),
    description="Stress every scenario partition; a backfill over all of them is one run.",
)

defs = dg.Definitions(
    assets=[scenario_catalog, stressed_bars],
    asset_checks=[scenario_packs_valid, stressed_bars_invariants],
    jobs=[scenario_sweep_job],
)
