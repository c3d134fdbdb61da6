"""Simulation results on disk: one folder per (kind, scenario) with a Parquet file per table.

The Dagster assets store the result record through the IO manager; the curves, trades, fills and
the event log go here, so that the divergence report and later stages read them without re-running.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from stress_pipeline.parquet_store import read_parquet, write_parquet_atomic
from stress_pipeline.simulation.result import SimResult

TABLES = ("trades", "fills", "equity", "events")


def result_dir(storage_dir: Path, kind: str, key: str) -> Path:
    return storage_dir / "simulations" / kind / key


def save_result(result: SimResult, directory: Path) -> Path:
    """Write every table of ``result`` (atomically, each) and its metrics as JSON."""
    directory.mkdir(parents=True, exist_ok=True)
    for name in TABLES:
        table = getattr(result, name)
        if table is None:
            (directory / f"{name}.parquet").unlink(missing_ok=True)
            continue
        frame = table.reset_index() if name == "equity" else table
        write_parquet_atomic(frame, directory / f"{name}.parquet")
    meta = {"kind": result.kind, "scenario_name": result.scenario_name, "metrics": result.metrics}
    tmp = directory / "result.json.tmp"
    tmp.write_text(json.dumps(meta, default=str))
    tmp.replace(directory / "result.json")
    return directory


def load_result(directory: Path) -> SimResult:
    if not (directory / "result.json").exists():
        raise FileNotFoundError(f"no simulation result in {directory}")
    meta = json.loads((directory / "result.json").read_text())
    tables: dict[str, pd.DataFrame | None] = {}
    for name in TABLES:
        path = directory / f"{name}.parquet"
        tables[name] = read_parquet(path) if path.exists() else None
    equity = tables["equity"]
    if equity is not None and "ts" in equity.columns:
        equity = equity.set_index("ts")
    return SimResult(
        kind=meta["kind"],
        scenario_name=meta["scenario_name"],
        trades=tables["trades"],
        fills=tables["fills"],
        equity=equity,
        metrics=meta["metrics"],
        events=tables["events"],
    )


def result_pairs(storage_dir: Path) -> list[tuple[str, SimResult, SimResult]]:
    """(scenario key, backtest, paper) for every scenario with both results stored."""
    base = storage_dir / "simulations"
    if not (base / "paper").is_dir():
        return []
    pairs = []
    for key in sorted(p.name for p in (base / "paper").iterdir() if p.is_dir()):
        try:
            pairs.append((key, load_result(result_dir(storage_dir, "backtest", key)),
                          load_result(result_dir(storage_dir, "paper", key))))
        except FileNotFoundError:
            continue
    return pairs
