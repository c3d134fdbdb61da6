"""The alerting sensors against the real alert path: the embedded PostgreSQL, the embedded alert
receiver (a real process over HTTP), real Dagster runs of the real check and the real suite job."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg
import pytest

from stress_pipeline.automation import alerts
from stress_pipeline.automation.market_hours import lite_slot
from stress_pipeline.certification.decide import GATE, OVERALL, Sources, certify
from stress_pipeline.certification.gates import GO, PASS
from stress_pipeline.definitions import defs
from stress_pipeline.defs.automation.jobs import HOURLY_FLASH_CRASH_LITE
from stress_pipeline.defs.automation.sensors import (
    certification_no_go_sensor,
    judge_lite_staleness,
    lite_run_stale_sensor,
    suite_run_failure_sensor,
)
from stress_pipeline.defs.certification.assets import certification_days
from stress_pipeline.defs.certification.checks import certification_go
from stress_pipeline.defs.io_manager import parquet_io_manager
from stress_pipeline.defs.monitoring.resources import AlertingResource
from stress_pipeline.defs.resources import StressResource
from stress_pipeline.monitoring.alert_store import alert_tables, incidents_of
from stress_pipeline.services import postgres_engine, stop_embedded

pytestmark = pytest.mark.services

NY = ZoneInfo("America/New_York")
DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.fixture
def resources(tmp_path):
    stress = StressResource(home=str(tmp_path / "home"), data_dir=str(DATA))
    try:
        yield {"stress": stress, "alerting": AlertingResource()}
    finally:
        stop_embedded(stress.settings())  # and the alert receiver


def incidents(stress: StressResource, key: str) -> list[dict]:
    engine = postgres_engine(stress.ledger_url())
    try:
        return incidents_of(engine, alert_tables(), [key])
    finally:
        engine.dispose()


def run_event(instance: dg.DagsterInstance, run_id: str, kind: dg.DagsterEventType) -> dg.DagsterEvent:
    [entry] = instance.all_logs(run_id, of_type=kind)
    return entry.dagster_event


def certification_run(instance, stress: StressResource, day: str, go: bool) -> str:
    """A run of the real certification_go check on a stored certification table of ``day``."""
    table = certify(Sources(verdicts=None)).table()  # every gate without input: NO-GO
    if go:
        table.loc[table["section"] == GATE, "verdict"] = PASS
        table.loc[table["section"] == OVERALL, "verdict"] = GO

    @dg.asset(name="certification", partitions_def=certification_days, io_manager_key="parquet_io_manager")
    def stored_certification():
        return table

    result = dg.materialize([stored_certification, certification_go], partition_key=day, instance=instance,
                            resources={"stress": stress, "parquet_io_manager": parquet_io_manager})  # fmt: skip
    assert result.success
    [evaluation] = result.get_asset_check_evaluations()
    assert evaluation.passed is go and evaluation.partition == day
    return result.run_id


def test_a_no_go_certification_pages_once_per_day_and_a_go_does_not(resources) -> None:
    stress = resources["stress"]
    with dg.instance_for_test() as instance:
        run_id = certification_run(instance, stress, "2026-12-01", go=False)
        run = instance.get_run_by_id(run_id)
        for _ in range(2):  # the sensor seeing the same NO-GO again folds into the open incident
            context = dg.build_run_status_sensor_context(
                sensor_name="certification_no_go_sensor", dagster_instance=instance, dagster_run=run,
                dagster_event=run_event(instance, run_id, dg.DagsterEventType.RUN_SUCCESS), resources=resources,
            )  # fmt: skip
            assert certification_no_go_sensor(context) is None
        [incident] = incidents(stress, "stress-pipeline/certification_no_go/2026-12-01")
        assert incident["status"] == "triggered" and incident["triggers"] == 2 and incident["severity"] == "critical"
        assert "NO-GO" in incident["summary"] and "gate(s) stop it" in incident["summary"]

        go_id = certification_run(instance, stress, "2026-12-02", go=True)
        context = dg.build_run_status_sensor_context(
            sensor_name="certification_no_go_sensor", dagster_instance=instance,
            dagster_run=instance.get_run_by_id(go_id),
            dagster_event=run_event(instance, go_id, dg.DagsterEventType.RUN_SUCCESS), resources=resources,
        )  # fmt: skip
        skipped = certification_no_go_sensor(context)
        assert isinstance(skipped, dg.SkipReason) and "no NO-GO" in skipped.skip_message
        assert incidents(stress, "stress-pipeline/certification_no_go/2026-12-02") == []


def test_a_failed_suite_run_pages_with_its_run_and_message(resources) -> None:
    stress = resources["stress"]
    job = defs.resolve_job_def("nightly_core_suite")
    run_config = {
        "ops": {"nightly_core_suite_run": {"config": {"select": "key:no_such_asset"}}},
        "resources": {"stress": {"config": {"home": stress.home, "data_dir": stress.data_dir}}},
    }
    with dg.instance_for_test() as instance:
        result = job.execute_in_process(run_config=run_config, instance=instance, raise_on_error=False)
        assert not result.success
        failure = run_event(instance, result.run_id, dg.DagsterEventType.RUN_FAILURE)
        context = dg.build_run_status_sensor_context(
            sensor_name="suite_run_failure_sensor", dagster_instance=instance,
            dagster_run=instance.get_run_by_id(result.run_id), dagster_event=failure, resources=resources,
        ).for_run_failure()  # fmt: skip
        suite_run_failure_sensor(context)
    [incident] = incidents(stress, f"stress-pipeline/suite_run_failed/nightly_core_suite:{result.run_id}")
    assert incident["severity"] == "error" and incident["summary"].startswith("nightly_core_suite run ")


def test_the_suite_job_runs_its_selection_with_the_launchpads_system_under_test(tmp_path) -> None:
    """The launchpad's `stress` config reaches every group run: the catalog is stored under its home."""
    home = tmp_path / "launchpad-home"
    job = defs.resolve_job_def("weekly_full_sweep")
    run_config = {
        "ops": {"weekly_full_sweep_run": {"config": {"select": "key:scenario_catalog"}}},
        "resources": {"stress": {"config": {"home": str(home), "data_dir": str(DATA),
                                            "strategy": "mean_reversion", "policy": "default"}}},
    }  # fmt: skip
    with dg.instance_for_test() as instance:
        result = job.execute_in_process(run_config=run_config, instance=instance)
        assert result.success
        children = [r for r in instance.get_runs() if r.run_id != result.run_id]
        assert len(children) == 1 and children[0].is_success
        [event] = instance.fetch_materializations(dg.AssetKey("scenario_catalog"), limit=1).records
        assert event.run_id == children[0].run_id
        assert len(instance.get_dynamic_partitions("scenarios")) > 20
    assert (home / "storage" / "scenario_catalog.parquet").is_file()


