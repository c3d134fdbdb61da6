"""The `stress-pipeline` command as a newcomer meets it: where it refuses, what it prints, what it runs."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from stress_pipeline.cli import ProjectError, dagster_home, main
from stress_pipeline.market.synthetic import generate_bars
from stress_pipeline.services import stop_embedded
from stress_pipeline.settings import get_settings

from .test_webserver import free_port, graphql

ROOT = Path(__file__).resolve().parents[1]
PACK = """
scenarios:
  - name: Small Crash
    type: flash_crash
    symbols: [BTCUSDT, ETHUSDT]
    window: {offset_bars: 1500}
    parameters: {drop_pct: 0.2, duration_bars: 5, recovery_bars: 30}
    faults:
      - {kind: redis_down, at_s: 36000, duration_s: 60}
  - name: Small Spreads
    type: spread_explosion
    symbols: [BTCUSDT]
    window: {offset_bars: 300}
    parameters: {spread_mult: 8, duration_bars: 10}
"""
ENV_NAMES = ("STRESS_HOME", "STRESS_DATA_DIR", "DAGSTER_HOME", "STRESS_POSTGRES_URL", "STRESS_REDIS_URL")


def make_project(root: Path, *, days: int = 3) -> Path:
    """A project directory: dagster.yaml, data/ with two symbols of synthetic bars, a small pack, policies."""
    data = root / "data"
    (data / "bars").mkdir(parents=True)
    (data / "stress_packs").mkdir()
    for symbol, frame in generate_bars(symbols=("BTCUSDT", "ETHUSDT"), days=days).groupby("symbol"):
        frame.drop(columns="symbol").to_parquet(data / "bars" / f"{symbol}_1m.parquet")
    (data / "stress_packs" / "small.yaml").write_text(PACK)
    shutil.copytree(ROOT / "data" / "policies", data / "policies")
    shutil.copytree(ROOT / "data" / "certification", data / "certification")
    for shipped in sorted((ROOT / "data").glob("*.yaml")):  # symbols, symbol sets, suites: as a clone has them
        shutil.copy(shipped, data / shipped.name)
    shutil.copy(ROOT / "dagster.yaml", root / "dagster.yaml")
    return root


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A project directory as the working directory, with only the defaults: no variable set."""
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    root = make_project(tmp_path / "project")
    monkeypatch.chdir(root)
    try:
        yield root
    finally:
        stop_embedded(get_settings())  # and the alert receiver


def files_under(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


def test_run_outside_a_project_refuses_and_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    before = files_under(tmp_path)

    assert main(["run"]) == 2
    err = capsys.readouterr().err
    assert f"no data directory: {elsewhere / 'data'} (the default ./data (STRESS_DATA_DIR is unset))" in err
    assert "has neither bars/ nor stress_packs/" in err
    assert files_under(tmp_path) == before

    empty = tmp_path / "empty_data"
    empty.mkdir()
    monkeypatch.setenv("STRESS_DATA_DIR", str(empty))
    before = files_under(tmp_path)
    assert main(["run", "--select", "group:market"]) == 2
    err = capsys.readouterr().err
    assert f"no data directory: {empty} (STRESS_DATA_DIR) has neither bars/ nor stress_packs/" in err
    assert main(["ui", "--port", "1"]) == 2
    assert "no data directory" in capsys.readouterr().err
    assert files_under(tmp_path) == before  # no .stress, no instance, no storage
    assert "DAGSTER_HOME" not in os.environ


def test_run_with_data_but_no_instance_refuses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    project = make_project(tmp_path / "project")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.setenv("STRESS_DATA_DIR", str(project / "data"))
    before = files_under(tmp_path)
    assert main(["run"]) == 2
    err = capsys.readouterr().err
    assert f"DAGSTER_HOME is not set and {elsewhere} is not a project directory (it has no dagster.yaml)" in err
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "missing"))
    assert main(["run"]) == 2
    assert f"DAGSTER_HOME={tmp_path / 'missing'} is not a directory" in capsys.readouterr().err
    assert files_under(tmp_path) == before


def test_one_dagster_home_rule(tmp_path: Path) -> None:
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    (tmp_path / "other").mkdir()
    assert dagster_home({"DAGSTER_HOME": str(tmp_path / "other")}, cwd=tmp_path / "root") == tmp_path / "other"
    assert dagster_home({}, cwd=tmp_path / "root") == tmp_path / "root"
    assert dagster_home({"DAGSTER_HOME": ""}, cwd=tmp_path / "root") == tmp_path / "root"
    with pytest.raises(ProjectError, match=r"no dagster\.yaml"):
        dagster_home({}, cwd=tmp_path / "other")
    with pytest.raises(ProjectError, match="is not a directory"):
        dagster_home({"DAGSTER_HOME": str(tmp_path / "nope")}, cwd=tmp_path / "root")


