"""Sweep summaries: the grid of a sweep's rows, failure rates, the failure region, the heat map, and points
run end to end on the shipped bars."""

from __future__ import annotations

import base64
import itertools
import json
from pathlib import Path

import pandas as pd
import pytest

from stress_pipeline.market import load_bars
from stress_pipeline.scenarios import load_packs
from stress_pipeline.simulation.config import SimConfig
from stress_pipeline.sweeps import expand_sweep, load_sweep
from stress_pipeline.sweeps.plots import sweep_heatmap_markdown
from stress_pipeline.sweeps.summary import (
    POINT_COLUMNS,
    axes_of,
    failure_matrix,
    failure_rates,
    failure_region,
    heatmap_axes,
    run_points,
    sweep_grid,
)
from stress_pipeline.trading.risk.policy import TradingPolicy

ROOT = Path(__file__).resolve().parents[1]


def rows(fails, drops=(0.1, 0.2, 0.3, 0.4), trips=(0.05, 0.10, 0.15), modes=("a",)) -> pd.DataFrame:
    """A constructed sweep: every combination, failing where ``fails(drop, trip, mode)``."""
    out = []
    for number, (drop, trip, mode) in enumerate(itertools.product(drops, trips, modes)):
        values = {"scenario.parameters.drop_pct": drop, "policy.risk.safety.trip_drawdown": trip,
                  "strategy.mode": mode, "scenario.expect.max_loss_pct": 0.1}  # fmt: skip
        out.append({"key": f"s__{number:08x}", "sweep": "s", "base": "crash", "values": json.dumps(values),
                    "outcome": "fail" if fails(drop, trip, mode) else "pass", "loss_pct": drop * trip})  # fmt: skip
    return pd.DataFrame(out).sample(frac=1.0, random_state=3)  # stored partitions come in any order


def test_the_grid_has_one_column_per_axis_sorted() -> None:
    grid = sweep_grid(rows(lambda d, t, m: d >= 0.3))
    assert list(grid.columns[:4]) == [
        "policy.risk.safety.trip_drawdown", "scenario.expect.max_loss_pct", "scenario.parameters.drop_pct",
        "strategy.mode",
    ]  # fmt: skip
    assert len(grid) == 12
    assert grid["scenario.parameters.drop_pct"].tolist()[:4] == [0.1, 0.2, 0.3, 0.4]
    # a path fixed to one value everywhere, or a single-valued axis, is not an axis of the summary
    assert axes_of(grid) == ["policy.risk.safety.trip_drawdown", "scenario.parameters.drop_pct"]
    with pytest.raises(ValueError, match="several sweeps"):
        sweep_grid(pd.concat([rows(lambda *a: False), rows(lambda *a: False).assign(sweep="t")]))


def test_a_threshold_region_is_found_with_its_direction() -> None:
    grid = sweep_grid(rows(lambda d, t, m: d >= 0.3))
    region = failure_region(grid)
    assert region["points"] == 12 and region["failed"] == 6 and region["pure"] is True
    drop = region["axes"]["scenario.parameters.drop_pct"]
    assert drop == {"min": 0.3, "max": 0.4, "threshold": 0.3, "direction": "at_or_above"}
    trip = region["axes"]["policy.risk.safety.trip_drawdown"]
    assert trip["threshold"] is None and (trip["min"], trip["max"]) == (0.05, 0.15)
    assert "every point with scenario.parameters.drop_pct >= 0.3 fails, none other" in region["summary"]
    below = failure_region(sweep_grid(rows(lambda d, t, m: t <= 0.05)))
    assert below["axes"]["policy.risk.safety.trip_drawdown"]["direction"] == "at_or_below"
    assert below["axes"]["policy.risk.safety.trip_drawdown"]["threshold"] == 0.05