@dg.job(name=HOURLY_FLASH_CRASH_LITE)
def lite_run_record() -> None:
    """A successful run under the lite job's name: what the stale sensor looks for."""


def test_a_stale_lite_run_pages_once_per_session_in_market_time(resources) -> None:
    stress = resources["stress"]
    tuesday_11 = datetime(2026, 3, 10, 11, 0, tzinfo=NY)
    with dg.instance_for_test() as instance:
        # Watching since Monday 15:00 with no lite run: 1 h Monday + 1.5 h Tuesday > 2 h.
        since = datetime(2026, 3, 9, 15, 0, tzinfo=NY).isoformat()
        cursor = f'{{"watching_since": "{since}"}}'
        for _ in range(2):
            context = dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources)
            result = judge_lite_staleness(context, stress, resources["alerting"], tuesday_11.astimezone(UTC))
            assert "alerted: 2.50 h of market time since watching began" in result.skip_reason.skip_message
        [incident] = incidents(stress, "stress-pipeline/lite_run_stale/2026-03-10")
        assert incident["triggers"] == 2 and "2.5 h of market time (limit 2 h)" in incident["summary"]

        # Within 2 h of market time: silent.
        context = dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources)
        fresh = judge_lite_staleness(context, stress, resources["alerting"], datetime(2026, 3, 10, 9, 45, tzinfo=NY))
        message = fresh.skip_reason.skip_message
        assert "1.25 h of market time" in message and "alerted" not in message

        # A successful lite run after that time is the reference: nothing is stale.
        assert lite_run_record.execute_in_process(instance=instance).success
        context = dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources)
        later = datetime.now(UTC) + timedelta(minutes=1)
        judged = judge_lite_staleness(context, stress, resources["alerting"], later)
        assert "alerted" not in judged.skip_reason.skip_message

    # The decorated sensor on the real clock: starts watching now, so it never pages on its first tick.
    with dg.instance_for_test() as instance:
        result = lite_run_stale_sensor(dg.build_sensor_context(instance=instance, resources=resources))
        expected = "h of market time since watching began" if lite_slot(datetime.now(UTC)).due else "outside market"
        assert expected in result.skip_reason.skip_message and "watching_since" in result.cursor


def test_alerts_carry_deterministic_dedup_keys() -> None:
    at = datetime(2026, 3, 10, 15, 0, tzinfo=UTC)
    assert alerts.certification_no_go("2026-03-10", ["a"], "r1", at).dedup_key == (
        "stress-pipeline/certification_no_go/2026-03-10"
    )
    assert alerts.suite_run_failed("weekly_full_sweep", "abc", "boom", at).dedup_key == (
        "stress-pipeline/suite_run_failed/weekly_full_sweep:abc"
    )
    stale = alerts.lite_run_stale(at.date(), at, timedelta(hours=3), timedelta(hours=2), at)
    assert stale.dedup_key == "stress-pipeline/lite_run_stale/2026-03-10"
