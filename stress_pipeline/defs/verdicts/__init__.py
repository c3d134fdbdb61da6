"""Dagster wiring of the verdicts group."""

import dagster as dg

from stress_pipeline.defs.verdicts.assets import scenario_verdict, scenario_verdicts
from stress_pipeline.defs.verdicts.checks import scenario_verdict_passed, scenario_verdicts_complete

defs = dg.Definitions(
    assets=[scenario_verdict, scenario_verdicts],
    asset_checks=[scenario_verdict_passed, scenario_verdicts_complete],
)
