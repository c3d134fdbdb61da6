"""A documented crash replayed with its order book collapsing, judged by seed 001's criteria.

A replica file (``data/replicas/*.yaml``) names a price scenario (an ``episode_replica``: the shape
of the day), a ``depth_collapse`` placed on the same bars, the synthetic book's settings, the system
and the criteria (``expect``). :func:`run_depth_replica` runs what the pipeline runs for a scenario,
with the book in the middle:

1. the baseline paper run of the symbols on the unstressed bars (``verdicts.anchor.baseline_run``);
2. the price scenario applied to the bars (``stress_scenario``), then the depth collapse applied to
   those stressed bars (its spread widening on top of the replica's);
3. synthetic books from the stressed bars with the collapse on the depth scenario's window
   (``scenarios.depth_books.scenario_books``);
4. the paper run with fills walking those books (``run_paper(books=...)``) and the backtest;
5. the verdict (``verdicts.judge.judge_scenario``) of the price scenario with the file's ``expect``:
   for seed 001, max drawdown <= 15%, flat after the crash, zero hard-limit breaches.

Without bars, the file's ``bars`` block generates synthetic session bars (``market.synthetic``).
``python -m stress_pipeline.verdicts.depth_replica [file]`` prints the verdict table.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field

from stress_pipeline.book.schema import DenseBook
from stress_pipeline.market.synthetic import generate_bars
from stress_pipeline.scenarios.apply import run_scenario
from stress_pipeline.scenarios.arrays import BarArrays
from stress_pipeline.scenarios.depth_books import scenario_books
from stress_pipeline.scenarios.stress_run import stress_scenario
from stress_pipeline.simulation.backtest import resolve_strategy
from stress_pipeline.simulation.paper import as_policy, run_paper
from stress_pipeline.simulation.result import SimResult
from stress_pipeline.simulation.scenario_sims import simulate_scenario
from stress_pipeline.verdicts.anchor import baseline_run
from stress_pipeline.verdicts.api import as_config, as_scenario
from stress_pipeline.verdicts.judge import ScenarioVerdict, judge_scenario

DEFAULT_FILE = Path("data/replicas/nvda_2023_10_17_depth.yaml")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BarsSpec(_Strict):
    symbol: str
    start: str
    days: int = Field(ge=2, le=3_650)
    seed: int = Field(default=0, ge=0)
    calendar: str = "24/7"


class BookSpec(_Strict):
    levels: int = Field(default=20, ge=1, le=1_000)
    impact_k: float = Field(default=1.0, gt=0)
    noise: float = Field(default=0.25, ge=0)


class ReplicaSpec(_Strict):
    name: str
    bars: BarsSpec
    system: dict[str, Any] = Field(default_factory=dict)
    price: dict[str, Any]
    depth: dict[str, Any]
    book: BookSpec = BookSpec()
    expect: dict[str, Any] = Field(default_factory=dict)


@dataclass(frozen=True)
class DepthReplicaResult:
    verdict: str  # pass, fail, not_exercised
    failed: list[str]
    details: ScenarioVerdict
    stressed: pd.DataFrame
    books: dict[str, DenseBook]
    paper: SimResult
    backtest: SimResult
    baseline: SimResult


def load_replica(path: str | Path) -> ReplicaSpec:
    """A replica file, validated (a ValueError names the file and the field)."""
    path = Path(path)
    try:
        return ReplicaSpec.model_validate(yaml.safe_load(path.read_text()))
    except (yaml.YAMLError, OSError) as exc:
        raise ValueError(f"{path}: {exc}") from None
    except Exception as exc:  # pydantic's ValidationError
        errors = getattr(exc, "errors", None)
        if errors is None:
            raise
        first = errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise ValueError(f"{path}: field {field}: {first['msg']}") from None


def run_depth_replica(spec: ReplicaSpec | str | Path, bars: pd.DataFrame | None = None, *,
                      policy=None) -> DepthReplicaResult:  # fmt: skip
    """Run the replica (module docstring) on ``bars`` (None: the file's synthetic bars)."""
    spec = spec if isinstance(spec, ReplicaSpec) else load_replica(spec)
    symbols = [spec.bars.symbol]
    common = {"symbols": symbols, "seed": spec.bars.seed}
    price = as_scenario({"name": spec.name, **common, **spec.price, "expect": spec.expect})
    depth = as_scenario({"name": f"{spec.name} depth", **common, **spec.depth})
    if depth.type != "depth_collapse":
        raise ValueError(f"replica {spec.name}: depth must be a depth_collapse scenario, not {depth.type}")
    config, policy = as_config(spec.system), as_policy(policy)
    if bars is None:
        b = spec.bars
        bars = generate_bars([b.symbol], start=b.start, days=b.days, seed=b.seed, calendar=b.calendar)
    arrays = BarArrays.from_frame(bars)
    baseline = baseline_run(price.symbols, arrays, config, policy)
    replica = stress_scenario(price, arrays, config.calendar)
    collapsed = run_scenario(depth, replica.stressed, config.calendar)
    books = scenario_books(depth, collapsed, levels=spec.book.levels, impact_k=spec.book.impact_k,
                           noise=spec.book.noise, calendar=config.calendar)  # fmt: skip
    stressed = collapsed.bars.to_frame()
    paper = run_paper(stressed, resolve_strategy(None, config), config, policy=policy, scenario_name=price.name,
                      books=books)  # fmt: skip
    backtest = simulate_scenario("backtest", stressed, price, config, policy)
    verdict = judge_scenario(price, stressed, paper, backtest, baseline, policy)
    return DepthReplicaResult(verdict.outcome, verdict.failed, verdict, stressed, books, paper, backtest, baseline)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    result = run_depth_replica(Path(args[0]) if args else DEFAULT_FILE)
    columns = [c for c in ("criterion", "value", "threshold", "outcome", "detail") if c in result.details.table]
    with pd.option_context("display.width", 200, "display.max_colwidth", 120):
        print(result.details.table[columns].to_string(index=False))
    fills = result.paper.events[result.paper.events.kind == "fill"]
    print(f"verdict: {result.verdict}; {len(fills)} fills against the collapsing book")
    return 0 if result.verdict == "pass" else 1


if __name__ == "__main__":
    raise SystemExit(main())
