"""Once for real: a dagster-daemon process ticks a schedule of the code location and the suite run it
launches succeeds (temporary DAGSTER_HOME with the project's dagster.yaml, the daemon killed after)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import dagster as dg

from stress_pipeline.services import stop_embedded
from stress_pipeline.settings import make_settings

ROOT = Path(__file__).resolve().parents[1]
DAEMON = Path(sys.executable).with_name("dagster-daemon")

# The project's definitions plus a test-only schedule due every minute: the nightly suite job, narrowed
# by its op config to the scenario catalog so the run takes seconds.
TEST_DEFS = textwrap.dedent("""
    import dagster as dg

    from stress_pipeline.defs import build_definitions

    tick = dg.ScheduleDefinition(
        name="automation_test_tick", job_name="nightly_core_suite", cron_schedule="* * * * *",
        execution_timezone="America/New_York", default_status=dg.DefaultScheduleStatus.RUNNING,
        run_config={"ops": {"nightly_core_suite_run": {"config": {"select": "key:scenario_catalog"}}}},
    )
    defs = dg.Definitions.merge(build_definitions(), dg.Definitions(schedules=[tick]))
""")


def test_the_daemon_ticks_a_schedule_and_the_suite_run_succeeds(tmp_path: Path, monkeypatch) -> None:
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
    (tmp_path / "test_defs.py").write_text(TEST_DEFS)
    (tmp_path / "workspace.yaml").write_text(
        f"load_from:\n  - python_file:\n      relative_path: test_defs.py\n      working_directory: {tmp_path}\n"
    )
    stress_home = tmp_path / "stress"
    env = {**os.environ, "DAGSTER_HOME": str(home), "STRESS_HOME": str(stress_home),
           "STRESS_DATA_DIR": str(ROOT / "data")}  # fmt: skip
    log = (tmp_path / "daemon.log").open("w")
    daemon = subprocess.Popen([str(DAEMON), "run", "-w", str(tmp_path / "workspace.yaml")], cwd=tmp_path, env=env,
                              stdout=log, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    try:
        run = wait_for_finished_run(daemon, tmp_path / "daemon.log", timeout_s=300)
        assert run.is_success, (tmp_path / "daemon.log").read_text()[-3000:]
        assert run.tags["dagster/schedule_name"] == "automation_test_tick"
        with dg.DagsterInstance.get() as instance:
            [event] = instance.fetch_materializations(dg.AssetKey("scenario_catalog"), limit=1).records
            child = instance.get_run_by_id(event.run_id)
            assert child.is_success and child.run_id != run.run_id
        assert (stress_home / "storage" / "scenario_catalog.parquet").is_file()
    finally:
        stop(daemon)
        log.close()
        stop_embedded(make_settings(home=stress_home))


def wait_for_finished_run(daemon: subprocess.Popen, log: Path, timeout_s: float) -> dg.DagsterRun:
    deadline = time.monotonic() + timeout_s
    with dg.DagsterInstance.get() as instance:
        while time.monotonic() < deadline:
            assert daemon.poll() is None, f"dagster-daemon exited: {log.read_text()[-3000:]}"
            runs = instance.get_runs(dg.RunsFilter(job_name="nightly_core_suite"))
            finished = [r for r in runs if r.is_finished]
            if finished:
                return finished[0]
            time.sleep(2)
    raise AssertionError(f"no finished nightly_core_suite run within {timeout_s} s: {log.read_text()[-3000:]}")


def stop(process: subprocess.Popen) -> None:
    """End the daemon and what it started (its code server, run workers): its whole session."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # anything of the session still left
