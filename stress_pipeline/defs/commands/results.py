"""A scenario's stored results, read through the IO managers the assets write with: nothing is recomputed.

``stored_results(paths, key)`` gathers the verdict (``scenario_verdict``'s partition: every criterion,
the failed ones), the backtest and paper metrics, the divergence table and the reconciliation row of
one scenario partition, and names the assets that were never materialised for it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import dagster as dg
import pandas as pd

from stress_pipeline.defs.io_manager import NotMaterialisedError, ParquetIOManager, SimResultIOManager
from stress_pipeline.paths import StoragePaths
from stress_pipeline.verdicts.table import scenario_outcomes

#: The scenario-partitioned assets the command reads, in the order it prints them.
RESULT_ASSETS = (
    "scenario_verdict", "backtest_results", "paper_results", "divergence_report", "portfolio_reconciliation",
)
_SIM_RESULTS = ("backtest_results", "paper_results")


@dataclass
class StoredResults:
    """What storage holds for one scenario partition; ``missing`` lists the assets never materialised."""

    key: str
    name: str
    verdict: dict[str, Any] | None = None
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    divergence: list[dict[str, Any]] | None = None
    reconciliation: dict[str, Any] | None = None
    paths: dict[str, str] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.missing

    def as_dict(self) -> dict[str, Any]:
        return {"key": self.key, "name": self.name, "complete": self.complete, "missing": self.missing,
                "verdict": self.verdict, "metrics": self.metrics, "divergence": self.divergence,
                "reconciliation": self.reconciliation, "paths": self.paths}  # fmt: skip


def stored_results(paths: StoragePaths, key: str, name: str) -> StoredResults:
    """The stored results of scenario partition ``key`` (``name``: the scenario's name, for the output)."""
    tables, results = ParquetIOManager(paths), SimResultIOManager(paths)
    out = StoredResults(key=key, name=name)
    for asset in RESULT_ASSETS:
        manager = results if asset in _SIM_RESULTS else tables
        asset_key = dg.AssetKey(asset)
        try:
            value = manager.load_partition(asset_key, key)
        except NotMaterialisedError:
            out.missing.append(asset)
            continue
        where = paths.result_file((asset,), key) if manager is results else paths.asset_file((asset,), key)
        out.paths[asset] = str(where)
        if asset == "scenario_verdict":
            out.verdict = _verdict(value)
        elif asset in _SIM_RESULTS:
            out.metrics[asset.removesuffix("_results")] = _plain(dict(value.metrics))
        elif asset == "divergence_report":
            out.divergence = _records(value.drop(columns="scenario", errors="ignore"))
        else:
            rows = _records(value)
            out.reconciliation = rows[0] if rows else {}
    return out


def _verdict(table: pd.DataFrame) -> dict[str, Any]:
    """The scenario's outcome (pass, fail, not_exercised), its failed criteria and every criterion."""
    outcome = scenario_outcomes(table).iloc[0]
    failed = table[table["outcome"] == "fail"]
    criteria = table[["criterion", "comparison", "threshold", "value", "outcome", "detail"]]
    return {"outcome": str(outcome["outcome"]),
            "failed": [f"{row.criterion}: {row.detail}" for row in failed.itertuples()],
            "criteria": _records(criteria)}  # fmt: skip


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return json.loads(frame.to_json(orient="records", date_format="iso"))


def _plain(values: dict[str, Any]) -> dict[str, Any]:
    """Metrics as JSON values: numbers as floats or ints, NaN as None (said, not hidden: JSON has no NaN)."""
    out: dict[str, Any] = {}
    for name, value in values.items():
        if value is None or isinstance(value, bool | int | str):
            out[name] = value
        else:
            try:
                number = float(value)
            except (TypeError, ValueError):
                out[name] = str(value)
                continue
            out[name] = None if math.isnan(number) else number
    return out


def results_text(found: StoredResults) -> str:
    """The results as a person reads them."""
    lines = [f"scenario {found.name} (partition {found.key})"]
    if found.verdict is not None:
        lines.append(f"verdict: {found.verdict['outcome'].upper()}")
        lines += [f"  failed: {line}" for line in found.verdict["failed"]]
        for row in found.verdict["criteria"]:
            lines.append(f"  {row['criterion']:28} {row['outcome']:14} value {_num(row['value'])} "
                         f"{row['comparison']} {_num(row['threshold'])}")  # fmt: skip
    for kind, metrics in found.metrics.items():
        shown = ", ".join(f"{k}={_num(metrics[k])}" for k in ("total_pnl", "total_pnl_pct", "max_drawdown",
                          "sharpe_ratio", "profit_factor", "winrate", "total_trades") if k in metrics)  # fmt: skip
        lines.append(f"{kind}: {shown}")
    if found.divergence is not None:
        lines.append("divergence (backtest vs paper):")
        for row in found.divergence:
            lines.append("  " + ", ".join(f"{k}={_num(v)}" for k, v in row.items()))
    if found.reconciliation is not None:
        rec = found.reconciliation
        lines.append(f"reconciliation: {'passed' if rec.get('passed') else 'FAILED'}, "
                     + ", ".join(f"{k}={_num(v)}" for k, v in rec.items() if k != "passed"))  # fmt: skip
    if found.missing:
        lines.append(f"not materialised: {', '.join(found.missing)} "
                     f"(run: stress-pipeline run --scenario {found.key})")  # fmt: skip
    return "\n".join(lines)


def _num(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1e4 else f"{value:,.2f}"
    return "-" if value is None else str(value)
