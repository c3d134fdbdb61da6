"""The automation's alerts: a NO-GO certification, a failed suite run, a stale hourly lite run.

Each is a PagerDuty Events v2 trigger built by :func:`stress_pipeline.monitoring.alerts.trigger`, with
a deterministic dedup key per failure and subject, so a repeat folds into the open incident:

* ``certification_no_go/<day>``: one incident per certification day, however often it is re-run;
* ``suite_run_failed/<job>:<run id>``: one incident per failed run;
* ``lite_run_stale/<session day>``: one incident per trading day on which the lite run went stale.

They go out through the durable queue and the sender of the monitoring package, to the configured
endpoint (PagerDuty, or the embedded receiver by default).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta
from pathlib import Path

from stress_pipeline.monitoring.alerts import Alert, trigger
from stress_pipeline.monitoring.delivery import AlertSender, Delivery, Endpoint
from stress_pipeline.monitoring.queue import AlertQueue

SOURCE = "stress_pipeline"
CERTIFICATION_NO_GO = "certification_no_go"
SUITE_RUN_FAILED = "suite_run_failed"
LITE_RUN_STALE = "lite_run_stale"


def certification_no_go(day: str, reasons: Sequence[str], run_id: str, at: datetime) -> Alert:
    """The certification of ``day`` said NO-GO; ``reasons`` name the gates that stop it."""
    return trigger(
        CERTIFICATION_NO_GO, day, f"certification {day}: NO-GO, {len(reasons)} gate(s) stop it",
        severity="critical", source=SOURCE, timestamp=at, component="certification", group="automation",
        custom_details={"day": day, "reasons": list(reasons), "run_id": run_id},
    )  # fmt: skip


def suite_run_failed(job: str, run_id: str, message: str, at: datetime) -> Alert:
    """A run of suite job ``job`` failed; ``message`` is Dagster's failure message."""
    return trigger(
        SUITE_RUN_FAILED, f"{job}:{run_id}", f"{job} run {run_id[:8]} failed: {message}"[:1024],
        severity="error", source=SOURCE, timestamp=at, component=job, group="automation",
        custom_details={"job": job, "run_id": run_id, "message": message},
    )  # fmt: skip


def lite_run_stale(session_day: date, since: datetime, elapsed: timedelta, limit: timedelta, at: datetime) -> Alert:
    """No successful hourly lite run for ``elapsed`` of market time (more than ``limit``) since ``since``."""
    hours, limit_hours = elapsed.total_seconds() / 3600, limit.total_seconds() / 3600
    return trigger(
        LITE_RUN_STALE, session_day.isoformat(),
        f"hourly lite stress: none succeeded for {hours:.1f} h of market time (limit {limit_hours:g} h)",
        severity="error", source=SOURCE, timestamp=at, component="hourly_flash_crash_lite", group="automation",
        custom_details={"since": since.isoformat(), "market_seconds": round(elapsed.total_seconds(), 1),
                        "limit_seconds": limit.total_seconds(), "session": session_day.isoformat()},
    )  # fmt: skip


def send_alerts(endpoint: Endpoint, queue_dir: Path, alerts: Sequence[Alert]) -> list[Delivery | None]:
    """Queue ``alerts`` durably in ``queue_dir`` and deliver them (None: still queued for the next round)."""
    with AlertQueue(queue_dir) as queue:
        return AlertSender(endpoint, queue).send_all(list(alerts))
