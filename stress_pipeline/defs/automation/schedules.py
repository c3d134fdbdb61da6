"""The schedules, each in America/New_York, each STOPPED until a person switches it on.

A fresh clone pages nobody: the schedules and the alerting sensors start STOPPED, and a person turns
them on in the UI (Automation) or with `dagster schedule start`. Cron picks the candidate times; the
exchange calendar (``automation/market_hours.py``) decides whether a tick runs, and a skipped tick
says why (holiday, weekend, after an early close).
"""


import dagster as dg

from stress_pipeline.automation.market_hours import MARKET_TIMEZONE, lite_not_before, lite_slot, nightly_due
from stress_pipeline.defs.automation.jobs import (
    NOT_BEFORE_TAG,
    hourly_flash_crash_lite,
    nightly_core_suite,
    weekly_full_sweep,
)

TIMEZONE = MARKET_TIMEZONE.key
#: The open, then every whole hour of a regular session; the calendar drops those after an early close.
LITE_CRON = ("30 9 * * 1-5", "0 10-15 * * 1-5")
#: 17:30, after the 16:00 close (and well after a 13:00 early close), Monday to Friday.
NIGHTLY_CRON = "30 17 * * 1-5"
#: Saturday 06:00: the weekend, when the full sweep's hours disturb nobody.
WEEKLY_CRON = "0 6 * * 6"
SLOT_TAG = "stress_pipeline/slot"


@dg.schedule(
    name="hourly_flash_crash_lite_schedule",
    job=hourly_flash_crash_lite,
    cron_schedule=list(LITE_CRON),
    execution_timezone=TIMEZONE,
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Every NYSE market hour (09:30, 10:00 ... 15:00 New York; no holiday; not after an early "
    "close): the lite stress, 5 s after the slot.",
)  # fmt: skip
def hourly_flash_crash_lite_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
    slot = lite_slot(context.scheduled_execution_time)
    if not slot.due:
        return dg.SkipReason(slot.reason)
    at = slot.moment.isoformat()
    not_before = lite_not_before(slot.moment).isoformat()
    return dg.RunRequest(run_key=f"lite:{at}", tags={SLOT_TAG: at, NOT_BEFORE_TAG: not_before})


@dg.schedule(
    name="nightly_core_suite_schedule",
    job=nightly_core_suite,
    cron_schedule=NIGHTLY_CRON,
    execution_timezone=TIMEZONE,
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="17:30 New York on each NYSE trading day, after the close: the core suite.",
)
def nightly_core_suite_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
    due = nightly_due(context.scheduled_execution_time)
    if not due.due:
        return dg.SkipReason(due.reason)
    at = due.moment.isoformat()
    return dg.RunRequest(run_key=f"nightly:{at}", tags={SLOT_TAG: at})


@dg.schedule(
    name="weekly_full_sweep_schedule",
    job=weekly_full_sweep,
    cron_schedule=WEEKLY_CRON,
    execution_timezone=TIMEZONE,
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Saturday 06:00 New York: every scenario and drill, the certification and its report.",
)
def weekly_full_sweep_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    at = context.scheduled_execution_time.isoformat()
    return dg.RunRequest(run_key=f"weekly:{at}", tags={SLOT_TAG: at})
