"""Schedules and sensors on the project's Dagster instance: their state as the UI's Automation page
shows it, switched on and off, and the last run of each suite job.

A schedule's state lives in the instance's schedule storage, keyed by the code location it was
started from: a schedule is started through Dagster's own command line (``dagster schedule start``)
on the workspace the UI loads (the project's workspace.yaml, location ``stress_pipeline``), and a
running one is stopped through the instance from its stored state. A schedule never switched keeps
its default status from the code (STOPPED for the three schedules).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg

#: The code location name of workspace.yaml, which the UI, the daemon and this module share.
LOCATION = "stress_pipeline"
WORKSPACE = (
    "load_from:\n  - python_module:\n      module_name: stress_pipeline.definitions\n"
    f"      location_name: {LOCATION}\n"
)


class ScheduleNameError(ValueError):
    """A schedule name the project does not define."""


def automation_states(instance: dg.DagsterInstance, defs: dg.Definitions) -> list[dict[str, Any]]:
    """Every schedule and sensor: name, kind, target job, state (RUNNING | STOPPED) and whether it is
    the code's default (never switched on this instance)."""
    stored = _stored(instance)
    rows = []
    for schedule in defs.schedules or []:
        rows.append(_row("schedule", schedule.name, schedule.job_name, schedule.default_status.value, stored))
    for sensor in defs.sensors or []:
        rows.append(_row("sensor", sensor.name, None, sensor.default_status.value, stored))
    return rows


def schedule_names(defs: dg.Definitions, wanted: list[str]) -> list[str]:
    """The schedules ``wanted`` names (every one when empty), or a ScheduleNameError naming the unknown one."""
    known = [schedule.name for schedule in defs.schedules or []]
    for name in wanted:
        if name not in known:
            raise ScheduleNameError(f"no schedule {name!r} (schedules: {', '.join(known)})")
    return list(dict.fromkeys(wanted)) or known


def switch_schedules(
    instance: dg.DagsterInstance, defs: dg.Definitions, names: list[str], *, on: bool, cwd: Path
) -> dict[str, str]:
    """Start (``on``) or stop the schedules ``names`` on ``instance``; ``{name: state afterwards}``."""
    wanted = "RUNNING" if on else "STOPPED"
    current = {row["name"]: row for row in automation_states(instance, defs) if row["kind"] == "schedule"}
    stored = _stored(instance)
    for name in names:
        if current[name]["status"] == wanted:
            continue
        if not on and ("schedule", name) in stored:
            state = stored[("schedule", name)][1]
            instance.stop_schedule(state.instigator_origin_id, state.selector_id)
        else:
            _dagster_schedule("start" if on else "stop", name, cwd)
    after = {row["name"]: row["status"] for row in automation_states(instance, defs) if row["kind"] == "schedule"}
    return {name: after[name] for name in names}


def last_runs(instance: dg.DagsterInstance, jobs: list[str]) -> dict[str, dict[str, Any] | None]:
    """The newest run of each job: its id, status, and creation, start and end times (ISO 8601, UTC)."""
    out: dict[str, dict[str, Any] | None] = {}
    for job in jobs:
        records = instance.get_run_records(filters=dg.RunsFilter(job_name=job), limit=1)
        if not records:
            out[job] = None
            continue
        record = records[0]
        out[job] = {"run_id": record.dagster_run.run_id, "status": record.dagster_run.status.value,
                    "created": _iso(record.create_timestamp), "started": _iso(record.start_time),
                    "ended": _iso(record.end_time)}  # fmt: skip
    return out


def _stored(instance: dg.DagsterInstance) -> dict[tuple[str, str], tuple[str, Any]]:
    """``{(kind, name): (status, state)}`` of the states stored for this project's code location."""
    out = {}
    for state in instance.all_instigator_state():
        location = state.origin.repository_origin.code_location_origin.location_name
        if location != LOCATION or state.status.value == "DECLARED_IN_CODE":
            continue
        out[(state.instigator_type.value.lower(), state.instigator_name)] = (state.status.value, state)
    return out


def _row(kind: str, name: str, job: str | None, default: str, stored: dict) -> dict[str, Any]:
    status, _ = stored.get((kind, name), (default, None))
    return {"kind": kind, "name": name, "job": job, "status": status, "default": (kind, name) not in stored}


def _dagster_schedule(action: str, name: str, cwd: Path) -> None:
    """``dagster schedule start|stop NAME`` on the project's workspace (the UI's code location)."""
    dagster = Path(sys.executable).parent / "dagster"
    with tempfile.TemporaryDirectory() as tmp:
        workspace = cwd / "workspace.yaml"
        if not workspace.is_file():
            workspace = Path(tmp) / "workspace.yaml"
            workspace.write_text(WORKSPACE)
        done = subprocess.run([str(dagster), "schedule", action, name, "-w", str(workspace)], cwd=cwd,
                              capture_output=True, text=True, timeout=300)  # fmt: skip
    if done.returncode != 0:
        said = (done.stderr.strip() or done.stdout.strip()).splitlines()[-3:]
        raise RuntimeError(f"dagster schedule {action} {name} failed: {' / '.join(said)}")


def _iso(timestamp: float | datetime | None) -> str | None:
    if timestamp is None:
        return None
    if isinstance(timestamp, datetime):
        return timestamp.astimezone(UTC).isoformat()
    return datetime.fromtimestamp(timestamp, UTC).isoformat()
