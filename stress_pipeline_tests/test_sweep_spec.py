"""Sweep specs: the shipped example expands, keys are stable and order independent, samples are seeded,
and every kind of bad spec fails with one message naming the file, the line and the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from stress_pipeline.scenarios import load_packs
from stress_pipeline.simulation.config import SimConfig
from stress_pipeline.sweeps import SweepSpecError, expand_sweep, load_sweep, point_from_record
from stress_pipeline.trading.risk.policy import TradingPolicy

ROOT = Path(__file__).resolve().parents[1]
CATALOG = load_packs(ROOT / "data" / "stress_packs")

GRID = """\
sweep: crash grid
base: BTC Flash Crash 2021
grid:
  scenario.parameters.drop_pct: [0.1, 0.2, 0.3]
  strategy.band: [0.001, 0.003]
  policy.risk.safety.trip_drawdown: [0.05, 0.1]
"""


def spec(tmp_path: Path, text: str, name: str = "sweep.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def expand(path: Path):
    return expand_sweep(load_sweep(path), CATALOG, strategy="trend", policy=TradingPolicy())


def error_for(path: Path) -> SweepSpecError:
    with pytest.raises(SweepSpecError) as info:
        expand(path)
    return info.value


def test_the_shipped_grid_expands_into_every_combination() -> None:
    points = expand(ROOT / "data" / "sweeps" / "flash_crash_grid.yaml")
    assert len(points) == 5 * 3 * 3
    assert len({p.key for p in points}) == 45
    assert all(p.key.startswith("flash_crash_grid__") and len(p.key) == len("flash_crash_grid__") + 8 for p in points)
    drops = sorted({p.scenario.parameters.drop_pct for p in points})
    assert drops == [0.10, 0.20, 0.30, 0.40, 0.50]
    assert {p.scenario.type for p in points} == {"flash_crash"}
    assert {p.scenario.symbols for p in points} == {("BTCUSDT",)}
    assert [p.key for p in points] == sorted(p.key for p in points)


def test_a_point_carries_its_strategy_parameters_and_policy_knobs(tmp_path: Path) -> None:
    points = expand(spec(tmp_path, GRID))
    assert len(points) == 12
    point = next(p for p in points if p.values == {
        "scenario.parameters.drop_pct": 0.3, "strategy.band": 0.001, "policy.risk.safety.trip_drawdown": 0.05,
    })  # fmt: skip
    assert point.scenario.parameters.drop_pct == 0.3
    assert point.scenario.parameters.duration_bars == 5  # the base scenario's, unchanged
    config = point.sim_config(SimConfig(strategy_params={"fast": 120}))
    assert config.strategy == "trend" and config.strategy_params == {"fast": 120, "band": 0.001}
    policy = point.trading_policy(TradingPolicy())
    assert policy.risk.safety.trip_drawdown == 0.05
    assert policy.risk.safety.halt_drawdown == TradingPolicy().risk.safety.halt_drawdown
    again = point_from_record(point.record())
    assert again == point


def test_keys_are_stable_and_independent_of_the_order_of_axes_and_values(tmp_path: Path) -> None:
    first = {p.key: dict(p.values) for p in expand(spec(tmp_path, GRID, "a.yaml"))}
    shuffled = """\
sweep: crash grid
base: btc_flash_crash_2021
grid:
  policy.risk.safety.trip_drawdown: [0.10, 0.05]
  strategy.band: [0.003, 0.001]
  scenario.parameters.drop_pct: [0.3, 0.1, 0.2]
"""
    second = {p.key: dict(p.values) for p in expand(spec(tmp_path, shuffled, "b.yaml"))}
    assert first == second
    assert {p.key for p in expand(spec(tmp_path, GRID, "a.yaml"))} == set(first)
    renamed = GRID.replace("sweep: crash grid", "sweep: other")
    assert not set(first) & {p.key for p in expand(spec(tmp_path, renamed, "c.yaml"))}
    assert all(key.startswith("crash_grid__") for key in first)


def test_a_seeded_sample_draws_the_same_points_within_the_ranges(tmp_path: Path) -> None:
    text = """\
sweep: crash sample
base: BTC Flash Crash 2021
sample:
  points: 25
  seed: 7
  axes:
    scenario.parameters.drop_pct: [0.05, 0.5]
    strategy.fast: [60, 600]
    policy.risk.stop_loss.enabled: {choices: [true, false]}
