"""Dagster wiring of the lite group (the hourly flash-crash lite on the live book)."""

import dagster as dg

from stress_pipeline.defs.lite.assets import lite_stress
from stress_pipeline.defs.lite.checks import lite_within_limits
from stress_pipeline.defs.lite.resources import lite_resource_from_env

defs = dg.Definitions(
    assets=[lite_stress],
    asset_checks=[lite_within_limits],
    resources={"lite": lite_resource_from_env()},
)
