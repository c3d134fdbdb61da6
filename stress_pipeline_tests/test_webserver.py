"""The Dagster UI: the webserver loads the workspace and shows market_bars with its check."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

QUERY = """
{
  workspaceOrError {
    __typename
    ... on Workspace {
      locationEntries {
        name
        loadStatus
        locationOrLoadError { __typename ... on PythonError { message } }
      }
    }
  }
  assetNodes {
    assetKey { path }
    groupName
    isPartitioned
    assetChecksOrError { __typename ... on AssetChecks { checks { name blocking } } }
  }
}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def graphql(port: int, query: str) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


@pytest.mark.webserver
def test_webserver_loads_the_code_location_with_market_bars_and_its_check(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path), "STRESS_HOME": str(tmp_path / "stress")}
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    webserver = Path(sys.executable).parent / "dagster-webserver"
    log = (tmp_path / "webserver.log").open("w")
    proc = subprocess.Popen(
        [str(webserver), "-w", str(ROOT / "workspace.yaml"), "-h", "127.0.0.1", "-p", str(port)],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 120
        data = None
        while time.monotonic() < deadline:
            assert proc.poll() is None, (tmp_path / "webserver.log").read_text()
            try:
                data = graphql(port, QUERY)["data"]
            except OSError:
                time.sleep(0.5)
                continue
            entries = data["workspaceOrError"]["locationEntries"]
            if entries and entries[0]["loadStatus"] == "LOADED":
                break
            time.sleep(0.5)
        assert data is not None, "webserver never answered"
        (entry,) = data["workspaceOrError"]["locationEntries"]
        assert entry["name"] == "stress_pipeline"
        assert entry["locationOrLoadError"]["__typename"] == "RepositoryLocation", entry
        nodes = {"/".join(n["assetKey"]["path"]): n for n in data["assetNodes"]}
        bars = nodes["market_bars"]
        assert bars["groupName"] == "market" and bars["isPartitioned"]
        assert {"name": "market_bars_quality", "blocking": True} in bars["assetChecksOrError"]["checks"]
        stressed = nodes["stressed_bars"]
        assert stressed["groupName"] == "scenarios" and stressed["isPartitioned"]
        assert {c["name"] for c in stressed["assetChecksOrError"]["checks"]} == {"stressed_bars_invariants"}
        assert nodes["scenario_catalog"]["groupName"] == "scenarios"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
