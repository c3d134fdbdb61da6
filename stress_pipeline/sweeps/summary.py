"""Running sweep points and summarising a sweep: the grid of verdicts and key metrics, the region where
the system fails, and the heat map of the failure rate over two axes.

:func:`run_points` runs what :func:`~stress_pipeline.verdicts.api.run_stress_test` runs (the baseline
paper run, the anchor, the stressed bars, the backtest and the paper run, the verdict) for each point,
with the point's strategy parameters and policy knobs, and reuses one baseline run per distinct
(symbols, system, policy): a sweep over scenario parameters alone runs its baseline once. Each point
gives one row of :data:`POINT_COLUMNS`, with the trade-resampling bands of its paper run.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping

import numpy as np
import pandas as pd

from stress_pipeline.scenarios.arrays import BarArrays
from stress_pipeline.scenarios.stress_run import stress_scenario
from stress_pipeline.simulation.scenario_sims import simulate_scenario
from stress_pipeline.sweeps.robustness import run_bands
from stress_pipeline.sweeps.spec import SweepPoint
from stress_pipeline.verdicts.anchor import anchor_scenario, baseline_run
from stress_pipeline.verdicts.judge import judge_scenario

#: The paper run's figures a summary row carries (its record's keys), then the verdict window's.
RECORD_FIGURES = ("total_pnl", "total_pnl_pct", "max_drawdown", "sharpe_ratio", "total_trades", "emergency_stops")
WINDOW_FIGURES = ("stress_drawdown_pct", "loss_pct", "recovery_s", "ess_trips", "stop_losses")
BAND_FIGURES = ("mc_return_p5", "mc_return_p50", "mc_return_p95", "mc_drawdown_p95", "mc_sharpe_p5")
POINT_COLUMNS = (
    "key", "sweep", "base", "values", "outcome", "failed", *RECORD_FIGURES, *WINDOW_FIGURES, *BAND_FIGURES,
)  # fmt: skip


def run_points(
    points: Iterable[SweepPoint], bars_for: Callable[[tuple[str, ...]], pd.DataFrame | BarArrays],
    config_for: Callable[[SweepPoint], object], policy_for: Callable[[SweepPoint], object], *,
    samples: int = 500, seed: int = 0,
) -> dict[str, pd.DataFrame]:  # fmt: skip
    """``{point key: one-row table}`` for each point. ``bars_for(symbols)``: the unstressed bars;
    ``config_for(point)``: its ``SimConfig``; ``policy_for(point)``: its ``TradingPolicy``."""
    baselines: dict[str, object] = {}
    arrays: dict[tuple[str, ...], BarArrays] = {}
    out = {}
    for point in points:
        symbols = tuple(point.scenario.symbols)
        if symbols not in arrays:
            bars = bars_for(symbols)
            arrays[symbols] = bars if isinstance(bars, BarArrays) else BarArrays.from_frame(bars)
        config, policy = config_for(point), policy_for(point)
        system = json.dumps([symbols, config.model_dump(mode="json"), policy.model_dump(mode="json")], sort_keys=True)
        if system not in baselines:
            baselines[system] = baseline_run(symbols, arrays[symbols], config, policy)
        baseline = baselines[system]
        out[point.key] = run_point(point, arrays[symbols], config, policy, baseline, samples=samples, seed=seed)
    return out


def run_point(point: SweepPoint, bars: BarArrays, config, policy, baseline, *, samples: int, seed: int) -> pd.DataFrame:
    """One point's row: its verdict, the paper run's figures and its trade-resampling bands."""
    scenario, _ = anchor_scenario(point.scenario, baseline)
    stressed = stress_scenario(scenario, bars).stressed
    backtest = simulate_scenario("backtest", stressed, scenario, config, policy)
    paper = simulate_scenario("paper", stressed, scenario, config, policy)
    verdict = judge_scenario(scenario, stressed, paper, backtest, baseline, policy, key=point.key)
    figures = verdict.figures_table().set_index("figure")["stressed"]
    bands = run_bands(paper, samples=samples, seed=seed).table
    row = {
        "key": point.key, "sweep": point.sweep, "base": point.base,
        "values": json.dumps(dict(point.values), sort_keys=True),
        "outcome": verdict.outcome, "failed": "; ".join(verdict.failed),
        **{name: float(paper.metrics.get(name) or 0.0) for name in RECORD_FIGURES},
        **{name: float(figures.get(name, np.nan)) for name in WINDOW_FIGURES},
        "mc_return_p5": bands.loc["total_return", "p5"], "mc_return_p50": bands.loc["total_return", "p50"],
        "mc_return_p95": bands.loc["total_return", "p95"], "mc_drawdown_p95": bands.loc["max_drawdown", "p95"],
        "mc_sharpe_p5": bands.loc["sharpe", "p5"],
    }  # fmt: skip
    return pd.DataFrame([row], columns=list(POINT_COLUMNS))


# -------------------------------------------------------------------------------------- summaries


def sweep_grid(rows: pd.DataFrame) -> pd.DataFrame:
    """The rows of one sweep with one column per axis (from ``values``), sorted by the axes."""
    if rows["sweep"].nunique() > 1:
        raise ValueError(f"sweep_grid: rows of several sweeps ({', '.join(sorted(rows['sweep'].unique()))})")
    values = pd.DataFrame([json.loads(v) for v in rows["values"]], index=rows.index)
    axes = sorted(values.columns)
    grid = pd.concat([values[axes], rows.drop(columns="values")], axis=1)
    return grid.sort_values(axes, kind="stable").reset_index(drop=True) if axes else grid


def axes_of(grid: pd.DataFrame) -> list[str]:
    """The columns that vary over the sweep (a ``fixed`` path takes one value everywhere: not an axis)."""
    return [
        c for c in grid.columns
        if c.split(".", 1)[0] in ("scenario", "strategy", "policy") and grid[c].nunique(dropna=False) > 1
    ]  # fmt: skip


def failure_rates(grid: pd.DataFrame) -> pd.DataFrame:
    """Per axis and value: the points, how many failed, and the share."""
    rows = []
    failed = grid["outcome"] == "fail"
    for axis in axes_of(grid):
        counts = failed.groupby(grid[axis]).agg(["size", "sum"])
        rows.extend(
            {"axis": axis, "value": value, "points": int(n), "failed": int(k), "rate": k / n}
            for value, (n, k) in counts.iterrows()
        )
    return pd.DataFrame(rows, columns=["axis", "value", "points", "failed", "rate"])


def failure_region(grid: pd.DataFrame) -> dict[str, object]:
    """Where the system fails: the points that failed, per axis the range (numbers) or the values of the
    failing points, and whether that box is pure (every point inside it fails). Per numeric axis,
    ``threshold`` is the value from which every point fails, with none failing below it (or above it:
    ``direction``), when the failures split so; otherwise None."""
    axes = axes_of(grid)
    failed = (grid["outcome"] == "fail").to_numpy()
    region: dict[str, object] = {"points": len(grid), "failed": int(failed.sum()), "axes": {}}
    if not failed.any():
        region.update(pure=True, summary="no point fails")
        return region
    inside = np.ones(len(grid), dtype=bool)
    for axis in axes:
        column = grid[axis]
        bad = column[failed]
        numeric = pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)
        if numeric:
            low, high = float(bad.min()), float(bad.max())
            inside &= column.between(low, high).to_numpy()
            entry: dict[str, object] = {"min": low, "max": high, **_threshold(column, failed)}
        else:
            values = sorted(set(bad.tolist()), key=str)
            inside &= column.isin(values).to_numpy()
            entry = {"values": values}
        region["axes"][axis] = entry
    region["pure"] = bool((failed == inside).all())
    region["summary"] = describe_region(region)
    return region


def _threshold(column: pd.Series, failed: np.ndarray) -> dict[str, object]:
    values = column.to_numpy(dtype=np.float64)
    for direction, edge, beyond in (
        ("at_or_above", values[failed].min(), values >= values[failed].min()),
        ("at_or_below", values[failed].max(), values <= values[failed].max()),
    ):
        if (failed == beyond).all():
            return {"threshold": float(edge), "direction": direction}
    return {"threshold": None, "direction": None}


def describe_region(region: Mapping[str, object]) -> str:
    """One line: how many points fail and, per axis, where."""
    parts = []
    for axis, entry in region["axes"].items():
        if entry.get("threshold") is not None:
            sign = ">=" if entry["direction"] == "at_or_above" else "<="
            parts.append(f"every point with {axis} {sign} {entry['threshold']:g} fails, none other")
        elif "min" in entry and entry["min"] == entry["max"]:
            parts.append(f"{axis} = {entry['min']:g}")
        elif "min" in entry:
            parts.append(f"{axis} in [{entry['min']:g}, {entry['max']:g}]")
        else:
            parts.append(f"{axis} in {entry['values']}")
    head = f"{region['failed']} of {region['points']} points fail"
    shape = "" if region.get("pure") else " (not every point inside this box fails)"
    return head + (": " + "; ".join(parts) if parts else "") + shape


def heatmap_axes(grid: pd.DataFrame) -> tuple[str | None, str | None]:
    """The two axes with the most distinct values (x first), for the heat map."""
    axes = sorted(axes_of(grid), key=lambda a: (-grid[a].nunique(), a))
    return (axes[0] if axes else None), (axes[1] if len(axes) > 1 else None)


def failure_matrix(grid: pd.DataFrame, x: str, y: str | None, value: str = "fail") -> pd.DataFrame:
    """Rows: ``y`` values, columns: ``x`` values; each cell the share of failing points (``value``
    "fail") or the mean of a metric column, over the other axes."""
    column = (grid["outcome"] == "fail").astype(float) if value == "fail" else grid[value].astype(float)
    frame = pd.DataFrame({"x": grid[x], "y": grid[y] if y else "all", "v": column})
    return frame.pivot_table(index="y", columns="x", values="v", aggfunc="mean").sort_index()
