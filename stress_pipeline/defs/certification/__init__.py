"""Dagster wiring of the certification group."""

import dagster as dg

from stress_pipeline.defs.certification.assets import certification, certification_report
from stress_pipeline.defs.certification.checks import certification_go
from stress_pipeline.defs.certification.inputs import OPTIONAL_TABLE_INPUT, optional_table_input

defs = dg.Definitions(
    assets=[certification, certification_report],
    asset_checks=[certification_go],
    resources={OPTIONAL_TABLE_INPUT: optional_table_input},
)
