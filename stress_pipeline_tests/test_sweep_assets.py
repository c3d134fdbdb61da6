"""The sweeps group through a real Dagster run: spec -> partitions -> point results -> summary with the
failure region, results read back through the IO manager."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from stress_pipeline.defs import build_definitions
from stress_pipeline.defs.partitions import SWEEP_POINTS_PARTITIONS_NAME, SYMBOLS_PARTITIONS_NAME
from stress_pipeline.defs.runner import Runner, register_symbols, resolve_selection
from stress_pipeline.scenarios import load_packs
from stress_pipeline.settings import get_settings
from stress_pipeline.sweeps import expand_sweep, load_sweep
from stress_pipeline.sweeps.summary import POINT_COLUMNS
from stress_pipeline.trading.risk.policy import TradingPolicy

ROOT = Path(__file__).resolve().parents[1] / "data"
SELECTION = " or ".join(
    f"key:{name}" for name in ("market_bars", "scenario_catalog", "sweep_points", "sweep_results", "sweep_summary")
)
SPEC = """\
sweep: stop grid
base: BTC Flash Crash 2021
fixed:
  scenario.expect.max_stress_drawdown_pct: 0.08
grid:
  scenario.parameters.drop_pct: [0.1, 0.4]
  policy.risk.stop_loss.pct: [0.03, 0.10]
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    data = tmp_path / "data"
    (data / "stress_packs").mkdir(parents=True)
    (data / "sweeps").mkdir()
    shutil.copytree(ROOT / "bars", data / "bars")
    shutil.copytree(ROOT / "policies", data / "policies")
    shutil.copy(ROOT / "symbols.yaml", data / "symbols.yaml")
    shutil.copy(ROOT / "stress_packs" / "core_crypto.yaml", data / "stress_packs" / "core_crypto.yaml")
    (data / "sweeps" / "stop_grid.yaml").write_text(SPEC)
    (data / "sweeps" / "broken.yaml").write_text(SPEC.replace("stop grid", "broken").replace("[0.1, 0.4]", "[2.0]"))
    monkeypatch.setenv("STRESS_DATA_DIR", str(data))
    monkeypatch.setenv("STRESS_HOME", str(tmp_path / "home"))
    return data


def test_a_sweep_runs_through_its_partitions_and_the_summary_names_the_failure_region(project: Path) -> None:
    expected = expand_sweep(load_sweep(project / "sweeps" / "stop_grid.yaml"), load_packs(project / "stress_packs"),
                            strategy="trend", policy=TradingPolicy())  # fmt: skip
    keys = sorted(p.key for p in expected)
    defs = build_definitions()
    with dg.instance_for_test() as instance:
        symbols = register_symbols(instance, get_settings())
        summary = Runner(defs, instance).run(
            resolve_selection(defs, SELECTION), partitions={SYMBOLS_PARTITIONS_NAME: sorted(symbols)}
        )
        by_key = {(step.asset, step.partition): step for step in summary.steps}
        assert sorted(instance.get_dynamic_partitions(SWEEP_POINTS_PARTITIONS_NAME)) == keys
        points = by_key[("sweep_points", None)]
        assert points.status == "materialized" and points.metadata["points"] == 4
        rejected = points.metadata["rejected_specs"]
        assert len(rejected) == 1 and "broken.yaml: line 6: field scenario.parameters.drop_pct" in rejected[0]
        for key in keys:
            assert by_key[("sweep_results", key)].status == "materialized", by_key[("sweep_results", key)].error
        result = by_key[("sweep_summary", None)]
        assert result.status == "materialized", result.error
        assert result.metadata["points"] == 4 and result.metadata["failed"] == 1 and result.metadata["missing"] == []
        region = result.metadata["stop_grid_failure_region"]
        assert region["pure"] is True and region["failed"] == 1
        assert region["axes"]["scenario.parameters.drop_pct"]["threshold"] is None
        assert (region["axes"]["policy.risk.stop_loss.pct"]["min"], region["axes"]["scenario.parameters.drop_pct"]
                ["min"]) == (0.10, 0.4)  # fmt: skip
        assert "data:image/png;base64," in result.metadata["stop_grid_heatmap"]

        # The summary is the stored table the IO manager wrote; each point's row is its own partition.
        stored = pd.read_parquet(get_settings().storage_dir / "sweep_summary.parquet")
        assert list(stored.columns) == list(POINT_COLUMNS) and sorted(stored["key"]) == keys
        failing = stored[stored["outcome"] == "fail"].iloc[0]
        assert '"policy.risk.stop_loss.pct": 0.1' in failing["values"]
        assert '"scenario.parameters.drop_pct": 0.4' in failing["values"]
        assert failing["stress_drawdown_pct"] > 0.08

        # A spec that changes its grid (and no rejected spec) removes the points it no longer has.
        (project / "sweeps" / "broken.yaml").unlink()
        (project / "sweeps" / "stop_grid.yaml").write_text(SPEC.replace("[0.1, 0.4]", "[0.1]"))
        again = Runner(defs, instance).run(resolve_selection(defs, "key:sweep_points"))
        assert len(again.steps[0].metadata["sweep_partitions_removed"]) == 2
        assert len(instance.get_dynamic_partitions(SWEEP_POINTS_PARTITIONS_NAME)) == 2


def test_without_sweep_specs_the_summary_is_empty_and_the_run_succeeds(project: Path) -> None:
    shutil.rmtree(project / "sweeps")
    defs = build_definitions()
    selection = "key:scenario_catalog or key:sweep_points or key:sweep_results or key:sweep_summary"
    with dg.instance_for_test() as instance:
        register_symbols(instance, get_settings())
        summary = Runner(defs, instance).run(resolve_selection(defs, selection))
        by_key = {(step.asset, step.partition): step for step in summary.steps}
        assert by_key[("sweep_points", None)].metadata["points"] == 0
        assert not [step for step in summary.steps if step.asset == "sweep_results"]
        result = by_key[("sweep_summary", None)]
        assert result.status == "materialized", result.error
        assert result.metadata["points"] == 0 and result.metadata["failed"] == 0
        stored = pd.read_parquet(get_settings().storage_dir / "sweep_summary.parquet")
        assert stored.empty and list(stored.columns) == list(POINT_COLUMNS)
