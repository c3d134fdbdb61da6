"""Dagster wiring of the automation: the suite jobs, the hourly lite job, their schedules and the
alerting sensors."""

import dagster as dg

from stress_pipeline.defs.automation.jobs import hourly_flash_crash_lite, nightly_core_suite, weekly_full_sweep
from stress_pipeline.defs.automation.schedules import (
    hourly_flash_crash_lite_schedule,
    nightly_core_suite_schedule,
    weekly_full_sweep_schedule,
)
from stress_pipeline.defs.automation.sensors import (
    certification_no_go_sensor,
    lite_run_stale_sensor,
    suite_run_failure_sensor,
)

defs = dg.Definitions(
    jobs=[nightly_core_suite, weekly_full_sweep, hourly_flash_crash_lite],
    schedules=[hourly_flash_crash_lite_schedule, nightly_core_suite_schedule, weekly_full_sweep_schedule],
    sensors=[certification_no_go_sensor, suite_run_failure_sensor, lite_run_stale_sensor],
)
