"""Dagster wiring of the certification group."""

import dagster as dg

from stress_pipeline.defs.certification.assets import certification, certification_report

defs = dg.Definitions(assets=[certification, certification_report])
