"""The scenarios group through real Dagster runs: catalog, partition sync, stressed bars and their checks."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from stress_pipeline.defs import build_definitions
from stress_pipeline.defs.partitions import scenarios_partitions
from stress_pipeline.defs.runner import register_symbols, resolve_selection, run_selection
from stress_pipeline.market.synthetic import generate_bars
from stress_pipeline.settings import get_settings

PACK = """
scenarios:
  - name: Test Crash
    type: flash_crash
    severity: catastrophic
    symbols: [BTCUSDT]
    seed: 7
    parameters: {drop_pct: 0.25, duration_bars: 5, recovery_bars: 10}
  - name: Test Spreads
    type: spread_explosion
    symbols: [BTCUSDT, ETHUSDT]
    window: {offset_bars: 300}
    parameters: {spread_mult: 8, duration_bars: 10}
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    data = tmp_path / "data"
    (data / "bars").mkdir(parents=True)
    (data / "stress_packs").mkdir()
    bars = generate_bars(symbols=("BTCUSDT", "ETHUSDT"), days=1)
    for symbol, frame in bars.groupby("symbol"):
        frame.drop(columns="symbol").to_parquet(data / "bars" / f"{symbol}_1m.parquet")
    (data / "stress_packs" / "test.yaml").write_text(PACK)
    monkeypatch.setenv("STRESS_DATA_DIR", str(data))
    monkeypatch.setenv("STRESS_HOME", str(tmp_path / "home"))
    return data


def test_two_scenarios_materialise_with_passing_checks_in_one_run(project: Path) -> None:
    defs = build_definitions()
    with dg.instance_for_test() as instance:
        register_symbols(instance, get_settings())
        keys = resolve_selection(defs, "group:market or group:scenarios")
        seen_runs: list[str] = []
        outcomes = run_selection(defs, instance, keys, on_step=lambda i, n, label: seen_runs.append(label))

        partitions = sorted(instance.get_dynamic_partitions(scenarios_partitions.name))
        assert partitions == ["baseline", "test_crash", "test_spreads"]
        assert "stressed_bars [3 partitions, one run]" in seen_runs  # BackfillPolicy.single_run
        by_key = {(o.asset, o.partition): o for o in outcomes}
        catalog = by_key[("scenario_catalog", None)]
        assert catalog.status == "materialized" and catalog.checks == {"scenario_packs_valid": True}
        assert catalog.metadata["scenarios"] == 2

        crash = by_key[("stressed_bars", "test_crash")]
        assert crash.status == "materialized", crash.error
        assert crash.checks == {"stressed_bars_invariants": True}, crash.check_metadata
        (drop,) = crash.check_metadata["stressed_bars_invariants"]["drops"]
        assert drop["symbol"] == "BTCUSDT" and abs(drop["realised"] - 0.25) < 1e-6
        stats = crash.metadata["realised_stats_json"]
        assert stats[0]["symbol"] == "BTCUSDT" and abs(stats[0]["drop_pct"] - 0.25) < 1e-6
        assert "data:image/png;base64," in crash.metadata["plot"]

        spreads = by_key[("stressed_bars", "test_spreads")]
        assert spreads.status == "materialized" and spreads.checks == {"stressed_bars_invariants": True}
        stored = pd.read_parquet(get_settings().storage_dir / "stressed_bars" / "test_spreads.parquet")
        assert set(stored["symbol"]) == {"BTCUSDT", "ETHUSDT"}
        assert stored["stressed"].sum() == 20  # 10 bars on each of two symbols
        assert {"stressed", "corrupted", "halted"} <= set(stored.columns)

        baseline = by_key[("stressed_bars", "baseline")]
        assert baseline.status == "materialized" and baseline.checks == {"stressed_bars_invariants": True}
        assert baseline.metadata["rows"] == 2 * 1440 and baseline.metadata["stressed_rows"] == 0


def test_catalog_removes_partitions_of_deleted_scenarios_and_reports_bad_packs(project: Path) -> None:
    defs = build_definitions()
    with dg.instance_for_test() as instance:
        register_symbols(instance, get_settings())
        run_selection(defs, instance, resolve_selection(defs, "key:scenario_catalog"))
        assert len(instance.get_dynamic_partitions(scenarios_partitions.name)) == 3

        (project / "stress_packs" / "test.yaml").write_text(PACK.split("  - name: Test Spreads")[0])
        (project / "stress_packs" / "broken.yaml").write_text(PACK.replace("0.25", "25"))
        (outcome,) = run_selection(defs, instance, resolve_selection(defs, "key:scenario_catalog"))
        assert sorted(instance.get_dynamic_partitions(scenarios_partitions.name)) == ["baseline", "test_crash"]
        assert outcome.checks == {"scenario_packs_valid": False}
        (error,) = outcome.check_metadata["scenario_packs_valid"]["errors"]
        assert "broken.yaml: scenario #1 'Test Crash': field parameters.drop_pct" in error


def test_stressed_bars_fails_clearly_without_market_data(project: Path) -> None:
    defs = build_definitions()
    with dg.instance_for_test() as instance:
        register_symbols(instance, get_settings())
        run_selection(defs, instance, resolve_selection(defs, "key:scenario_catalog"))
        outcomes = run_selection(defs, instance, resolve_selection(defs, "key:stressed_bars"))
        assert {o.status for o in outcomes} == {"failed"}
        assert "market_bars[BTCUSDT] has not been materialised yet" in outcomes[0].error
