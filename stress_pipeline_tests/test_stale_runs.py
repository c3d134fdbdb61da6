"""Dagster runs left STARTED by a killed process are failed by the next run; live ones are left alone."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg

from stress_pipeline.defs.stale_runs import WORKER_TAG, fail_dead_runs, worker_tag

WORKER = """
import os, signal, sys, time
from pathlib import Path
import dagster as dg
from stress_pipeline.defs.stale_runs import worker_tag

@dg.op
def step() -> None:
    if sys.argv[2] == "die":
        os.kill(os.getpid(), signal.SIGKILL)
    deadline = time.monotonic() + 60
    while not Path(sys.argv[3]).exists() and time.monotonic() < deadline:
        time.sleep(0.05)

@dg.job
def work() -> None:
    step()

work.execute_in_process(instance=dg.DagsterInstance.local_temp(sys.argv[1]), tags=worker_tag())
"""


def _started(instance: dg.DagsterInstance, count: int) -> list[dg.DagsterRun]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        runs = instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED]))
        if len(runs) >= count:
            return runs
        time.sleep(0.1)
    raise AssertionError(f"fewer than {count} STARTED run(s) after 60 s")


def test_a_run_whose_worker_was_killed_is_failed_by_the_next(tmp_path: Path) -> None:
    home, release = tmp_path / "dagster", tmp_path / "release"
    home.mkdir()
    killed = subprocess.run([sys.executable, "-c", WORKER, str(home), "die", str(release)],
                            capture_output=True, text=True)  # fmt: skip
    assert killed.returncode == -9, killed.stderr
    instance = dg.DagsterInstance.local_temp(str(home))
    (dead,) = _started(instance, 1)  # what Dagster alone would keep for ever
    live = subprocess.Popen([sys.executable, "-c", WORKER, str(home), "wait", str(release)])
    try:
        runs = _started(instance, 2)
        (alive,) = [run for run in runs if run.run_id != dead.run_id]
        assert fail_dead_runs(instance) == [dead.run_id]
        assert instance.get_run_by_id(dead.run_id).status == dg.DagsterRunStatus.FAILURE
        messages = [event.message or "" for event in instance.all_logs(dead.run_id)]
        assert any(f"run worker {dead.tags[WORKER_TAG]} is gone" in message for message in messages)
        assert instance.get_run_by_id(alive.run_id).status == dg.DagsterRunStatus.STARTED  # its worker lives
        assert fail_dead_runs(instance) == []  # once
    finally:
        release.touch()
        assert live.wait(60) == 0
    assert instance.get_run_by_id(alive.run_id).status == dg.DagsterRunStatus.SUCCESS


def test_the_worker_tag_names_host_pid_and_start_time() -> None:
    host, pid, started = worker_tag()[WORKER_TAG].split(":")
    assert int(pid) == os.getpid() and started.isdigit() and host
    assert worker_tag(2**22 + 12345)[WORKER_TAG].endswith(":")  # no such process: no start time


def test_the_instance_watches_its_runs(tmp_path: Path) -> None:
    config = (Path(__file__).resolve().parents[1] / "dagster.yaml").read_text()
    (tmp_path / "dagster.yaml").write_text(config)
    instance = dg.DagsterInstance.from_config(str(tmp_path))
    assert instance.run_monitoring_enabled
    settings = instance.run_monitoring_settings
    assert settings["start_timeout_seconds"] == 180 and settings["max_runtime_seconds"] == 14400
