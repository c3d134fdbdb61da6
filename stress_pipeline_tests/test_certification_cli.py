"""`stress-pipeline certify` and `report` end to end: real Dagster runs of the certification assets in a
subprocess, on crafted stored tables, against a real PostgreSQL database of the test's own.

Runs against STRESS_POSTGRES_URL (skipped when unset, failed when STRESS_REQUIRE_EXTERNAL_SERVICES=1).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
import yaml

from stress_pipeline.certification.readiness import MANUAL_ITEMS
from stress_pipeline.drills.registry import DRILLS
from stress_pipeline.parquet_store import write_parquet_atomic
from stress_pipeline.paths import StoragePaths
from stress_pipeline.services import postgres_engine
from stress_pipeline.simulation.storage import write_result
from stress_pipeline_tests.test_certification_gates import (
    GOOD_VERDICTS,
    coverage_table,
    delivery_table,
    divergence_table,
    drills_table,
    flood_table,
    reconciliation_row,
)
from stress_pipeline_tests.test_certification_report import sim_result

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = ("baseline", "crash_a", "crash_b")


@pytest.fixture
def database(external_service_urls):
    """A database of this test's own on the external server (dropped afterwards), as a URL."""
    admin = postgres_engine(external_service_urls.postgres_url, isolation_level="AUTOCOMMIT")
    name = f"test_certify_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.engine.make_url(external_service_urls.postgres_url.replace("postgresql://", "postgresql+psycopg://"))
    yield url.set(database=name).render_as_string(hide_password=False).replace("postgresql+psycopg://", "postgresql://")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def project(tmp_path, database, external_service_urls):
    """A STRESS_HOME holding every table the certification reads, all passing, and a data directory whose
    readiness file attests every manual item; the Dagster instance knows the scenario partitions."""
    data = tmp_path / "data"
    (data / "stress_packs").mkdir(parents=True)
    (data / "certification").mkdir()
    (data / "certification" / "gates.yaml").write_text((ROOT / "data/certification/gates.yaml").read_text())
    items = [{"item": item, "attested_by": "Ada", "attested_at": "2026-12-01"} for item in MANUAL_ITEMS]
    (data / "certification" / "readiness.yaml").write_text(yaml.safe_dump({"items": items}))
    paths = StoragePaths(tmp_path / "home")
    for key in SCENARIOS:
        write_parquet_atomic(divergence_table().assign(scenario=key), paths.asset_file(("divergence_report",), key))
        write_parquet_atomic(reconciliation_row(), paths.asset_file(("portfolio_reconciliation",), key))
        for kind in ("paper", "backtest"):
            result = sim_result(kind, key, 0.0 if key == "baseline" else 0.1)
            days = pd.date_range("2024-01-01", periods=len(result.equity), freq="270min", tz="UTC", name="ts")
            equity = result.equity.set_axis(days)  # the baseline spans 90 days
            write_result(result.__class__(**{**result.__dict__, "equity": equity}),
                         paths.result_file((f"{kind}_results",), key))  # fmt: skip
    for name, table in (("scenario_verdicts", GOOD_VERDICTS), ("monitoring_coverage", coverage_table()),
                        ("alert_delivery", delivery_table()), ("decision_flood", flood_table())):  # fmt: skip
        write_parquet_atomic(table, paths.asset_file((name,), None))
    for drill in DRILLS:
        write_parquet_atomic(drills_table((5.0,)).assign(drill=drill), paths.asset_file(("drills",), drill))
    dagster_home = tmp_path / "dagster"
    dagster_home.mkdir()
    env = {**os.environ, "STRESS_HOME": str(paths.home), "STRESS_DATA_DIR": str(data),
           "DAGSTER_HOME": str(dagster_home), "STRESS_POSTGRES_URL": database,
           "STRESS_REDIS_URL": external_service_urls.redis_url}  # fmt: skip
    (dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    register = (
        f"import dagster as dg; dg.DagsterInstance.get().add_dynamic_partitions('scenarios', {list(SCENARIOS)!r})"
    )
    subprocess.run([sys.executable, "-c", register], env=env, check=True, timeout=120)
    return env, paths


def _cli(env, *args):
    return subprocess.run([sys.executable, "-m", "stress_pipeline.cli", *args], env=env, capture_output=True,
                          text=True, timeout=600)  # fmt: skip


def test_certify_exits_0_on_go_and_1_on_no_go_and_reads_the_latest(project):
    env, paths = project
    go = _cli(env, "certify", "--json")
    assert go.returncode == 0, go.stderr + go.stdout
    first = json.loads(go.stdout)
    assert (first["source"], first["verdict"], first["go"], first["streak"]) == ("computed", "GO", True, 1)
    assert all(g["verdict"] == "pass" for g in first["gates"])
    assert {g["gate"]: g["source"] for g in first["gates"]}["decision_latency_p99_ms"] == "decision_flood"

    write_parquet_atomic(flood_table(p99=15.5), paths.asset_file(("decision_flood",), None))
    no_go = _cli(env, "certify")
    assert no_go.returncode == 1, no_go.stderr
    assert no_go.stdout.startswith("certification ") and ": NO-GO  (computed now; #2)" in no_go.stdout
    assert "decision_latency_p99_ms: 15.5 ms > 15 ms" in no_go.stdout
    assert "core suite streak: 0 consecutive passes" in no_go.stdout

    latest = _cli(env, "certify", "--latest", "--json")
    assert latest.returncode == 1
    stored = json.loads(latest.stdout)
    assert (stored["source"], stored["certification_id"], stored["verdict"]) == ("history", 2, "NO-GO")
    assert stored["data_fingerprint"] != first["data_fingerprint"]

    report = _cli(env, "report", "--out", str(paths.home / "sent" / "report.html"))
    assert report.returncode == 0, report.stderr
    html = (paths.home / "sent" / "report.html").read_text()
    assert "<title>Certification" in html and "NO-GO" in html and "crash_a" in html


def test_unmaterialised_sources_are_no_input_and_no_go(project):
    env, paths = project
    paths.asset_file(("monitoring_coverage",), None).unlink()
    paths.asset_file(("drills",), list(DRILLS)[1]).unlink()
    proc = _cli(env, "certify", "--json")
    assert proc.returncode == 1, proc.stderr
    gates = {g["gate"]: g for g in json.loads(proc.stdout)["gates"]}
    assert gates["monitoring_coverage_pct"]["verdict"] == "no_input"
    assert gates["monitoring_coverage_pct"]["detail"] == "monitoring_coverage has not been materialised"
    assert gates["recovery_mean_s"]["verdict"] == "no_input"
    assert gates["recovery_mean_s"]["detail"] == f"drills has no stored partition {list(DRILLS)[1]}: materialise it"
    assert gates["alert_delivery_pct"]["verdict"] == "pass"


def test_certify_latest_without_history_is_a_usage_error(project):
    env, _ = project
    proc = _cli(env, "certify", "--latest")
    assert proc.returncode == 2
    assert "no certification recorded yet" in proc.stderr


def test_the_run_report_ends_with_the_certification_and_every_gate_source():
    from types import SimpleNamespace

    from stress_pipeline.certification.decide import certify
    from stress_pipeline.certification.summary import gate_line, run_lines
    from stress_pipeline_tests.test_certification_gates import all_attested, full_sources

    result = certify(full_sources(alert_delivery=None), attestations=all_attested())
    steps = [
        SimpleNamespace(asset="market_bars", partition="BTCUSDT", status="materialized", metadata={}),
        SimpleNamespace(asset="certification", partition="2026-12-06", status="materialized",
                        metadata={"verdict": result.verdict, "streak": 4, "certified": False,
                                  "gates_json": [gate_line(g) for g in result.gates]}),
        SimpleNamespace(asset="certification_report", partition="2026-12-06", status="materialized",
                        metadata={"report": "/home/reports/certification/2026-12-06.html"}),
    ]  # fmt: skip
    lines = run_lines(steps)
    assert lines[1] == "certification 2026-12-06: NO-GO  (core suite streak 4 of 100: not certified)"
    assert len([line for line in lines if "[source: " in line]) == len(result.gates) == 13
    assert "  no_input alert_p95_s: alert_delivery has not been materialised  [source: alert_delivery]" in lines
    assert lines[-1] == "certification report 2026-12-06: /home/reports/certification/2026-12-06.html"
    assert run_lines(steps[:1]) == []
