"""One configuration: the resource binds the environment, and with default settings the Python API and
the assets give identical results for the same scenario."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from stress_pipeline.defs import build_definitions
from stress_pipeline.defs.resources import StressResource, stress_resource_from_env
from stress_pipeline.market import load_bars
from stress_pipeline.market.synthetic import generate_bars
from stress_pipeline.scenarios import apply_scenario, load_packs
from stress_pipeline.settings import DEFAULT_MAX_GAP_RATIO, SettingsError
from stress_pipeline.simulation import SimConfig, run_backtest, run_paper
from stress_pipeline.simulation.storage import read_result

PACK = """
scenarios:
  - name: Config Crash
    type: flash_crash
    symbols: [BTCUSDT, ETHUSDT]
    window: {offset_bars: 1500}
    parameters: {drop_pct: 0.2, duration_bars: 5, recovery_bars: 30}
    faults:
      - {kind: exchange_outage, at_s: 20000, duration_s: 600}
"""


def test_the_resource_binds_set_variables_and_keeps_defaults_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("STRESS_HOME", "STRESS_DATA_DIR", "STRESS_POSTGRES_URL", "STRESS_REDIS_URL", "STRESS_MAX_GAP_RATIO"):
        monkeypatch.delenv(name, raising=False)
    plain = stress_resource_from_env()
    assert plain.home == ".stress" and plain.data_dir == "data" and plain.postgres_url is None
    assert plain.max_gap_ratio == DEFAULT_MAX_GAP_RATIO
    assert plain.sim_config() == SimConfig()  # the resource's defaults are the core's defaults

    monkeypatch.setenv("STRESS_HOME", "/tmp/somewhere")
    monkeypatch.setenv("STRESS_MAX_GAP_RATIO", "0.2")
    bound = stress_resource_from_env()
    assert isinstance(bound.home, dg.EnvVar) and bound.home.env_var_name == "STRESS_HOME"
    assert bound.max_gap_ratio == 0.2
    monkeypatch.setenv("STRESS_MAX_GAP_RATIO", "lots")
    with pytest.raises(SettingsError, match=r"STRESS_MAX_GAP_RATIO='lots': expected a number between 0 and 1"):
        stress_resource_from_env()


def test_a_bad_setting_is_refused_naming_it() -> None:
    with pytest.raises(SettingsError, match=r"max_gap_ratio=1\.5"):
        StressResource(max_gap_ratio=1.5).settings()


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    data = tmp_path / "data"
    (data / "bars").mkdir(parents=True)
    (data / "stress_packs").mkdir()
    for symbol, frame in generate_bars(symbols=("BTCUSDT", "ETHUSDT"), days=3).groupby("symbol"):
        frame.drop(columns="symbol").to_parquet(data / "bars" / f"{symbol}_1m.parquet")
    (data / "stress_packs" / "config.yaml").write_text(PACK)
    shutil.copytree(Path(__file__).resolve().parents[1] / "data" / "policies", data / "policies")
    monkeypatch.setenv("STRESS_DATA_DIR", str(data))
    monkeypatch.setenv("STRESS_HOME", str(tmp_path / "home"))
    yield data


def test_the_python_api_and_the_assets_agree_with_default_settings(project: Path, tmp_path: Path) -> None:
    defs = build_definitions()
    assets = [*defs.assets, *defs.asset_checks]
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("symbols", ["BTCUSDT", "ETHUSDT"])
        for symbol in ("BTCUSDT", "ETHUSDT"):
            assert dg.materialize(
                assets, selection=["market_bars"], partition_key=symbol, instance=instance, resources=defs.resources
            ).success
        catalog = dg.materialize(assets, selection=["scenario_catalog"], instance=instance, resources=defs.resources)
        assert catalog.success
        assert dg.materialize(
            assets, selection=["stressed_bars", "backtest_results", "paper_results"], partition_key="config_crash",
            instance=instance, resources=defs.resources,
        ).success  # fmt: skip

    # The same scenario the way a notebook would run it: every argument left at its default.
    (scenario,) = load_packs(project / "stress_packs")
    bars = load_bars(sorted((project / "bars").iterdir()))
    stressed = apply_scenario(scenario, bars)
    api = {
        "backtest": run_backtest(stressed, scenario_name=scenario.name),
        "paper": run_paper(stressed, faults=scenario.faults, scenario_name=scenario.name),
    }
    storage = tmp_path / "home" / "storage"
    for kind, ours in api.items():
        stored = read_result(storage / f"{kind}_results" / "config_crash.simresult")
        assert ours.metrics["total_trades"] > 0
        for key in ("total_pnl", "max_drawdown", "total_trades", "winrate", "sharpe_ratio", "emergency_stops"):
            assert stored.metrics[key] == ours.metrics[key], (kind, key)
        pd.testing.assert_series_equal(stored.equity["equity"], ours.equity["equity"], check_freq=False)
