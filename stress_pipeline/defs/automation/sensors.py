"""The alerting sensors: a NO-GO certification, a failed suite run, a stale hourly lite run.

Each alert goes through the project's alert path (the durable queue and the sender of
``monitoring/``, to the `alerting` resource's endpoint: PagerDuty, or the embedded receiver) with a
deterministic dedup key (``automation/alerts.py``). All three start STOPPED, like the schedules.
"""


import json
from datetime import UTC, datetime

import dagster as dg

from stress_pipeline.automation import alerts
from stress_pipeline.automation.market_hours import LITE_MAX_AGE, lite_staleness
from stress_pipeline.defs.automation.jobs import (
    HOURLY_FLASH_CRASH_LITE,
    hourly_flash_crash_lite,
    nightly_core_suite,
    weekly_full_sweep,
)
from stress_pipeline.defs.certification.checks import CERTIFICATION_GO
from stress_pipeline.defs.monitoring.resources import AlertingResource
from stress_pipeline.defs.resources import StressResource
from stress_pipeline.services.urls import mask_url

CERTIFICATION_KEY = dg.AssetKey("certification")
STOPPED = dg.DefaultSensorStatus.STOPPED


@dg.run_status_sensor(
    name="certification_no_go_sensor",
    run_status=dg.DagsterRunStatus.SUCCESS,
    monitor_all_code_locations=True,
    default_status=STOPPED,
    description="Pages when a run's certification_go check says NO-GO (one incident per certification day).",
)
def certification_no_go_sensor(
    context: dg.RunStatusSensorContext, stress: StressResource, alerting: AlertingResource
) -> dg.SkipReason | None:
    """Any finished run, the CLI's and the suites' group runs included, that evaluated the certification."""
    run_id = context.dagster_run.run_id
    no_go = []
    for entry in context.instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION):
        evaluation = entry.dagster_event.asset_check_evaluation_data
        if evaluation.asset_key != CERTIFICATION_KEY or evaluation.check_name != CERTIFICATION_GO:
            continue
        if not evaluation.passed:
            reasons = evaluation.metadata.get("reasons")
            lines = [line.removeprefix("- ") for line in str(reasons.value if reasons else "").splitlines() if line]
            at = datetime.fromtimestamp(entry.timestamp, UTC)
            no_go.append(alerts.certification_no_go(evaluation.partition or "unpartitioned", lines, run_id, at))
    if not no_go:
        return dg.SkipReason(f"run {run_id[:8]} evaluated no NO-GO certification")
    _send(context, stress, alerting, "certification", no_go)
    return None


@dg.run_failure_sensor(
    name="suite_run_failure_sensor",
    monitored_jobs=[nightly_core_suite, weekly_full_sweep, hourly_flash_crash_lite],
    default_status=STOPPED,
    description="Pages when a run of nightly_core_suite, weekly_full_sweep or hourly_flash_crash_lite fails.",
)
def suite_run_failure_sensor(
    context: dg.RunFailureSensorContext, stress: StressResource, alerting: AlertingResource
) -> None:
    run = context.dagster_run
    message = context.failure_event.message or "the run failed"
    alert = alerts.suite_run_failed(run.job_name, run.run_id, message, datetime.now(UTC))
    _send(context, stress, alerting, "suite-failures", [alert])


@dg.sensor(
    name="lite_run_stale_sensor",
    minimum_interval_seconds=300,
    default_status=STOPPED,
    description="Pages when no hourly_flash_crash_lite run succeeded for more than 2 h of market time.",
)
def lite_run_stale_sensor(
    context: dg.SensorEvaluationContext, stress: StressResource, alerting: AlertingResource
) -> dg.SensorResult:
    return judge_lite_staleness(context, stress, alerting, datetime.now(UTC))


def judge_lite_staleness(
    context: dg.SensorEvaluationContext, stress: StressResource, alerting: AlertingResource, now: datetime
) -> dg.SensorResult:
    """The stale-lite sensor's evaluation at ``now``.

    The cursor holds when the sensor began watching, so switching it on does not page for the hours
    it was off; the reference is the end of the last successful lite run, or that time if later.
    """
    cursor = json.loads(context.cursor) if context.cursor else {}
    since = datetime.fromisoformat(cursor["watching_since"]) if "watching_since" in cursor else now
    records = context.instance.get_run_records(
        dg.RunsFilter(job_name=HOURLY_FLASH_CRASH_LITE, statuses=[dg.DagsterRunStatus.SUCCESS]), limit=1
    )
    last = datetime.fromtimestamp(records[0].end_time, UTC) if records and records[0].end_time else None
    judged = lite_staleness(now, last, since, LITE_MAX_AGE)
    new_cursor = json.dumps({"watching_since": since.isoformat()})
    if not judged.stale:
        return dg.SensorResult(skip_reason=judged.reason, cursor=new_cursor)
    alert = alerts.lite_run_stale(judged.session.day, judged.reference, judged.elapsed, LITE_MAX_AGE, now)
    _send(context, stress, alerting, "lite-stale", [alert])
    return dg.SensorResult(skip_reason=f"alerted: {judged.reason}", cursor=new_cursor)


def _send(context, stress: StressResource, alerting: AlertingResource, sender: str, to_send: list) -> None:
    settings = stress.settings()
    endpoint = alerting.endpoint(settings, stress.ledger_url)
    deliveries = alerts.send_alerts(endpoint, settings.paths.alerts / f"automation-{sender}", to_send)
    for alert, delivery in zip(to_send, deliveries, strict=True):
        state = "queued for the next round" if delivery is None else delivery.outcome
        context.log.info(f"alert {alert.dedup_key} to {mask_url(endpoint.url)}: {state}")
