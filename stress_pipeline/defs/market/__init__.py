"""Dagster wiring of the market group."""

import dagster as dg

from stress_pipeline.defs.market.assets import market_bars
from stress_pipeline.defs.market.checks import market_bars_quality
from stress_pipeline.defs.market.sensors import market_files_sensor

market_ingest_job = dg.define_asset_job(
    "market_ingest",
    selection=dg.AssetSelection.groups("market"),
    description="Ingest and validate the bars of one symbol.",
)

defs = dg.Definitions(
    assets=[market_bars],
    asset_checks=[market_bars_quality],
    sensors=[market_files_sensor],
    jobs=[market_ingest_job],
)
