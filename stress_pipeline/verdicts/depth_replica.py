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
   for seed 001, max drawdown <= 15%, flat after the crash, zero hard-limit breaches;
6. with a Redis URL, the decision path's latency during the replay (the file's ``decision``): at every
   tradable bar the order the system would send is put to the risk stack with its state in that Redis,
   open-loop at ``rate`` per second (``drills.decision_flood.run_replay_flood``); a P99 over
   ``p99_ms`` (seed 001: 15 ms) is a failed criterion ``decision_latency_p99_ms`` of the verdict.

Without bars, the file's ``bars`` block generates synthetic session bars (``market.synthetic``).
``python -m stress_pipeline.verdicts.depth_replica [file]`` prints the verdict table.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field

from stress_pipeline.book.schema import DenseBook
from stress_pipeline.drills.decision_flood import FloodResult, run_replay_flood
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
from stress_pipeline.verdicts.table import validate_verdict_table

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


class DecisionSpec(_Strict):
    rate: float = Field(default=1_000.0, gt=0, le=1_000_000)
    p99_ms: float = Field(default=15.0, gt=0)


class ReplicaSpec(_Strict):
    name: str
    bars: BarsSpec
    system: dict[str, Any] = Field(default_factory=dict)
    price: dict[str, Any]
    depth: dict[str, Any]
    book: BookSpec = BookSpec()
    expect: dict[str, Any] = Field(default_factory=dict)
    decision: DecisionSpec | None = None


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
    decisions: FloodResult | None = None  # the decision path during the replay (with a Redis URL)


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
                      policy=None, redis_url: str | None = None) -> DepthReplicaResult:  # fmt: skip
    """Run the replica (module docstring) on ``bars`` (None: the file's synthetic bars); with ``redis_url``
    and the file's ``decision``, the decision path's latency during the replay joins the verdict."""
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
    decisions = None
    if redis_url is not None and spec.decision is not None:
        decisions = run_replay_flood(redis_url, stressed, rate=spec.decision.rate)
        verdict = replace(verdict, table=_with_latency(verdict.table, decisions, spec.decision.p99_ms))
    return DepthReplicaResult(verdict.outcome, verdict.failed, verdict, stressed, books, paper, backtest, baseline,
                              decisions)  # fmt: skip


def _with_latency(table: pd.DataFrame, flood: FloodResult, limit_ms: float) -> pd.DataFrame:
    """The verdict table with the decision-latency criterion as one more row of the same scenario."""
    row = table.iloc[[0]].copy()
    ok = flood.p99_ms <= limit_ms
    row["criterion"] = "decision_latency_p99_ms"
    row["comparison"] = "<="
    row["threshold"] = float(limit_ms)
    row["value"] = float(flood.p99_ms)
    row["outcome"] = "pass" if ok else "fail"
    row["detail"] = (f"decision_latency_p99_ms: {flood.p99_ms:.3f} ms (limit <= {limit_ms:g} ms) over "
                     f"{flood.decisions:,} decisions at {flood.rate_per_s:,.0f}/s during the replay")  # fmt: skip
    row["source"] = "decision path (risk stack, state in Redis)"
    return validate_verdict_table(pd.concat([table, row], ignore_index=True))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stress_pipeline.verdicts.depth_replica")
    parser.add_argument("file", nargs="?", type=Path, default=DEFAULT_FILE, help="a replica file")
    parser.add_argument("--redis-url", help="measure the decision path during the replay against this Redis")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    result = run_depth_replica(args.file, redis_url=args.redis_url)
    columns = [c for c in ("criterion", "value", "threshold", "outcome", "detail") if c in result.details.table]
    with pd.option_context("display.width", 200, "display.max_colwidth", 120):
        print(result.details.table[columns].to_string(index=False))
    fills = result.paper.events[result.paper.events.kind == "fill"]
    print(f"verdict: {result.verdict}; {len(fills)} fills against the collapsing book")
    return 0 if result.verdict == "pass" else 1


if __name__ == "__main__":
    raise SystemExit(main())
