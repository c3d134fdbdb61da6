"""Dagster wiring of the drills group."""

import dagster as dg

from stress_pipeline.defs.drills.assets import decision_flood, drills

defs = dg.Definitions(assets=[decision_flood, drills])