"""
    points = expand(spec(tmp_path, text))
    again = expand(spec(tmp_path, text, "again.yaml"))
    assert [p.key for p in points] == [p.key for p in again]
    assert len(points) == 25
    drops = [p.values["scenario.parameters.drop_pct"] for p in points]
    fasts = [p.values["strategy.fast"] for p in points]
    assert all(0.05 <= d <= 0.5 for d in drops) and len(set(drops)) == 25
    assert all(isinstance(f, int) and 60 <= f <= 600 for f in fasts)
    assert {p.values["policy.risk.stop_loss.enabled"] for p in points} == {True, False}
    other = expand(spec(tmp_path, text.replace("seed: 7", "seed: 8"), "other.yaml"))
    assert {p.key for p in other} != {p.key for p in points}


@pytest.mark.parametrize(
    ("text", "line", "field", "problem"),
    [
        (GRID.replace("0.2, 0.3]", "1.5, 0.3]"), 4, "scenario.parameters.drop_pct",
         "Input should be less than 1 (got 1.5)"),
        (GRID.replace("0.05, 0.1]", "0.05, 0.4]"), 6, "policy.risk.safety.trip_drawdown",
         "halt_drawdown must be larger than trip_drawdown"),
        (GRID.replace("strategy.band: [0.001, 0.003]", "strategy.bnad: [0.001]"), 5, "strategy.bnad",
         "strategy 'trend' has no parameter(s) bnad"),
        (GRID.replace("[0.001, 0.003]", "[0.001, 1.5]"), 5, "strategy.band", "band must be in [0, 1)"),
        (GRID.replace("policy.risk.safety.trip_drawdown", "policy.risk.safety.trip"), 6, "policy.risk.safety.trip",
         "the policy has no such field"),
        (GRID.replace("BTC Flash Crash 2021", "No Such Crash"), 2, "base", "no scenario 'No Such Crash'"),
        (GRID.replace("scenario.parameters.drop_pct", "scenario.symbols"), 4, "scenario.symbols",
         "keeps the base scenario's symbols"),
        (GRID.replace("scenario.parameters.drop_pct", "drop_pct"), 4, "drop_pct", "an axis is scenario.<field>"),
        (GRID.replace("scenario.parameters.drop_pct", "scenario.parameters.dorp_pct"), 4,
         "scenario.parameters.dorp_pct", "unknown field"),
        (GRID + "sample: {points: 3, axes: {scenario.seed: [1, 9]}}\n", None, None, "give exactly one of grid, sample"),
        (GRID.replace("base:", "bsae:"), 2, "bsae", "unknown field"),
        (GRID.replace("[0.1, 0.2, 0.3]", "[]"), None, None, "list at least one value"),
        (GRID.replace("strategy.band: [0.001, 0.003]", "strategy.band: [0.001, 0.003"), 6, None, "not valid YAML"),
    ],
)
def test_a_bad_spec_names_the_file_line_and_field(tmp_path: Path, text: str, line, field, problem: str) -> None:
    path = spec(tmp_path, text)
    error = error_for(path)
    assert error.path == str(path)
    if line is not None:
        assert error.line == line, str(error)
    assert error.field == field, str(error)
    assert problem in str(error)
    assert str(error).startswith(str(path))


def test_a_sample_range_must_be_ordered_and_the_grid_bounded(tmp_path: Path) -> None:
    text = """\
sweep: s
base: BTC Flash Crash 2021
sample:
  points: 3
  axes:
    scenario.parameters.drop_pct: [0.5, 0.1]
"""
    error = error_for(spec(tmp_path, text))
    assert error.line == 6 and error.field == "sample.axes.scenario.parameters.drop_pct"
    assert "low <= high" in str(error)
    values = ", ".join(str(0.01 + i / 1000) for i in range(101))
    big = f"sweep: g\nbase: BTC Flash Crash 2021\ngrid:\n  scenario.parameters.drop_pct: [{values}]\n" + "".join(
        f"  scenario.faults.{i}: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\n" for i in range(2)
    )
    error = error_for(spec(tmp_path, big, "big.yaml"))
    assert error.line == 3 and error.field == "grid" and "10100 points" in str(error)


def test_a_seeded_sample_takes_fixed_paths(tmp_path: Path) -> None:
    text = """\
sweep: fixed sample
base: BTC Flash Crash 2021
fixed:
  scenario.expect.max_stress_drawdown_pct: 0.08
sample:
  points: 4
  axes:
    scenario.parameters.drop_pct: [0.05, 0.5]
"""
    points = expand(spec(tmp_path, text))
    assert len(points) == 4
    assert {p.scenario.expect["max_stress_drawdown_pct"] for p in points} == {0.08}
