"""Dagster runs left STARTED by a killed process are failed by the next run.

A run executed in process (the CLI's ``run``) carries a worker tag naming its host, pid and the
process's start time (from ``/proc``, so a reused pid is not mistaken for the worker). When that
process dies (kill -9, power loss), Dagster never hears of it and the run stays STARTED for ever.
:func:`fail_dead_runs`, called before each CLI run, reports every such run on this host whose worker
is gone as failed, with a message naming the dead worker. Runs launched by the daemon or the UI are
watched by Dagster's own run monitoring (``run_monitoring`` in dagster.yaml: start, cancel and
maximum run time limits).
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import dagster as dg

WORKER_TAG = "stress_pipeline/worker"


def worker_tag(pid: int | None = None) -> dict[str, str]:
    """The tag naming this process (or ``pid``) as a run's worker: ``host:pid:start time``."""
    pid = os.getpid() if pid is None else pid
    return {WORKER_TAG: f"{socket.gethostname()}:{pid}:{_start_time(pid)}"}


def fail_dead_runs(instance: dg.DagsterInstance) -> list[str]:
    """Report the STARTED runs whose worker (on this host) is gone as failed; returns their ids."""
    host = socket.gethostname()
    failed = []
    records = instance.get_run_records(dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED]))
    for record in records:
        run = record.dagster_run
        worker = run.tags.get(WORKER_TAG)
        if worker is None:
            continue
        worker_host, _, rest = worker.partition(":")
        pid_text, _, started = rest.partition(":")
        if worker_host != host or not pid_text.isdigit():
            continue
        if _start_time(int(pid_text)) == started and started:
            continue  # the worker is alive
        instance.report_run_failed(
            run,
            message=f"run worker {worker} is gone (killed or crashed) while the run was STARTED: "
            "marked failed by the next run",
        )
        failed.append(run.run_id)
    return failed


def _start_time(pid: int) -> str:
    """The process's start time in clock ticks since boot, or '' when there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[1].split()[19]