def test_a_corner_region_is_a_box_and_a_scattered_one_is_not_pure() -> None:
    corner = failure_region(sweep_grid(rows(lambda d, t, m: d >= 0.3 and t >= 0.10)))
    assert corner["failed"] == 4 and corner["pure"] is True
    assert corner["axes"]["scenario.parameters.drop_pct"]["threshold"] is None  # 0.3 with trip 0.05 passes
    assert (corner["axes"]["policy.risk.safety.trip_drawdown"]["min"], corner["axes"]["scenario.parameters.drop_pct"]
            ["min"]) == (0.10, 0.3)  # fmt: skip
    assert corner["summary"].startswith("4 of 12 points fail: ")
    scattered = failure_region(sweep_grid(rows(lambda d, t, m: (d, t) in {(0.1, 0.05), (0.4, 0.15)})))
    assert scattered["pure"] is False and "not every point inside this box fails" in scattered["summary"]
    assert failure_region(sweep_grid(rows(lambda *a: False))) == {
        "points": 12, "failed": 0, "axes": {}, "pure": True, "summary": "no point fails",
    }  # fmt: skip


def test_failure_rates_and_the_matrix_of_the_heat_map() -> None:
    grid = sweep_grid(rows(lambda d, t, m: d >= 0.3 and t >= 0.10, modes=("a", "b")))
    rates = failure_rates(grid).set_index(["axis", "value"])
    assert rates.loc[("scenario.parameters.drop_pct", 0.4)].tolist() == [6, 4, pytest.approx(4 / 6)]
    assert rates.loc[("strategy.mode", "b"), "failed"] == 4
    assert heatmap_axes(grid) == ("scenario.parameters.drop_pct", "policy.risk.safety.trip_drawdown")
    matrix = failure_matrix(grid, "scenario.parameters.drop_pct", "policy.risk.safety.trip_drawdown")
    assert matrix.shape == (3, 4)
    assert matrix.loc[0.10, 0.3] == 1.0 and matrix.loc[0.05, 0.4] == 0.0
    loss = failure_matrix(grid, "scenario.parameters.drop_pct", "policy.risk.safety.trip_drawdown", "loss_pct")
    assert loss.loc[0.15, 0.2] == pytest.approx(0.03)
    markdown = sweep_heatmap_markdown(grid, "s", metric="loss_pct")
    png = base64.b64decode(markdown.split("base64,")[1].rstrip(")"))
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5_000


def test_points_run_end_to_end_and_a_tighter_limit_fails_the_deeper_crashes(tmp_path: Path) -> None:
    spec = tmp_path / "s.yaml"
    spec.write_text(
        "sweep: t\nbase: BTC Flash Crash 2021\nfixed:\n  scenario.expect.max_stress_drawdown_pct: 0.08\n"
        "grid:\n  scenario.parameters.drop_pct: [0.1, 0.4]\n  policy.risk.stop_loss.pct: [0.10]\n"
    )
    points = expand_sweep(load_sweep(spec), load_packs(ROOT / "data" / "stress_packs"), strategy="trend",
                          policy=TradingPolicy())  # fmt: skip
    bars = load_bars(sorted((ROOT / "data" / "bars").glob("BTCUSDT-*")))
    out = run_points(points, lambda symbols: bars, lambda p: p.sim_config(SimConfig()),
                     lambda p: p.trading_policy(TradingPolicy()), samples=200, seed=1)  # fmt: skip
    assert set(out) == {p.key for p in points}
    table = pd.concat(out.values(), ignore_index=True)
    assert list(table.columns) == list(POINT_COLUMNS)
    grid = sweep_grid(table).set_index("scenario.parameters.drop_pct")
    assert grid.loc[0.1, "outcome"] == "pass" and grid.loc[0.4, "outcome"] == "fail"
    assert "max_stress_drawdown_pct" in grid.loc[0.4, "failed"]
    assert grid.loc[0.4, "stress_drawdown_pct"] > 0.08 >= grid.loc[0.1, "stress_drawdown_pct"]
    assert (grid["mc_return_p5"] <= grid["mc_return_p50"]).all()
    assert (grid["mc_return_p50"] <= grid["mc_return_p95"]).all()
    again = run_points(points[:1], lambda symbols: bars, lambda p: p.sim_config(SimConfig()),
                       lambda p: p.trading_policy(TradingPolicy()), samples=200, seed=1)  # fmt: skip
    pd.testing.assert_frame_equal(again[points[0].key], out[points[0].key])
