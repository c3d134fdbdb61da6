"""The monitoring checks: coverage complete, alerts delivered once each within the seed's times."""

import dagster as dg
import pandas as pd

from stress_pipeline.defs.monitoring.assets import alert_delivery, monitoring_coverage
from stress_pipeline.monitoring.coverage import coverage_percent
from stress_pipeline.monitoring.delivery_report import delivery_failures, delivery_summary


@dg.asset_check(
    asset=monitoring_coverage,
    description="Every failure mode made to happen by its drill, detected in time by its monitor and alerted, "
    "no false alarm; a mode covered only by a crafted stream is not a pass. A gap is a WARN: a finding about "
    "the system under test's monitoring, which the certification's monitoring_coverage_pct gate judges.",
)
def monitoring_complete(monitoring_coverage: pd.DataFrame) -> dg.AssetCheckResult:
    outcome = monitoring_coverage.set_index("failure_mode")["outcome"]
    percent = coverage_percent(monitoring_coverage)
    return dg.AssetCheckResult(
        passed=bool(percent == 100.0),
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "coverage_pct": dg.MetadataValue.float(percent),
            "failed_modes": dg.MetadataValue.json(outcome.index[outcome == "fail"].tolist()),
            "modes_without_a_drill_run": dg.MetadataValue.json(outcome.index[outcome == "not_run"].tolist()),
        },
    )


@dg.asset_check(asset=alert_delivery, description="100% delivered, no duplicate incident, median < 15 s, p95 < 30 s.")
def alert_delivery_reliable(alert_delivery: pd.DataFrame) -> dg.AssetCheckResult:
    summary = delivery_summary(alert_delivery)
    failures = delivery_failures(summary)
    return dg.AssetCheckResult(
        passed=not failures,
        metadata={
            **{k: dg.MetadataValue.float(v) for k, v in summary.items()},
            "failures": dg.MetadataValue.json(failures),
        },
    )
