"""The commands against a real dagster-webserver (and the daemon that starts its queued runs) on a small
project: a `run --scenario X --webserver` run is in GraphQL's runs with success, and `schedules on|off`
is the state GraphQL shows."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from stress_pipeline.cli import main

from .test_automation_ui import graphql
from .test_cli import ENV_NAMES, project  # noqa: F401  (the fixture)
from .test_webserver import ROOT, free_port

RUNS = "{ runsOrError { ... on Runs { results { runId status jobName tags { key value } } } } }"
RUN = "query($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }"
SCHEDULES = (
    "{ repositoriesOrError { ... on RepositoryConnection { nodes { schedules { name scheduleState { status } } } } } }"
)


def wait_for_run(port: int, run_id: str, timeout_s: float = 600) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        run = graphql(port, RUN, {"id": run_id})["data"]["runOrError"]
        if run["status"] in ("SUCCESS", "FAILURE", "CANCELED"):
            return run["status"]
        time.sleep(1)
    raise AssertionError(f"run {run_id} did not end within {timeout_s:g}s")


def schedule_states(port: int) -> dict[str, str]:
    nodes = graphql(port, SCHEDULES)["data"]["repositoriesOrError"]["nodes"]
    return {s["name"]: s["scheduleState"]["status"] for node in nodes for s in node["schedules"]}


@pytest.fixture
def webserver(project: Path, tmp_path: Path):  # noqa: F811
    """dagster-webserver and dagster-daemon on the project's instance (what `stress-pipeline ui` starts)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ENV_NAMES} | {"DAGSTER_HOME": str(project)}
    bin_dir = Path(sys.executable).parent
    # The instance's storage is created once, first: a webserver and a daemon creating it at the same moment
    # can both stamp its schema (alembic: "more than one head"); `dagster dev` opens it first too.
    subprocess.run([sys.executable, "-c", "import dagster as dg; dg.DagsterInstance.get().dispose()"], cwd=project,
                   env=env, check=True, timeout=120)  # fmt: skip
    log = (tmp_path / "servers.log").open("w")
    procs = [
        subprocess.Popen([str(bin_dir / "dagster-webserver"), "-w", str(ROOT / "workspace.yaml"), "-h", "127.0.0.1",
                          "-p", str(port)], cwd=project, env=env, stdout=log, stderr=subprocess.STDOUT),
        subprocess.Popen([str(bin_dir / "dagster-daemon"), "run", "-w", str(ROOT / "workspace.yaml")],
                         cwd=project, env=env, stdout=log, stderr=subprocess.STDOUT),
    ]  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while True:
            assert all(p.poll() is None for p in procs), (tmp_path / "servers.log").read_text()[-3000:]
            try:
                if schedule_states(port):
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, (tmp_path / "servers.log").read_text()[-3000:]
            time.sleep(0.5)
        yield port
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        log.close()


@pytest.mark.webserver
def test_a_run_launched_through_the_webserver_and_schedules_switched_there(
    webserver: int, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"http://127.0.0.1:{webserver}"
    # an unknown scenario: refused before anything is launched
    assert main(["run", "--scenario", "no_such_thing", "--webserver", url]) == 2
    assert "no scenario 'no_such_thing'" in capsys.readouterr().err
    # (the daemon's market sensor may launch its own ingest runs meanwhile)
    assert not [r for r in graphql(webserver, RUNS)["data"]["runsOrError"]["results"]
                if r["jobName"] == "nightly_core_suite"]  # fmt: skip

    assert main(["run", "--scenario", "small_spreads", "--webserver", url, "--json"]) == 0
    launched = json.loads(capsys.readouterr().out)
    assert launched["status"] == "SUCCESS" and launched["ok"] is True, launched
    assert launched["job"] == "nightly_core_suite" and launched["scenarios"] == ["small_spreads"]
    assert launched["url"] == f"{url}/runs/{launched['run_id']}"
    runs = {r["runId"]: r for r in graphql(webserver, RUNS)["data"]["runsOrError"]["results"]}
    run = runs[launched["run_id"]]
    assert (run["status"], run["jobName"]) == ("SUCCESS", "nightly_core_suite")
    assert {"key": "stress_pipeline/launched_by", "value": "cli-webserver"} in run["tags"]
    # its group runs are in the UI too, each a success, and their checks are the ones printed
    group_ids = [g["runId"] for g in launched["group_runs"]]
    assert group_ids and all(runs[g]["status"] == "SUCCESS" for g in group_ids)
    checks = {(c["asset"], c["check"], c["partition"]): c["success"] for c in launched["checks"]}
    assert checks[("scenario_verdict", "scenario_verdict_passed", "small_spreads")] is True
    assert checks[("portfolio_reconciliation", "reconciliation_clean", "small_spreads")] is True
    # just this scenario (the suite job takes the market bars of every symbol: its config names no symbols)
    assert not [key for key in checks if key[2] not in (None, "small_spreads", "BTCUSDT", "ETHUSDT")]

    # status: the suite job's last run is this one
    assert main(["status", "--json"]) == 0
    last = json.loads(capsys.readouterr().out)["last_runs"]["nightly_core_suite"]
    assert (last["run_id"], last["status"]) == (launched["run_id"], "SUCCESS") and last["ended"] >= last["started"]

    # what it stored is what `results` reads
    assert main(["results", "small_spreads", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["verdict"]["outcome"] == "pass"

    # a batch with --no-wait: its id and URL at once; the run then ends in success on its own
    assert main(["batch", "small_crash", "--webserver", url, "--no-wait"]) == 0
    run_id, run_url = capsys.readouterr().out.split()
    assert run_url == f"{url}/runs/{run_id}"
    assert wait_for_run(webserver, run_id) == "SUCCESS"

    # schedules: on through the instance, the webserver shows it; off through the webserver
    assert schedule_states(webserver)["nightly_core_suite_schedule"] == "STOPPED"
    assert main(["schedules", "on", "nightly_core_suite_schedule"]) == 0
    assert capsys.readouterr().out.split() == ["nightly_core_suite_schedule", "RUNNING"]
    assert schedule_states(webserver)["nightly_core_suite_schedule"] == "RUNNING"
    assert main(["schedules", "on", "weekly_full_sweep_schedule", "--webserver", url, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"weekly_full_sweep_schedule": "RUNNING"}
    assert schedule_states(webserver)["weekly_full_sweep_schedule"] == "RUNNING"
    assert main(["schedules", "on", "weekly_full_sweep_schedule", "--webserver", url]) == 0  # already on: kept
    assert capsys.readouterr().out.split() == ["weekly_full_sweep_schedule", "RUNNING"]
    assert main(["schedules", "off", "--webserver", url, "--json"]) == 0
    assert set(json.loads(capsys.readouterr().out).values()) == {"STOPPED"}
    assert set(schedule_states(webserver).values()) == {"STOPPED"}
    assert main(["schedules", "on", "bogus", "--webserver", url]) == 2
    assert "no schedule 'bogus'" in capsys.readouterr().err

    # no webserver there: a clear error
    assert main(["run", "--scenario", "small_spreads", "--webserver", f"http://127.0.0.1:{free_port()}"]) == 1
    assert "no dagster-webserver answers at http://127.0.0.1:" in capsys.readouterr().err
