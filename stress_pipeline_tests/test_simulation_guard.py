"""The lookahead guard blocks results: with a strategy that peeks in the weights the simulations trade,
neither simulation asset produces anything (real Dagster runs on real files)."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import pytest

from stress_pipeline.defs import build_definitions
from stress_pipeline.defs.resources import stress_resource_from_env
from stress_pipeline.defs.runner import register_symbols, resolve_selection, run_selection
from stress_pipeline.market.synthetic import generate_bars
from stress_pipeline.settings import get_settings

PACK = """
scenarios:
  - name: Guard Crash
    type: flash_crash
    symbols: [BTCUSDT]
    parameters: {drop_pct: 0.2, duration_bars: 5, recovery_bars: 30}
"""
PEEKING = "stress_pipeline_tests.test_strategy_weights:PeeksOnlyInTheArrayForm"
NAN_WEIGHTS = "stress_pipeline_tests.test_simulation_guard:nan_weights"


def nan_weights(bars):
    """A user strategy whose warm-up is NaN (it never filled it)."""
    close = bars.pivot(index="ts", columns="symbol", values="close")
    return (close.rolling(30).mean() < close).astype(float).where(close.rolling(30).count() == 30)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    data = tmp_path / "data"
    (data / "bars").mkdir(parents=True)
    (data / "stress_packs").mkdir()
    for symbol, frame in generate_bars(symbols=("BTCUSDT",), days=1).groupby("symbol"):
        frame.drop(columns="symbol").to_parquet(data / "bars" / f"{symbol}_1m.parquet")
    (data / "stress_packs" / "guard.yaml").write_text(PACK)
    shutil.copytree(Path(__file__).resolve().parents[1] / "data" / "policies", data / "policies")
    monkeypatch.setenv("STRESS_DATA_DIR", str(data))
    monkeypatch.setenv("STRESS_HOME", str(tmp_path / "home"))
    return data


def simulate(instance: dg.DagsterInstance, strategy: str) -> dg.ExecuteInProcessResult:
    defs = build_definitions()
    return dg.materialize(
        [*defs.assets, *defs.asset_checks], selection=["backtest_results", "paper_results", "divergence_report"],
        partition_key="guard_crash", instance=instance, raise_on_error=False,
        resources={**defs.resources, "stress": stress_resource_from_env(strategy=strategy)},
    )  # fmt: skip


def test_a_peeking_strategy_produces_no_results(project: Path) -> None:
    defs = build_definitions()
    with dg.instance_for_test() as instance:
        register_symbols(instance, get_settings())
        run_selection(defs, instance, resolve_selection(defs, "group:market or group:scenarios"))
        result = simulate(instance, PEEKING)
        assert not result.success
        assert result.get_asset_materialization_events() == []
        failures = {
            e.step_key: e.step_failure_data.user_failure_data.description for e in result.get_step_failure_events()
        }
        assert set(failures) == {"backtest_results", "paper_results"}
        for kind in ("backtest", "paper"):
            message = failures[f"{kind}_results"]
            assert message.startswith(f"{kind} of scenario 'Guard Crash' refused, the lookahead guard failed: ")
            assert "peeks_in_weights: lookahead at" in message
        assert not (get_settings().storage_dir / "backtest_results").exists()
        assert not (get_settings().storage_dir / "paper_results").exists()

        result = simulate(instance, NAN_WEIGHTS)
        failures = {
            e.step_key: e.step_failure_data.user_failure_data.description for e in result.get_step_failure_events()
        }
        assert set(failures) == {"backtest_results", "paper_results"}
        assert f"strategy '{NAN_WEIGHTS}': weight nan for BTCUSDT at bar 2024-01-01 00:00:00+00:00" in failures[
            "paper_results"]
