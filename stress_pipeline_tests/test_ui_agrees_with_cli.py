"""What the CLI says about a sweep is what the Dagster UI shows: every check of every partition, through
GraphQL, has the verdict of the CLI's summary."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from stress_pipeline.services import stop_embedded
from stress_pipeline.settings import get_settings

from .test_cli import ENV_NAMES, make_project
from .test_webserver import ROOT, free_port, graphql

CHECKS_QUERY = """
{
  assetNodes {
    assetKey { path }
    assetChecksOrError {
      __typename
      ... on AssetChecks {
        checks {
          name
          partitionDefinition { type }
          partitionStatuses {
            __typename
            ... on AssetCheckDefaultPartitionStatuses {
              succeededPartitions failedPartitions inProgressPartitions skippedPartitions executionFailedPartitions
            }
            ... on AssetCheckTimePartitionStatuses { ranges { startKey endKey status } }
          }
        }
      }
    }
  }
}
"""
EXECUTIONS_QUERY = """
query ($assetKey: AssetKeyInput!, $checkName: String!) {
  assetCheckExecutions(assetKey: $assetKey, checkName: $checkName, limit: 1000) {
    id partition status timestamp
    evaluation { partition success severity }
  }
}
"""


def query(port: int, text: str, variables: dict | None = None) -> dict:
    if variables is None:
        return graphql(port, text)["data"]
    import urllib.request

    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": text, "variables": variables}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        answer = json.loads(response.read())
    assert "errors" not in answer, answer
    return answer["data"]


def by_status(statuses: dict) -> dict[str, set[str]]:
    """The partition keys the UI lists under each status, from either shape GraphQL answers with
    (key lists for static and dynamic partitions, ranges of days for daily ones)."""
    if statuses["__typename"] == "AssetCheckDefaultPartitionStatuses":
        return {
            status: set(statuses[f"{field}Partitions"])
            for status, field in (("SUCCEEDED", "succeeded"), ("FAILED", "failed"), ("SKIPPED", "skipped"),
                                  ("EXECUTION_FAILED", "executionFailed"), ("IN_PROGRESS", "inProgress"))
        }  # fmt: skip
    assert statuses["__typename"] == "AssetCheckTimePartitionStatuses", statuses
    statuses_ = ("SUCCEEDED", "FAILED", "SKIPPED", "EXECUTION_FAILED", "IN_PROGRESS")
    keys: dict[str, set[str]] = {status: set() for status in statuses_}
    for span in statuses["ranges"]:
        days = pd.date_range(span["startKey"], span["endKey"], freq="D")
        keys[span["status"]] |= {day.strftime("%Y-%m-%d") for day in days}
    return keys


def ui_status(execution: dict) -> str:
    """The verdict the UI shows for one check execution, in the CLI's words."""
    status = execution["status"]
    if status == "SUCCEEDED":
        return "passed"
    if status == "FAILED":
        return "warn" if execution["evaluation"]["severity"] == "WARN" else "failed"
    return {"EXECUTION_FAILED": "error", "SKIPPED": "skipped"}.get(status, status.lower())


@pytest.fixture
def env(tmp_path: Path):
    project = make_project(tmp_path / "project")
    (tmp_path / "dagster").mkdir()
    (tmp_path / "dagster" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {k: v for k, v in os.environ.items() if k not in ENV_NAMES}
    env.update(STRESS_HOME=str(tmp_path / "home"), STRESS_DATA_DIR=str(project / "data"))
    env["DAGSTER_HOME"] = str(tmp_path / "dagster")
    try:
        yield env
    finally:
        stop_embedded(get_settings(env))  # and the alert receiver


@pytest.mark.webserver
def test_every_check_verdict_of_a_sweep_is_the_same_in_the_ui_and_the_cli(env: dict, tmp_path: Path) -> None:
    sweep = subprocess.run(
        [sys.executable, "-m", "stress_pipeline.cli", "run", "--json"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900,
    )
    assert sweep.stdout, sweep.stderr
    summary = json.loads(sweep.stdout)
    cli = {(c["asset"], c["partition"], c["check"]): c["status"] for c in summary["checks"]}
    scenarios = ["baseline", "small_crash", "small_spreads"]
    assert {p for (asset, p, _) in cli if asset == "stressed_bars"} == set(scenarios)
    assert len(set(cli.values()) & {"passed", "warn"}) >= 1

    port = free_port()
    log = (tmp_path / "webserver.log").open("w")
    webserver = Path(sys.executable).parent / "dagster-webserver"
    proc = subprocess.Popen(
        [str(webserver), "-w", str(ROOT / "workspace.yaml"), "-h", "127.0.0.1", "-p", str(port)],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        nodes = None
        deadline = time.monotonic() + 120
        while nodes is None and time.monotonic() < deadline:
            assert proc.poll() is None, (tmp_path / "webserver.log").read_text()
            try:
                nodes = query(port, CHECKS_QUERY)["assetNodes"] or None
            except (OSError, KeyError, TypeError):
                time.sleep(0.5)
        assert nodes, "the webserver never answered"

        ui: dict[tuple[str, str | None, str], str] = {}
        partitioned: dict[tuple[str, str], dict] = {}
        for node in nodes:
            asset = "/".join(node["assetKey"]["path"])
            for check in node["assetChecksOrError"]["checks"]:
                executions = query(
                    port, EXECUTIONS_QUERY, {"assetKey": {"path": node["assetKey"]["path"]}, "checkName": check["name"]}
                )["assetCheckExecutions"]
                latest: dict[str | None, dict] = {}
                for execution in sorted(executions, key=lambda e: (e["timestamp"], int(e["id"]))):
                    latest[execution["partition"]] = execution  # the newest one of each partition wins
                for partition, execution in latest.items():
                    ui[(asset, partition, check["name"])] = ui_status(execution)
                if check["partitionDefinition"] is not None:
                    partitioned[(asset, check["name"])] = check["partitionStatuses"]

        # every (asset, partition, check): same verdict, nothing missing on either side; a check the CLI calls
        # skipped was never planned (its run never started), and the UI has no execution of it either
        assert ui == {key: status for key, status in cli.items() if status != "skipped"}

        # and the per-partition status lists the UI draws agree with them too
        for (asset, check), statuses in partitioned.items():
            verdicts = {p: status for (a, p, c), status in cli.items() if (a, c) == (asset, check)}
            listed = by_status(statuses)
            assert listed["SUCCEEDED"] == {p for p, status in verdicts.items() if status == "passed"}, check
            assert listed["FAILED"] == {p for p, s in verdicts.items() if s in ("failed", "warn")}, check
            assert listed["SKIPPED"] == set() and listed["EXECUTION_FAILED"] == set(), check
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
