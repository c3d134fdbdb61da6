"""The automation in Dagster: jobs, schedules evaluated over the DST changes, a holiday and an early
close, default statuses, and the lite job's executor waiting for the slot's offset."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import dagster as dg

from stress_pipeline.automation.market_hours import lite_slots
from stress_pipeline.definitions import defs
from stress_pipeline.defs.automation.jobs import NOT_BEFORE_TAG, not_before_executor
from stress_pipeline.defs.automation.schedules import (
    LITE_CRON,
    hourly_flash_crash_lite_schedule,
    nightly_core_suite_schedule,
    weekly_full_sweep_schedule,
)

NY = ZoneInfo("America/New_York")
AUTOMATION_SENSORS = ("certification_no_go_sensor", "suite_run_failure_sensor", "lite_run_stale_sensor")


def evaluate(schedule: dg.ScheduleDefinition, moment: datetime):
    with dg.instance_for_test() as instance:
        context = dg.build_schedule_context(instance=instance, scheduled_execution_time=moment)
        return list(schedule.evaluate_tick(context).run_requests or []), schedule.evaluate_tick(context).skip_message


def test_the_jobs_schedules_and_sensors_are_registered_stopped_in_new_york_time() -> None:
    for name in ("nightly_core_suite", "weekly_full_sweep", "hourly_flash_crash_lite"):
        assert defs.resolve_job_def(name).name == name
    schedules = {s.name: s for s in defs.schedules}
    assert set(schedules) == {"hourly_flash_crash_lite_schedule", "nightly_core_suite_schedule",
                              "weekly_full_sweep_schedule"}  # fmt: skip
    for schedule in schedules.values():
        assert schedule.execution_timezone == "America/New_York"
        assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    sensors = {s.name: s for s in defs.sensors}
    for name in AUTOMATION_SENSORS:
        assert sensors[name].default_status == dg.DefaultSensorStatus.STOPPED
    assert schedules["hourly_flash_crash_lite_schedule"].job_name == "hourly_flash_crash_lite"
    # The suites take the system under test and its policy from the launchpad's `stress` config.
    suite = defs.resolve_job_def("nightly_core_suite")
    assert "stress" in suite.resource_defs and "nightly_core_suite_run" in [n.name for n in suite.nodes]


def test_the_lite_crons_are_exactly_the_calendars_slots_of_a_regular_day() -> None:
    cron_times = set()
    for cron in LITE_CRON:
        minute, hours = cron.split()[:2]
        low, _, high = hours.partition("-")
        cron_times |= {f"{h:02d}:{int(minute):02d}" for h in range(int(low), int(high or low) + 1)}
    regular = lite_slots(datetime(2026, 3, 10).date())
    assert sorted(cron_times) == [s.astimezone(NY).strftime("%H:%M") for s in regular]


def test_hourly_lite_runs_across_both_dst_changes_with_the_offset_tag() -> None:
    for moment in (datetime(2026, 3, 6, 14, 30, tzinfo=UTC), datetime(2026, 3, 9, 13, 30, tzinfo=UTC),
                   datetime(2026, 10, 30, 13, 30, tzinfo=UTC), datetime(2026, 11, 2, 14, 30, tzinfo=UTC)):  # fmt: skip
        [request], _ = evaluate(hourly_flash_crash_lite_schedule, moment)
        assert moment.astimezone(NY).strftime("%H:%M") == "09:30"
        assert datetime.fromisoformat(request.tags[NOT_BEFORE_TAG]) == moment + timedelta(seconds=5)
        assert request.run_key == f"lite:{moment.isoformat()}"
    # The other side of each change: 09:30 UTC-equivalent an hour off is outside the session.
    requests, skipped = evaluate(hourly_flash_crash_lite_schedule, datetime(2026, 3, 9, 12, 30, tzinfo=UTC))
    assert requests == [] and "before the open" in skipped


def test_hourly_lite_skips_a_holiday_and_the_hours_after_an_early_close() -> None:
    requests, skipped = evaluate(hourly_flash_crash_lite_schedule, datetime(2026, 11, 26, 11, 0, tzinfo=NY))
    assert requests == [] and "Thanksgiving" in skipped
    [request], _ = evaluate(hourly_flash_crash_lite_schedule, datetime(2026, 11, 27, 12, 0, tzinfo=NY))
    assert request.tags["stress_pipeline/slot"] == datetime(2026, 11, 27, 17, 0, tzinfo=UTC).isoformat()
    requests, skipped = evaluate(hourly_flash_crash_lite_schedule, datetime(2026, 11, 27, 13, 0, tzinfo=NY))
    assert requests == [] and "after the early close at 13:00" in skipped


def test_nightly_skips_holidays_and_weekly_runs_on_saturday() -> None:
    [request], _ = evaluate(nightly_core_suite_schedule, datetime(2026, 11, 25, 17, 30, tzinfo=NY))
    assert request.run_key.startswith("nightly:")
    requests, skipped = evaluate(nightly_core_suite_schedule, datetime(2026, 11, 26, 17, 30, tzinfo=NY))
    assert requests == [] and "Thanksgiving" in skipped
    [weekly], _ = evaluate(weekly_full_sweep_schedule, datetime(2026, 11, 28, 6, 0, tzinfo=NY))
    assert weekly.run_key == "weekly:2026-11-28T06:00:00-05:00"


@dg.asset
def stamped() -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"at": datetime.now(UTC).isoformat()})


def offset_job() -> dg.JobDefinition:
    """A job on the lite job's executor (execute_in_process would bypass it: it runs a real executor)."""
    job = dg.define_asset_job("offset_job", selection=[stamped], executor_def=not_before_executor)
    return dg.Definitions(assets=[stamped], jobs=[job]).resolve_job_def("offset_job")


def test_the_lite_executor_waits_for_not_before_and_refuses_a_tag_far_ahead() -> None:
    with dg.instance_for_test() as instance:
        not_before = datetime.now(UTC) + timedelta(seconds=3)
        with dg.execute_job(dg.reconstructable(offset_job), instance,
                            tags={NOT_BEFORE_TAG: not_before.isoformat()}) as result:  # fmt: skip
            assert result.success
        [event] = instance.fetch_materializations(dg.AssetKey("stamped"), limit=1).records
        assert datetime.fromisoformat(event.asset_materialization.metadata["at"].value) >= not_before
        far = datetime.now(UTC) + timedelta(hours=1)
        with dg.execute_job(dg.reconstructable(offset_job), instance, tags={NOT_BEFORE_TAG: far.isoformat()},
                            raise_on_error=False) as failed:  # fmt: skip
            assert not failed.success
            messages = " ".join(str(e) for e in instance.all_logs(failed.run_id))
        assert "more than the 5 s offset of a slot" in messages
