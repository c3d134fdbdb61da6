"""``stress-pipeline status``: the services, the schedules and sensors with their state, the last run
of each suite job, the kill switch of the live run and the latest certification, in one report.

Starts nothing: a service that is not running is shown so, and what needs it (the kill switch needs
Redis, the certification PostgreSQL) says it is unknown and why.
"""

from __future__ import annotations

import os
from dataclasses import asdict
from typing import Any


def project_status() -> dict[str, Any]:
    """The report as plain values (the JSON output)."""
    from stress_pipeline.cli import _project

    settings, home = _project()
    os.environ["DAGSTER_HOME"] = str(home)
    import dagster as dg

    from stress_pipeline.defs import build_definitions
    from stress_pipeline.defs.automation.jobs import HOURLY_FLASH_CRASH_LITE, NIGHTLY_CORE_SUITE, WEEKLY_FULL_SWEEP
    from stress_pipeline.defs.commands.automation_state import automation_states, last_runs
    from stress_pipeline.services import service_status

    instance = dg.DagsterInstance.get()
    automation = automation_states(instance, build_definitions())
    return {
        "dagster_home": str(home),
        "stress_home": str(settings.home),
        "services": service_status(settings),
        "schedules": [row for row in automation if row["kind"] == "schedule"],
        "sensors": [row for row in automation if row["kind"] == "sensor"],
        "last_runs": last_runs(instance, [NIGHTLY_CORE_SUITE, WEEKLY_FULL_SWEEP, HOURLY_FLASH_CRASH_LITE]),
        "kill_switch": _kill_switch(settings),
        "certification": _certification(settings),
    }


def _kill_switch(settings) -> dict[str, Any]:
    from stress_pipeline.lite.defaults import DEFAULT_NAMESPACE, DEFAULT_RUN_ID
    from stress_pipeline.lite.killswitch import read_state
    from stress_pipeline.services import ServiceUnavailableError, redis_client, resolve_service_urls
    from stress_pipeline.state.hot_state import HotStateKeys, HotStateNotInitialisedError

    keys = HotStateKeys.of(DEFAULT_RUN_ID, DEFAULT_NAMESPACE)
    try:
        client = redis_client(resolve_service_urls(settings, start=False).redis_url)
        state = read_state(client, keys)
    except ServiceUnavailableError as err:
        return {"run": keys.prefix, "state": "unknown", "why": str(err)}
    except HotStateNotInitialisedError as err:
        return {"run": keys.prefix, "state": "no live run", "why": str(err)}
    return {"run": keys.prefix, "state": "ON" if state.on else "off", **asdict(state)}


def _certification(settings) -> dict[str, Any] | None:
    import sqlalchemy as sa

    from stress_pipeline.certification import history
    from stress_pipeline.services import ServiceUnavailableError, postgres_engine, resolve_service_urls
    from stress_pipeline.state.ledger_schema import postgres_errors

    try:
        engine = postgres_engine(resolve_service_urls(settings, start=False).postgres_url)
    except ServiceUnavailableError as err:
        return {"state": "unknown", "why": str(err)}
    try:
        with postgres_errors(engine):
            if not sa.inspect(engine).has_table("certifications", schema=history.DEFAULT_SCHEMA):
                return None
        recorded = history.latest(engine)
    except ServiceUnavailableError as err:
        return {"state": "unknown", "why": str(err)}
    finally:
        engine.dispose()
    return None if recorded is None else {"state": "recorded", **asdict(recorded)}


def status_text(report: dict[str, Any]) -> str:
    """The report as a person reads it."""
    from stress_pipeline.services import format_status_table

    lines = [f"DAGSTER_HOME={report['dagster_home']}  STRESS_HOME={report['stress_home']}", "",
             format_status_table(report["services"]), "", "schedules and sensors:"]  # fmt: skip
    for row in report["schedules"] + report["sensors"]:
        default = " (default)" if row["default"] else ""
        lines.append(f"  {row['kind']:8} {row['name']:36} {row['status']}{default}")
    lines += ["", "last suite runs:"]
    for job, run in report["last_runs"].items():
        shown = "never run" if run is None else f"{run['status']} {run['ended'] or run['started'] or run['created']} " \
                                               f"(run {run['run_id']})"  # fmt: skip
        lines.append(f"  {job:28} {shown}")
    switch = report["kill_switch"]
    lines += ["", f"kill switch of {switch['run']}: {switch['state']}"]
    if switch["state"] == "ON":
        lines.append(f"  set {switch['at'] or '(time unknown)'} by {switch['by'] or '(unknown)'}: {switch['reason']}")
    elif switch["state"] in ("unknown", "no live run"):
        lines.append(f"  {switch['why']}")
    cert = report["certification"]
    if cert is None:
        lines.append("certification: none recorded yet (stress-pipeline certify)")
    elif cert["state"] == "unknown":
        lines.append(f"certification: unknown: {cert['why']}")
    else:
        lines.append(f"certification: #{cert['certification_id']} {cert['partition']} {cert['verdict']} "
                     f"(recorded {cert['recorded_at']}), streak {cert['streak']}, "
                     f"{'certified' if cert['certified'] else 'not certified'}")  # fmt: skip
    return "\n".join(lines)
