"""Dagster wiring of the monitoring group."""

import dagster as dg

from stress_pipeline.defs.monitoring.assets import alert_delivery, monitoring_coverage, prometheus_metrics
from stress_pipeline.defs.monitoring.checks import alert_delivery_reliable, monitoring_complete
from stress_pipeline.defs.monitoring.resources import alerting_resource_from_env

defs = dg.Definitions(
    assets=[monitoring_coverage, alert_delivery, prometheus_metrics],
    asset_checks=[monitoring_complete, alert_delivery_reliable],
    resources={"alerting": alerting_resource_from_env()},
)
