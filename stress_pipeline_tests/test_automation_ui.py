"""The UI's Automation page: a real dagster-webserver lists the three schedules (New York time,
STOPPED) and the sensors, and its launchpad accepts the system under test and policy as the suite
jobs' config (and names a wrongly typed field)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from stress_pipeline_tests.test_webserver import free_port

ROOT = Path(__file__).resolve().parents[1]

AUTOMATION = """
{
  repositoriesOrError {
    ... on RepositoryConnection {
      nodes {
        location { name }
        schedules { name executionTimezone cronSchedule pipelineName scheduleState { status } }
        sensors { name sensorState { status } targets { pipelineName } }
      }
    }
  }
}
"""

VALID = """
query($selector: PipelineSelector!, $config: RunConfigData) {
  isPipelineConfigValid(pipeline: $selector, mode: "default", runConfigData: $config) {
    __typename
    ... on RunConfigValidationInvalid { errors { message } }
  }
}
"""


def graphql(port: int, query: str, variables: dict | None = None) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql", data=json.dumps({"query": query, "variables": variables or {}}).encode(),
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


@pytest.mark.webserver
def test_the_automation_page_lists_the_schedules_and_sensors_and_the_launchpad_takes_the_system(tmp_path) -> None:
    port = free_port()
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path), "STRESS_HOME": str(tmp_path / "stress")}
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    log = (tmp_path / "webserver.log").open("w")
    proc = subprocess.Popen(
        [str(Path(sys.executable).with_name("dagster-webserver")), "-w", str(ROOT / "workspace.yaml"),
         "-h", "127.0.0.1", "-p", str(port)],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        repository = wait_for_repository(proc, port, tmp_path / "webserver.log")
        schedules = {s["name"]: s for s in repository["schedules"]}
        assert {name: (s["pipelineName"], s["executionTimezone"], s["scheduleState"]["status"])
                for name, s in schedules.items()} == {
            "hourly_flash_crash_lite_schedule": ("hourly_flash_crash_lite", "America/New_York", "STOPPED"),
            "nightly_core_suite_schedule": ("nightly_core_suite", "America/New_York", "STOPPED"),
            "weekly_full_sweep_schedule": ("weekly_full_sweep", "America/New_York", "STOPPED"),
        }  # fmt: skip
        sensors = {s["name"]: s["sensorState"]["status"] for s in repository["sensors"]}
        assert sensors == {"market_files_sensor": "RUNNING", "certification_no_go_sensor": "STOPPED",
                           "suite_run_failure_sensor": "STOPPED", "lite_run_stale_sensor": "STOPPED"}  # fmt: skip

        selector = {"repositoryLocationName": "stress_pipeline", "repositoryName": "__repository__",
                    "pipelineName": "nightly_core_suite"}  # fmt: skip
        system = {
            "resources": {"stress": {"config": {"strategy": "mean_reversion", "policy": "conservative",
                                                "strategy_params": {"window": 120.0}}}},
            "ops": {"nightly_core_suite_run": {"config": {"scenarios": ["baseline", "btc_flash_crash_2021"]}}},
        }  # fmt: skip
        answer = graphql(port, VALID, {"selector": selector, "config": system})["data"]["isPipelineConfigValid"]
        assert answer["__typename"] == "PipelineConfigValidationValid", answer
        system["resources"]["stress"]["config"]["strategy"] = 3
        answer = graphql(port, VALID, {"selector": selector, "config": system})["data"]["isPipelineConfigValid"]
        assert answer["__typename"] == "RunConfigValidationInvalid"
        assert any("strategy" in error["message"] for error in answer["errors"]), answer
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()


def wait_for_repository(proc: subprocess.Popen, port: int, log: Path) -> dict:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()
        try:
            nodes = graphql(port, AUTOMATION)["data"]["repositoriesOrError"].get("nodes") or []
        except OSError:
            time.sleep(0.5)
            continue
        if nodes:
            return nodes[0]
        time.sleep(0.5)
    raise AssertionError(f"the webserver never listed the repository: {log.read_text()[-3000:]}")
