"""``run_stress_test``: a custom scenario on the user's bars and system, judged in one call.

It runs what the pipeline's assets run, in the same order and through the same functions: the
baseline paper run of the scenario's symbols (:func:`~stress_pipeline.verdicts.anchor.baseline_run`),
the anchor of the window if any, the scenario applied to the bars
(:func:`~stress_pipeline.scenarios.stress_run.stress_scenario`), the backtest and the paper run
(:func:`~stress_pipeline.simulation.scenario_sims.simulate_scenario`) and the verdict
(:func:`~stress_pipeline.verdicts.judge.judge_scenario`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd
from pydantic import ValidationError

from stress_pipeline.scenarios.arrays import BarArrays
from stress_pipeline.scenarios.expect import check_expect
from stress_pipeline.scenarios.model import SCENARIO_ADAPTER
from stress_pipeline.scenarios.stress_run import stress_scenario
from stress_pipeline.simulation.config import SimConfig
from stress_pipeline.simulation.paper import as_policy
from stress_pipeline.simulation.result import SimResult
from stress_pipeline.simulation.scenario_sims import simulate_scenario
from stress_pipeline.verdicts.anchor import Anchor, anchor_scenario, baseline_run
from stress_pipeline.verdicts.judge import ScenarioVerdict, judge_scenario


@dataclass(frozen=True)
class StressTestResult:
    """``verdict``: pass, fail or not_exercised; ``failed``: the detail of every failed criterion;
    ``table``: the verdict rows (``scenario_verdicts`` schema); ``metrics``: each figure of the stressed
    run, the baseline's over the same window and the impact; ``curves``: equity, drawdown and gross
    exposure of the stressed and baseline paper runs per bar."""

    verdict: str
    failed: list[str]
    table: pd.DataFrame
    metrics: pd.DataFrame
    curves: pd.DataFrame
    details: ScenarioVerdict
    scenario: object
    anchor: Anchor | None
    paper: SimResult
    backtest: SimResult
    baseline: SimResult


def run_stress_test(scenario, bars, system=None, *, policy=None) -> StressTestResult:
    """Judge ``system`` on ``scenario`` applied to ``bars``.

    ``scenario``: a scenario model or a mapping as a stress pack writes it; ``bars``: canonical bars
    (a DataFrame with ts, symbol, open, high, low, close, volume, spread_bps); ``system``: a strategy
    name or ``package.module:callable`` import path, a :class:`SimConfig`, or a mapping of its fields;
    None for the default system. ``policy``: a ``TradingPolicy`` or a policy file (None: the
    default policy).
    """
    scenario = as_scenario(scenario)
    config = as_config(system)
    policy = as_policy(policy)
    arrays = bars if isinstance(bars, BarArrays) else BarArrays.from_frame(bars)
    baseline = baseline_run(scenario.symbols, arrays, config, policy)
    scenario, anchor = anchor_scenario(scenario, baseline)
    stressed = stress_scenario(scenario, arrays, config.calendar).stressed
    backtest = simulate_scenario("backtest", stressed, scenario, config, policy)
    paper = simulate_scenario("paper", stressed, scenario, config, policy)
    verdict = judge_scenario(scenario, stressed, paper, backtest, baseline, policy)
    return StressTestResult(
        verdict=verdict.outcome,
        failed=verdict.failed,
        table=verdict.table,
        metrics=verdict.figures_table(),
        curves=curves(paper, baseline),
        details=verdict,
        scenario=scenario,
        anchor=anchor,
        paper=paper,
        backtest=backtest,
        baseline=baseline,
    )


def as_scenario(scenario):
    """A scenario model from a model or a mapping; ValueError naming the field otherwise."""
    if not isinstance(scenario, Mapping):
        if not hasattr(scenario, "type") or not hasattr(scenario, "symbols"):
            raise TypeError(f"scenario: expected a scenario model or a mapping, got {type(scenario).__name__}")
        check_expect(scenario.expect)
        return scenario
    try:
        return SCENARIO_ADAPTER.validate_python(dict(scenario))
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(part) for part in error["loc"][1:]) or "scenario"
        raise ValueError(f"scenario field {field}: {error['msg'].removeprefix('Value error, ')}") from None


def as_config(system) -> SimConfig:
    """The simulation config of ``system`` (see :func:`run_stress_test`)."""
    if system is None:
        return SimConfig()
    if isinstance(system, SimConfig):
        return system
    if isinstance(system, str):
        return SimConfig(strategy=system)
    if isinstance(system, Mapping):
        return SimConfig(**dict(system))
    raise TypeError(f"system: expected a strategy name or import path, a SimConfig or a mapping, got {system!r}")


def curves(paper: SimResult, baseline: SimResult) -> pd.DataFrame:
    """Equity, drawdown and gross exposure of the stressed and the baseline paper runs, per bar."""
    columns = ["equity", "drawdown", "gross_exposure"]
    stressed = paper.equity[columns]
    base = baseline.equity[columns].reindex(stressed.index, method="ffill")
    return pd.concat([stressed, base.add_prefix("baseline_")], axis=1)
