"""The monitoring assets in real Dagster runs: coverage and delivery against the embedded receiver (a
real process, real HTTP, real PostgreSQL), metrics to a textfile and a Pushgateway stand-in; the
routing key nowhere in logs, metadata or files."""

from __future__ import annotations

import uuid
from pathlib import Path

import dagster as dg
import pytest

from stress_pipeline.defs.certification.inputs import OPTIONAL_TABLE_INPUT, optional_table_input
from stress_pipeline.defs.io_manager import parquet_io_manager
from stress_pipeline.defs.monitoring import defs as monitoring_defs
from stress_pipeline.defs.monitoring.resources import AlertingResource
from stress_pipeline.defs.resources import StressResource
from stress_pipeline.monitoring.crafted import DETECTION_LIMITS_S
from stress_pipeline.services.alert_receiver import stop_receiver
from stress_pipeline_tests.test_prometheus_metrics import PushgatewayStandIn

pytestmark = pytest.mark.services

SECRET = "S3cretR0utingKey" + uuid.uuid4().hex[:16]


def test_monitoring_assets_materialise_pass_and_never_show_the_routing_key(external_service_urls, tmp_path) -> None:
    home = tmp_path / "home"
    gateway = PushgatewayStandIn()
    assets = list(monitoring_defs.assets)
    checks = list(monitoring_defs.asset_checks)
    resources = {
        "stress": StressResource(home=str(home), postgres_url=external_service_urls.postgres_url,
                                 redis_url=external_service_urls.redis_url),
        "alerting": AlertingResource(routing_key=SECRET, pushgateway_url=gateway.url, delivery_scenarios=20),
        "parquet_io_manager": parquet_io_manager,
        OPTIONAL_TABLE_INPUT: optional_table_input,
    }  # fmt: skip
    try:
        with dg.instance_for_test() as instance:
            # Upstream tables of other groups, never materialised in this instance.
            elsewhere = [dg.AssetSpec("scenario_verdicts"), dg.AssetSpec("decision_flood")]
            result = dg.materialize([*assets, *checks, *elsewhere], resources=resources, instance=instance)
            assert result.success
            evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
            assert evaluations["monitoring_complete"].passed, evaluations["monitoring_complete"].metadata
            assert evaluations["alert_delivery_reliable"].passed, evaluations["alert_delivery_reliable"].metadata
            coverage = result.output_for_node("monitoring_coverage")
            assert (coverage["outcome"] == "pass").all() and len(coverage) == 14
            assert (coverage["detection_s"] <= coverage["failure_mode"].map(DETECTION_LIMITS_S)).all()
            delivery = result.output_for_node("alert_delivery")
            assert delivery["delivered"].all() and (delivery["incidents"] == 1).all() and delivery["degraded"].any()
            logs = "\n".join(str(entry) for entry in instance.all_logs(result.run_id))
            materialisations = result.get_asset_materialization_events()
            published = {e.asset_key.to_user_string(): e.materialization.metadata for e in materialisations}
            # Never materialised here: left out of the metrics, not a failure.
            assert published["prometheus_metrics"]["tables"].data == {"scenario_verdicts": False,
                                                                      "decision_flood": False}  # fmt: skip
        assert SECRET not in logs and "coverage_pct" in logs
        assert all(SECRET not in str(event.materialization.metadata) for event in materialisations)
        textfile = home / "metrics" / "stress_pipeline.prom"
        assert "stress_monitoring_coverage_ratio 1.0" in textfile.read_text()
        [(method, _, body)] = gateway.requests
        assert method == "PUT" and "stress_alert_delivery_seconds_bucket" in body
        for file in Path(home).rglob("*"):
            if file.is_file() and "postgres" not in file.parts:
                assert SECRET.encode() not in file.read_bytes(), file
    finally:
        gateway.close()
        stop_receiver(home)
