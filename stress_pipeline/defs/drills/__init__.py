"""Dagster wiring of the drills group."""

import dagster as dg

from stress_pipeline.defs.drills.assets import decision_flood, drills
from stress_pipeline.defs.drills.checks import decision_latency_p99, drill_criteria_met

defs = dg.Definitions(assets=[decision_flood, drills], asset_checks=[drill_criteria_met, decision_latency_p99])
