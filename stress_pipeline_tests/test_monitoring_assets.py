"""The monitoring assets in real Dagster runs: coverage read from real drill runs (and failing when a
monitor is switched off), delivery against the embedded receiver (a real process, real HTTP, real
PostgreSQL), metrics parsed from the textfile and a Pushgateway stand-in; the routing key nowhere in
logs, metadata or files."""

from __future__ import annotations

import uuid
from pathlib import Path

import dagster as dg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from stress_pipeline.defs.certification.inputs import OPTIONAL_TABLE_INPUT, optional_table_input
from stress_pipeline.defs.drills import defs as drills_defs
from stress_pipeline.defs.io_manager import parquet_io_manager
from stress_pipeline.defs.monitoring import defs as monitoring_defs
from stress_pipeline.defs.monitoring.resources import AlertingResource
from stress_pipeline.defs.resources import StressResource
from stress_pipeline.monitoring.crafted import DETECTION_LIMITS_S
from stress_pipeline.monitoring.monitors import MONITORS, run_monitors
from stress_pipeline.parquet_store import read_parquet
from stress_pipeline.services.alert_receiver import stop_receiver
from stress_pipeline_tests.test_prometheus_metrics import PushgatewayStandIn

pytestmark = pytest.mark.services

SECRET = "S3cretR0utingKey" + uuid.uuid4().hex[:16]


MONITORING = ["monitoring_coverage", "alert_delivery", "prometheus_metrics"]


def _resources(home: Path, urls, **alerting) -> dict:
    return {
        "stress": StressResource(home=str(home), postgres_url=urls.postgres_url, redis_url=urls.redis_url),
        "alerting": AlertingResource(**alerting),
        "parquet_io_manager": parquet_io_manager,
        OPTIONAL_TABLE_INPUT: optional_table_input,
    }


def _everything() -> list:
    """The drills and monitoring groups, and the scenario verdicts of another group (never materialised here)."""
    return [*drills_defs.assets, *monitoring_defs.assets, *monitoring_defs.asset_checks,
            dg.AssetSpec("scenario_verdicts")]  # fmt: skip


def _drill(name: str, instance: dg.DagsterInstance, resources: dict) -> None:
    result = dg.materialize(_everything(), selection=["drills", "drill_detections"], partition_key=name,
                            instance=instance, resources=resources)  # fmt: skip
    assert result.success


def _stored(home: Path, asset: str, partition: str):
    [path] = home.rglob(f"{asset}/{partition}.*")
    return read_parquet(path)


def _samples(text: str) -> dict[tuple[str, tuple], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for f in text_string_to_metric_families(text) for s in f.samples}  # fmt: skip


