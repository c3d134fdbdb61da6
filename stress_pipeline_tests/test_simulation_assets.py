"""The simulations group through real Dagster runs: backtest, paper, divergence and their checks."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from stress_pipeline.defs import build_definitions
from stress_pipeline.defs.resources import stress_resource_from_env
from stress_pipeline.defs.runner import register_symbols, resolve_selection, run_selection
from stress_pipeline.market.synthetic import generate_bars
from stress_pipeline.services import stop_embedded
from stress_pipeline.settings import get_settings
from stress_pipeline.simulation.result import RESULT_FIELDS
from stress_pipeline.simulation.storage import read_result

PACK = """
scenarios:
  - name: Sim Crash
    type: flash_crash
    symbols: [BTCUSDT, ETHUSDT]
    window: {offset_bars: 1500}
    parameters: {drop_pct: 0.2, duration_bars: 5, recovery_bars: 30}
    faults:
      - {kind: redis_down, at_s: 36000, duration_s: 60}
"""
FAST_STRATEGY = {"strategy": "trend", "strategy_params": {"fast": 15, "slow": 90, "band": 0.0005}}


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    data = tmp_path / "data"
    (data / "bars").mkdir(parents=True)
    (data / "stress_packs").mkdir()
    for symbol, frame in generate_bars(symbols=("BTCUSDT", "ETHUSDT"), days=3).groupby("symbol"):
        frame.drop(columns="symbol").to_parquet(data / "bars" / f"{symbol}_1m.parquet")
    (data / "stress_packs" / "sim.yaml").write_text(PACK)
    shutil.copytree(Path(__file__).resolve().parents[1] / "data" / "policies", data / "policies")
    monkeypatch.setenv("STRESS_DATA_DIR", str(data))
    monkeypatch.setenv("STRESS_HOME", str(tmp_path / "home"))
    try:
        yield data
    finally:
        stop_embedded(get_settings())  # the alert receiver too; the reconciliation started the embedded servers


def test_backtest_paper_and_divergence_for_a_scenario_and_the_baseline(project: Path) -> None:
    defs = build_definitions()
    with dg.instance_for_test() as instance:
        register_symbols(instance, get_settings())
        run_selection(defs, instance, resolve_selection(defs, "group:market or group:scenarios"))
        selection = ["backtest_results", "paper_results", "divergence_report", "portfolio_reconciliation"]
        assets = [*defs.assets, *defs.asset_checks]
        for key in ("baseline", "sim_crash"):
            result = dg.materialize(
                assets, selection=selection, partition_key=key, instance=instance,
                resources={**defs.resources, "stress": stress_resource_from_env(**FAST_STRATEGY)},
            )  # fmt: skip
            assert result.success
            checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
            assert set(checks) == {
                "lookahead_guard", "divergence_within_limit", "paper_not_optimistic", "reconciliation_clean"
            }
            assert checks["reconciliation_clean"].passed
            assert checks["lookahead_guard"].passed
            assert checks["divergence_within_limit"].severity == dg.AssetCheckSeverity.WARN
            meta = {e.asset_key.to_user_string(): e.materialization.metadata for e in
                    result.get_asset_materialization_events()}
            assert set(RESULT_FIELDS) - {"equity_curve_sample"} <= set(meta["paper_results"]["result"].value)
            assert "data:image/png;base64," in meta["paper_results"]["equity_and_drawdown"].value
            assert "data:image/png;base64," in meta["divergence_report"]["equity"].value
            assert abs(meta["divergence_report"]["attribution_residual"].value) < 1e-6 * 100_000
            assert "risk blocks" in meta["divergence_report"]["attribution"].value
            reconciliation = meta["portfolio_reconciliation"]
            assert reconciliation["passed"].value and reconciliation["breaks"].value == "no breaks"
            if key == "sim_crash":  # the scenario's Redis outage was real, and the writer degraded and recovered
                (timing,) = reconciliation["outage_timings"].value
                assert timing["target"] == "redis" and timing["down_s"] > 0 and timing["recovery_s"] > 0
                (seen,) = [o for o in reconciliation["outages"].value if o["target"] == "redis"]
                assert seen["marks_tried"] >= 1 and seen["recovered_ns"] is not None  # marks coalesced, flushed
                assert reconciliation["buffered"].value["redis"] == seen["buffered"]  # fills kept on disk, if any

        paths = get_settings().paths
        paper = read_result(paths.result_file(["paper_results"], "sim_crash"))
        backtest = read_result(paths.result_file(["backtest_results"], "sim_crash"))
        assert paper.metrics["total_trades"] > 0 and backtest.metrics["total_trades"] > 0
        assert paper.events is not None and paper.events["event_id"].is_monotonic_increasing
        assert {"signal", "order", "fill"} <= set(paper.events["kind"])
