"""Dagster wiring of the integrity group."""

import dagster as dg

from stress_pipeline.defs.integrity.assets import portfolio_reconciliation
from stress_pipeline.defs.integrity.checks import reconciliation_clean

defs = dg.Definitions(assets=[portfolio_reconciliation], asset_checks=[reconciliation_clean])