def test_coverage_and_metrics_from_real_drills_and_the_routing_key_nowhere(external_service_urls, tmp_path) -> None:
    home = tmp_path / "home"
    gateway = PushgatewayStandIn()
    resources = _resources(home, external_service_urls, routing_key=SECRET, pushgateway_url=gateway.url,
                           delivery_scenarios=20)  # fmt: skip
    try:
        with dg.instance_for_test() as instance:
            for name in ("exchange_outage", "webhook_lost", "exchange_outage"):  # the outage drill twice
                _drill(name, instance, resources)
            result = dg.materialize(_everything(), selection=MONITORING, instance=instance, resources=resources)
            assert result.success
            coverage = result.output_for_node("monitoring_coverage").set_index("failure_mode")
            # Covered: the modes of the drills that ran, judged on what their monitors detected then.
            drilled = coverage.loc[["api_down", "webhook_lost"]]
            assert (drilled["source"] == "drill").all() and (drilled["outcome"] == "pass").all()
            assert list(drilled["drill"]) == ["exchange_outage", "webhook_lost"] and drilled["fired"].all()
            # Its detection time is the slowest the drill stored for the mode, within the mode's limit.
            stored = {d: _stored(home, "drill_detections", d) for d in ("exchange_outage", "webhook_lost")}
            slowest = {d: float(t["detection_s"].max()) for d, t in stored.items()}
            assert list(drilled["detection_s"]) == [slowest["exchange_outage"], slowest["webhook_lost"]]
            assert 0 < slowest["exchange_outage"] <= 60.0 and 0 < slowest["webhook_lost"] <= 6.0
            # The rest were driven by crafted streams, detected in time, and still not covered.
            rest = coverage.drop(index=["api_down", "webhook_lost"])
            assert (rest["source"] == "crafted").all() and (rest["outcome"] == "not_run").all() and len(rest) == 12
            assert (rest["detection_s"] <= rest.index.map(DETECTION_LIMITS_S)).all()
            evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
            check = evaluations["monitoring_complete"]
            assert not check.passed and check.metadata["coverage_pct"].value == pytest.approx(100 * 2 / 14)
            assert check.severity == dg.AssetCheckSeverity.WARN  # a finding; the certification's gate says NO-GO
            assert check.metadata["failed_modes"].data == []
            assert len(check.metadata["modes_without_a_drill_run"].data) == 12
            assert evaluations["alert_delivery_reliable"].passed, evaluations["alert_delivery_reliable"].metadata
            delivery = result.output_for_node("alert_delivery")
            assert delivery["delivered"].all() and (delivery["incidents"] == 1).all() and delivery["degraded"].any()
            logs = "\n".join(str(entry) for entry in instance.all_logs(result.run_id))
            materialisations = result.get_asset_materialization_events()
            published = {e.asset_key.to_user_string(): e.materialization.metadata for e in materialisations}
            assert published["monitoring_coverage"]["drills_read"].data == ["exchange_outage", "webhook_lost"]
            assert published["prometheus_metrics"]["tables"].data == {
                "scenario_verdicts": False, "decision_flood": False, "drills": ["exchange_outage", "webhook_lost"]}
        assert SECRET not in logs and "coverage_pct" in logs
        assert all(SECRET not in str(event.materialization.metadata) for event in materialisations)
        # The textfile, parsed: drill outcomes, runs, detection and recovery times, coverage, delivery.
        samples = _samples((home / "metrics" / "stress_pipeline.prom").read_text())
        outage, hooks = (("drill", "exchange_outage"),), (("drill", "webhook_lost"),)
        assert samples[("stress_drill_runs_total", outage)] == 2 and samples[("stress_drill_runs_total", hooks)] == 1
        assert samples[("stress_drill_passed", outage)] == 1
        assert samples[("stress_drill_criterion_passed", (("criterion", "recovery_s"), *outage))] == 1
        recovery_s = _stored(home, "drills", "exchange_outage").set_index("criterion").loc["recovery_s"]
        assert samples[("stress_drill_recovery_seconds", outage)] == recovery_s["value"]
        assert samples[("stress_drill_detection_seconds", (*outage, ("failure_mode", "api_down")))] == slowest[
            "exchange_outage"]
        assert samples[("stress_drill_detection_seconds", (*hooks, ("failure_mode", "webhook_lost")))] == slowest[
            "webhook_lost"]
        assert samples[("stress_monitoring_coverage_ratio", ())] == pytest.approx(2 / 14)
        assert samples[("stress_failure_detection_seconds", (("failure_mode", "api_down"),))] == slowest[
            "exchange_outage"]
        assert samples[("stress_alert_delivery_seconds_count", ())] == 20 and samples[("stress_runs_total", ())] == 1
        assert ("stress_breaches_total", (("criterion", "api_down"), ("source", "monitoring_coverage"))) not in samples
        [(method, _, body)] = gateway.requests
        assert method == "PUT" and _samples(body) == samples
        for file in Path(home).rglob("*"):
            if file.is_file() and "postgres" not in file.parts:
                assert SECRET.encode() not in file.read_bytes(), file
    finally:
        gateway.close()
        stop_receiver(home)


def test_a_monitor_switched_off_in_a_real_drill_fails_the_coverage(
    external_service_urls, tmp_path, monkeypatch
) -> None:
    home = tmp_path / "home"
    resources = _resources(home, external_service_urls, delivery_scenarios=1)
    # The webhook_lost monitor switched off: it looks at nothing and reports nothing.
    monkeypatch.setitem(MONITORS, "webhook_lost", lambda observation, config: run_monitors(observation, config, {}))
    try:
        with dg.instance_for_test() as instance:
            _drill("webhook_lost", instance, resources)
            result = dg.materialize(_everything(), selection=["monitoring_coverage"], instance=instance,
                                    resources=resources)  # fmt: skip
            assert result.success
            row = result.output_for_node("monitoring_coverage").set_index("failure_mode").loc["webhook_lost"]
            assert row["source"] == "drill" and not row["fired"] and row["outcome"] == "fail"
            assert row["detail"] == "its monitor detected nothing while webhook_lost ran"
            check = {e.check_name: e for e in result.get_asset_check_evaluations()}["monitoring_complete"]
            assert not check.passed and check.metadata["failed_modes"].data == ["webhook_lost"]
    finally:
        stop_receiver(home)