def test_make_targets_leave_dagster_home_to_the_cli() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert not re.search(r"^\s*(export\s+)?DAGSTER_HOME\s*[:?]?=", makefile, re.MULTILINE)
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
    ui = subprocess.run(["make", "-n", "-C", str(ROOT), "ui", "PORT=4321"], capture_output=True, text=True, env=env)
    assert ".venv/bin/stress-pipeline ui --port 4321" in ui.stdout, ui.stdout + ui.stderr
    run = subprocess.run(["make", "-n", "-C", str(ROOT), "run"], capture_output=True, text=True, env=env)
    assert ".venv/bin/stress-pipeline run" in run.stdout, run.stdout + run.stderr


def test_scenarios_list_shows_partition_keys_and_faults(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scenarios", "list"]) == 0
    out = capsys.readouterr().out
    header = out.splitlines()[0].split()
    assert header[:2] == ["key", "name"] and "faults" in header
    crash = next(line for line in out.splitlines() if line.startswith("small_crash "))
    assert "Small Crash" in crash and "redis_down@36000s+60s" in crash
    assert "the partition key 'baseline'" in out

    assert main(["scenarios", "list", "--json"]) == 0
    entries = {entry["key"]: entry for entry in json.loads(capsys.readouterr().out)}
    assert set(entries) == {"small_crash", "small_spreads"}
    assert entries["small_crash"]["faults"] == [{"kind": "redis_down", "at_s": 36000.0, "duration_s": 60.0}]
    assert entries["small_spreads"]["faults"] == []


def test_progress_names_each_asset_and_partition_with_its_time(project: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ENV_NAMES}
    proc = subprocess.run(
        [sys.executable, "-m", "stress_pipeline.cli", "run", "--select", "group:market or group:scenarios"],
        cwd=project, env=env, capture_output=True, text=True, timeout=600,
    )
    err, out = proc.stderr, proc.stdout
    assert proc.returncode == 0, err + out
    assert f"DAGSTER_HOME={project}" in err  # the project root: DAGSTER_HOME was unset
    assert re.search(r"^  market_bars\[BTCUSDT\] materialized in \d+\.\ds$", err, re.MULTILINE), err
    assert re.search(r"^  market_bars_quality\[ETHUSDT\] evaluated in \d+\.\ds$", err, re.MULTILINE), err
    assert "    market_bars_quality[BTCUSDT]: passed" in err
    assert "    scenario partitions added: baseline, small_crash, small_spreads" in err
    assert "[group 3/3] stressed_bars [3 partitions, one run]\n    baseline, small_crash, small_spreads\n" in err
    assert re.search(r"^  stressed_bars \[3 partitions\] materialized in \d+\.\ds$", err, re.MULTILINE), err
    assert "    stressed_bars_invariants on 3 partitions: 3 passed" in err
    assert re.search(r"^time by phase: setup \d+\.\ds, market \d+\.\ds, scenarios \d+\.\ds, Dagster runs", out, re.M)
    assert "6/6 partitions ok" in out
    for text in (err, out):  # no BetaWarning, PreviewWarning or SupersessionWarning in normal output
        assert "Warning" not in text, text


def test_one_scenario_runs_through_every_stage(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--scenario", "Small Spreads", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    steps = [(s["asset"], s["partition"], s["status"]) for s in summary["steps"]]
    assert steps == [
        ("market_bars", "BTCUSDT", "materialized"),  # the scenario's symbol only
        ("scenario_catalog", None, "materialized"),
        ("stressed_bars", "small_spreads", "materialized"),
        ("backtest_results", "small_spreads", "materialized"),
        ("paper_results", "small_spreads", "materialized"),
        ("divergence_report", "small_spreads", "materialized"),
        ("portfolio_reconciliation", "small_spreads", "materialized"),
        ("scenario_verdict", "small_spreads", "materialized"),
    ]  # and none of the assets that summarise every scenario (verdicts table, certification)
    checks = {(c["asset"], c["partition"], c["check"]): c["status"] for c in summary["checks"]}
    assert checks[("stressed_bars", "small_spreads", "stressed_bars_invariants")] == "passed"
    assert checks[("portfolio_reconciliation", "small_spreads", "reconciliation_clean")] == "passed"
    assert {partition for _, partition, _ in checks} == {"BTCUSDT", None, "small_spreads"}
    assert set(summary["phases"]) >= {"setup", "market", "scenarios", "simulations", "integrity", "Dagster runs"}

    assert main(["run", "--scenario", "no_such_thing"]) == 2
    err = capsys.readouterr().err
    assert "no scenario 'no_such_thing'" in err and "baseline, small_crash, small_spreads" in err


def test_catalog_removes_a_partition_only_with_its_pack(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    packs = project / "data" / "stress_packs"
    (packs / "extra.yaml").write_text(
        "scenarios:\n  - name: Extra Halt\n    type: trading_halt\n    symbols: [ETHUSDT]\n"
        "    parameters: {halt_minutes: 30, gap_pct: 0.05}\n"
    )
    select = ["run", "--select", "key:scenario_catalog", "--json"]
    assert main(select) == 0
    capsys.readouterr()
    every = ["baseline", "extra_halt", "small_crash", "small_spreads"]
    assert partitions(project) == every

    # a broken pack is rejected, but its scenarios stay: nothing says they are gone
    (packs / "small.yaml").write_text(PACK.replace("0.2", "2"))
    assert main(select[:-1]) == 1  # scenario_packs_valid fails
    err = capsys.readouterr().err
    assert "scenario partition small_crash kept although no pack defines it: its pack small.yaml is rejected" in err
    assert partitions(project) == every

    # the pack folder moved away (a wrong data directory): the catalog is empty, nothing is removed
    packs.rename(project / "data" / "packs_elsewhere")
    main(select)
    assert partitions(project) == every
    (project / "data" / "packs_elsewhere").rename(packs)
    capsys.readouterr()

    # the pack itself removed: its scenarios go, and the run says which and why
    (packs / "small.yaml").unlink()
    assert main(select[:-1]) == 0
    err = capsys.readouterr().err
    assert "scenario partition small_crash removed: its pack small.yaml was removed" in err
    assert "scenario partition small_spreads removed: its pack small.yaml was removed" in err
    assert partitions(project) == ["baseline", "extra_halt"]

    # a scenario deleted from a pack that is still there goes too
    (packs / "extra.yaml").write_text(
        "scenarios:\n  - name: Other Halt\n    type: trading_halt\n    symbols: [ETHUSDT]\n"
        "    parameters: {halt_minutes: 30, gap_pct: 0.05}\n"
    )
    assert main(select[:-1]) == 0
    assert "scenario partition extra_halt removed: extra.yaml no longer defines it" in capsys.readouterr().err
    assert partitions(project) == ["baseline", "other_halt"]


def partitions(project: Path) -> list[str]:
    import dagster as dg

    with dg.DagsterInstance.from_config(str(project)) as instance:
        return list(instance.get_dynamic_partitions("scenarios"))


@pytest.mark.webserver
def test_ui_opens_the_instance_the_cli_ran_on(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--select", "key:scenario_catalog"]) == 0
    capsys.readouterr()
    port = free_port()
    log = (project / "ui.log").open("w")
    env = {k: v for k, v in os.environ.items() if k not in ENV_NAMES}
    proc = subprocess.Popen(
        [sys.executable, "-m", "stress_pipeline.cli", "ui", "--port", str(port)],
        cwd=project, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    query = '{ runsOrError(filter: {tags: [{key: "stress_pipeline/launched_by", value: "cli"}]}) ' \
            "{ __typename ... on Runs { results { runId status } } } }"
    try:
        deadline, runs = time.monotonic() + 150, None
        while time.monotonic() < deadline and runs is None:
            assert proc.poll() is None, (project / "ui.log").read_text()
            try:
                runs = graphql(port, query)["data"]["runsOrError"]["results"]
            except (OSError, KeyError, TypeError):
                time.sleep(1)
        assert runs and {run["status"] for run in runs} == {"SUCCESS"}, (project / "ui.log").read_text()
        assert f"DAGSTER_HOME={project}" in (project / "ui.log").read_text()
    finally:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
        log.close()


def test_after_a_run_the_command_leaves_at_once_with_its_code_and_everything_printed() -> None:
    code = (
        "import sys\n"
        "from stress_pipeline import cli\n"
        "def main():\n"
        "    print('summary, no newline', end='')\n"
        "    print('on stderr', file=sys.stderr, end='')\n"
        "    cli._leave_at_once = True\n"
        "    return 3\n"
        "cli.main = main\n"
        "cli.console_main()\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout, done.stderr) == (3, "summary, no newline", "on stderr")
