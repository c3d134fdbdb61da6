"""A sweep through two real Celery workers (separate processes, the machine's RabbitMQ, Dagster's run and
event storage in a scratch PostgreSQL database): every step of the sweep's batches ran on a worker, both
workers ran some, and each point's verdict and figures equal those of the same sweep run in process.

Skipped when dagster-celery is not installed in this interpreter (`pip install -e '.[dev]'` pulls it), or
when the servers are not configured; with STRESS_REQUIRE_EXTERNAL_SERVICES=1 (CI) both are failures."""

from __future__ import annotations

import os
import shutil
import socket
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import dagster as dg
import pandas as pd
import pytest
import sqlalchemy as sa

from stress_pipeline.defs import build_definitions
from stress_pipeline.defs.partitions import SWEEP_POINTS_PARTITIONS_NAME, SYMBOLS_PARTITIONS_NAME
from stress_pipeline.defs.runner import Runner, register_symbols, resolve_selection
from stress_pipeline.defs.sweeps.celery import DEFAULT_BROKER, celery_settings
from stress_pipeline.settings import get_settings

ROOT = Path(__file__).resolve().parents[1] / "data"
SPEC = """\
sweep: celery grid
base: BTC Flash Crash 2021
fixed:
  scenario.expect.max_stress_drawdown_pct: 0.08
grid:
  scenario.parameters.drop_pct: [0.1, 0.25, 0.4]
  policy.risk.stop_loss.pct: [0.03, 0.10]
"""
PREPARE = "key:market_bars or key:scenario_catalog or key:sweep_points"

pytestmark = pytest.mark.services


def _require(condition: bool, reason: str) -> None:
    if condition:
        return
    if os.environ.get("STRESS_REQUIRE_EXTERNAL_SERVICES") == "1":
        pytest.fail(f"{reason} but STRESS_REQUIRE_EXTERNAL_SERVICES=1", pytrace=False)
    pytest.skip(reason)


def _broker_answers(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 5672), timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture
def dagster_database(external_service_urls) -> str:
    """A scratch database for Dagster's storage on the test PostgreSQL, dropped afterwards."""
    server = sa.make_url(external_service_urls.postgres_url).set(drivername="postgresql+psycopg")
    name = f"stress_dagster_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    yield server.set(drivername="postgresql+psycopg2", database=name).render_as_string(hide_password=False)
    with engine.connect() as connection:
        connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


@pytest.fixture
def broker() -> str:
    """The broker, once dagster-celery is importable here and the broker answers."""
    try:
        import dagster_celery  # noqa: F401
        import dagster_postgres  # noqa: F401

        installed = True
    except ImportError:
        installed = False
    _require(installed, "dagster-celery / dagster-postgres not installed in this interpreter (pip install -e '.[dev]')")
    url = os.environ.get("STRESS_CELERY_BROKER") or DEFAULT_BROKER
    _require(_broker_answers(url), f"no Celery broker answers at {url}")
    return url


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, broker: str, dagster_database: str) -> Path:
    data = tmp_path / "data"
    (data / "stress_packs").mkdir(parents=True)
    (data / "sweeps").mkdir()
    shutil.copytree(ROOT / "bars", data / "bars")
    shutil.copytree(ROOT / "policies", data / "policies")
    shutil.copy(ROOT / "symbols.yaml", data / "symbols.yaml")
    shutil.copy(ROOT / "stress_packs" / "core_crypto.yaml", data / "stress_packs" / "core_crypto.yaml")
    (data / "sweeps" / "celery_grid.yaml").write_text(SPEC)
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(
        f"storage:\n  postgres:\n    postgres_url: {dagster_database}\ntelemetry:\n  enabled: false\n"
    )
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("STRESS_DATA_DIR", str(data))
    monkeypatch.setenv("STRESS_HOME", str(tmp_path / "shared"))
    monkeypatch.setenv("STRESS_EXECUTOR", "celery")
    monkeypatch.setenv("STRESS_CELERY_BROKER", broker)
    # A queue of this test's own, so that no other worker on the broker takes its tasks.
    monkeypatch.setenv("STRESS_CELERY_QUEUE", f"stress-test-{uuid.uuid4().hex[:8]}")
    return tmp_path


def test_a_sweep_runs_on_two_celery_workers_with_the_verdicts_of_an_in_process_run(project: Path) -> None:
    from stress_pipeline.defs.sweeps.workers import run_sweep, start_workers, step_workers, sweep_job

    defs = build_definitions()
    settings = get_settings()
    stored = settings.storage_dir / "sweep_results"
    with dg.DagsterInstance.get() as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        symbols = register_symbols(instance, settings)
        runner = Runner(defs, instance)
        prepared = runner.run(resolve_selection(defs, PREPARE), partitions={SYMBOLS_PARTITIONS_NAME: sorted(symbols)})
        assert prepared.ok, [step.error for step in prepared.steps if not step.ok]
        keys = list(instance.get_dynamic_partitions(SWEEP_POINTS_PARTITIONS_NAME))
        assert len(keys) == 6

        # The reference: the same points in process (this process, the default executor).
        local = runner.run(resolve_selection(defs, "key:sweep_results"))
        assert [step.status for step in local.steps] == ["materialized"] * 6
        expected = pd.concat([pd.read_parquet(stored / f"{key}.parquet") for key in keys], ignore_index=True)
        shutil.rmtree(stored)

        celery = celery_settings()
        assert celery is not None and celery.queue.startswith("stress-test-")
        with start_workers(2, celery, env=os.environ, state_dir=project / "workers") as workers:
            workers.wait_ready()
            ok, run_id = run_sweep(instance, sweep_job(), keys[0], keys[-1], points_per_step=1)
            logs = "\n".join(log.read_text()[-3000:] for log in workers.logs)
            assert ok, logs
            ran_on = step_workers(instance, run_id)
        assert all(process.poll() is not None for process in workers.processes)

        batches = sorted(step for step in ran_on if step.startswith("sweep_results.run_sweep_batch"))
        assert len(batches) == 6, ran_on  # one point per step, each on a worker
        assert {"sweep_results.plan_sweep_batches", "sweep_results.merge_sweep_batches"} <= set(ran_on)
        assert {ran_on[step].split("@")[0] for step in batches} == {"sweep-1", "sweep-2"}, ran_on

        distributed = pd.concat([pd.read_parquet(stored / f"{key}.parquet") for key in keys], ignore_index=True)
        pd.testing.assert_frame_equal(distributed, expected)
        assert set(distributed["outcome"]) == {"pass", "fail"}  # the grid reaches the failure region

        materialised = instance.fetch_materializations(dg.AssetKey("sweep_results"), limit=100).records
        by_run = [r for r in materialised if r.run_id == run_id]
        assert sorted(r.partition_key for r in by_run) == sorted(keys)
        failed = int((distributed["outcome"] == "fail").sum())
        assert {(r.asset_materialization.metadata["run_points"].value,
                 r.asset_materialization.metadata["run_failed"].value) for r in by_run} == {(6, failed)}  # fmt: skip
