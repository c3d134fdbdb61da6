"""The market group through real Dagster runs: materialisation, the blocking check, the runner."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from stress_pipeline.defs import build_definitions
from stress_pipeline.defs.market.assets import market_bars
from stress_pipeline.defs.market.checks import MARKET_BARS_QUALITY, market_bars_quality
from stress_pipeline.defs.partitions import symbols_partitions
from stress_pipeline.defs.runner import register_symbols, resolve_selection, run_selection
from stress_pipeline.settings import get_settings

from .test_market_loaders import kline_rows, write


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A data dir with two clean symbols, and STRESS_HOME / DAGSTER_HOME under tmp_path."""
    data = tmp_path / "data"
    (data / "bars").mkdir(parents=True)
    (data / "symbols.yaml").write_text("defaults:\n  spread_bps: 2.0\n")
    write(data / "bars" / "BTCUSDT-1m-2024-01.csv", kline_rows(120))
    write(data / "bars" / "ETHUSDT-1m-2024-01.csv", kline_rows(120, price=2300.0))
    monkeypatch.setenv("STRESS_DATA_DIR", str(data))
    monkeypatch.setenv("STRESS_HOME", str(tmp_path / "home"))
    return data


def materialize_symbol(instance: dg.DagsterInstance, symbol: str) -> dg.ExecuteInProcessResult:
    defs = build_definitions()
    return dg.materialize(
        [market_bars, market_bars_quality],
        partition_key=symbol,
        instance=instance,
        resources=defs.resources,
        raise_on_error=False,
    )


def test_definitions_load_with_the_market_group() -> None:
    defs = build_definitions()
    graph = defs.resolve_asset_graph()
    assert graph.get(dg.AssetKey("market_bars")).group_name == "market"
    assert dg.AssetCheckKey(dg.AssetKey("market_bars"), MARKET_BARS_QUALITY) in graph.asset_check_keys
    assert defs.resolve_sensor_def("market_files_sensor") is not None
    assert defs.resolve_job_def("market_ingest") is not None


def test_materialize_one_symbol_writes_parquet_and_metadata(project: Path) -> None:
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(symbols_partitions.name, ["BTCUSDT"])
        result = materialize_symbol(instance, "BTCUSDT")
        assert result.success
        (event,) = result.get_asset_materialization_events()
        meta = event.materialization.metadata
        assert meta["rows"].value == 120
        assert meta["first_ts"].value == "2024-01-01T00:00:00+00:00"
        assert meta["last_ts"].value == "2024-01-01T01:59:00+00:00"
        assert meta["bar_interval"].value == "1m"
        assert meta["gaps"].value == 0
        assert "data:image/png;base64," in meta["close_plot"].value
        assert "| ts" in meta["preview"].value
        (check,) = result.get_asset_check_evaluations()
        assert check.passed and check.check_name == MARKET_BARS_QUALITY
        stored = pd.read_parquet(get_settings().storage_dir / "market_bars" / "BTCUSDT.parquet")
        assert len(stored) == 120 and (stored["symbol"] == "BTCUSDT").all()


def test_bad_file_fails_its_partition_only_and_keeps_last_good_output(project: Path) -> None:
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(symbols_partitions.name, ["BTCUSDT", "ETHUSDT"])
        assert materialize_symbol(instance, "BTCUSDT").success
        stored = get_settings().storage_dir / "market_bars" / "BTCUSDT.parquet"
        before = stored.read_bytes()

        rows = kline_rows(120)
        rows[9] = rows[9].replace(",1.5,", ",1.5.1,", 1)
        bad = write(project / "bars" / "BTCUSDT-1m-2024-01.csv", rows)
        failed = materialize_symbol(instance, "BTCUSDT")
        assert not failed.success
        (failure,) = failed.get_step_failure_events()
        message = failure.step_failure_data.user_failure_data.description
        assert message == f"{bad}: line 10, column volume: cannot parse '1.5.1' as a number"
        assert stored.read_bytes() == before  # the last good materialisation stays
        assert materialize_symbol(instance, "ETHUSDT").success  # other symbols unaffected


def test_failing_quality_check_blocks_downstream(project: Path) -> None:
    rows = kline_rows(120)
    fields = rows[5].split(",")
    fields[2] = "1.0"  # high far below open and close
    rows[5] = ",".join(fields)
    write(project / "bars" / "BTCUSDT-1m-2024-01.csv", rows)

    @dg.asset(partitions_def=symbols_partitions, deps=[market_bars])
    def downstream() -> None:
        raise AssertionError("must not run after a failed blocking check")

    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(symbols_partitions.name, ["BTCUSDT"])
        result = dg.materialize(
            [market_bars, market_bars_quality, downstream],
            partition_key="BTCUSDT",
            instance=instance,
            resources=build_definitions().resources,
            raise_on_error=False,
        )
        # The asset validates before it promotes: it fails, so the check has nothing to judge.
        assert result.get_asset_check_evaluations() == []
        (failure,) = result.get_step_failure_events()
        failed = {
            f["name"]: f["unexpected_count"]
            for f in failure.step_failure_data.user_failure_data.metadata["failed_expectations"].value
        }
        assert failed.get("high_ge_open") == 1 and failed.get("high_ge_close") == 1
        assert "downstream" not in {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}


def test_runner_registers_symbols_and_runs_every_partition(project: Path) -> None:
    settings = get_settings()
    with dg.instance_for_test() as instance:
        assert register_symbols(instance, settings) == ["BTCUSDT", "ETHUSDT"]
        assert register_symbols(instance, settings) == []
        defs = build_definitions()
        keys = resolve_selection(defs, "group:market")
        outcomes = run_selection(defs, instance, keys)
        assert [(o.asset, o.partition, o.status) for o in outcomes] == [
            ("market_bars", "BTCUSDT", "materialized"),
            ("market_bars", "ETHUSDT", "materialized"),
        ]
        assert all(o.checks == {MARKET_BARS_QUALITY: True} for o in outcomes)


def test_resolve_selection_rejects_a_selection_that_matches_nothing() -> None:
    with pytest.raises(Exception, match="no_such_asset"):
        resolve_selection(build_definitions(), "key:no_such_asset")


def test_definitions_validate_command(tmp_path: Path) -> None:
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path)}
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "dagster"), "definitions", "validate", "-w", str(root / "workspace.yaml")],
        cwd=root, env=env, capture_output=True, text=True, timeout=180,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
