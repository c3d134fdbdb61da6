"""Dagster wiring of the sweeps group."""

import dagster as dg

from stress_pipeline.defs.sweeps.assets import sweep_points, sweep_results, sweep_summary

parameter_sweep_job = dg.define_asset_job(
    "parameter_sweep",
    selection=dg.AssetSelection.assets(sweep_results),
    description="Run every sweep point; a backfill over all of them is one run.",
)

defs = dg.Definitions(assets=[sweep_points, sweep_results, sweep_summary], jobs=[parameter_sweep_job])
