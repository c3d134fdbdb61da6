"""Checks on the simulations: the divergence limit, the optimism bias, the lookahead guard."""

import dagster as dg
import pandas as pd

from stress_pipeline.defs.partitions import scenarios_partitions
from stress_pipeline.defs.simulations.assets import backtest_results, divergence_report, load_scenario_bars
from stress_pipeline.settings import get_settings
from stress_pipeline.simulation.divergence import DIVERGENCE_LIMIT, bias_check
from stress_pipeline.simulation.scenario_sims import paths_of
from stress_pipeline.simulation.storage import result_pairs
from stress_pipeline.trading import check_lookahead, get_strategy

DIVERGENCE_WITHIN_LIMIT = "divergence_within_limit"
PAPER_NOT_OPTIMISTIC = "paper_not_optimistic"
LOOKAHEAD_GUARD = "lookahead_guard"
RESOURCES = {"parquet_io_manager", "simulation"}


@dg.asset_check(
    asset=divergence_report,
    name=DIVERGENCE_WITHIN_LIMIT,
    partitions_def=scenarios_partitions,
    required_resource_keys={"parquet_io_manager"},
    description=(
        f"Every metric's |paper - backtest| / max(|backtest|, floor) is under {DIVERGENCE_LIMIT:.0%}. A failure is "
        "a WARN, not an ERROR: the gap is a finding about the trading system (its risk stack, its costs), and "
        "divergence_report's attribution says which part of it comes from where."
    ),
)
def divergence_within_limit(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    io_manager = context.resources.parquet_io_manager
    tables = {key: io_manager.load_partition(divergence_report.key, key) for key in context.partition_keys}
    failing = {
        key: table.loc[~table["passed"], "metric"].tolist()
        for key, table in tables.items()
        if not table["passed"].all()
    }
    return dg.AssetCheckResult(
        passed=not failing,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "limit": dg.MetadataValue.float(DIVERGENCE_LIMIT),
            "scenarios_checked": dg.MetadataValue.int(len(tables)),
            "failing": dg.MetadataValue.json(failing),
        },
    )


@dg.asset_check(
    asset=divergence_report,
    name=PAPER_NOT_OPTIMISTIC,
    required_resource_keys={"simulation"},
    description=(
        "Across every scenario simulated so far, the paper run does not beat its backtest systematically "
        "(one-sided sign test); if it did, the simulation would be optimistic."
    ),
)
def paper_not_optimistic(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    pairs = [
        (float(backtest.metrics["total_pnl"]), float(paper.metrics["total_pnl"]))
        for _, backtest, paper in result_pairs(get_settings().storage_dir)
    ]
    capital = context.resources.simulation.initial_capital
    report = bias_check(pairs, initial_capital=capital)
    return dg.AssetCheckResult(
        passed=report.passed,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "scenarios": dg.MetadataValue.int(report.scenarios),
            "paper_better": dg.MetadataValue.int(report.paper_better),
            "p_value": dg.MetadataValue.float(report.p_value),
            "reason": dg.MetadataValue.text(report.reason),
        },
    )


@dg.asset_check(
    asset=backtest_results,
    name=LOOKAHEAD_GUARD,
    partitions_def=scenarios_partitions,
    additional_ins={"scenario_catalog": dg.AssetIn("scenario_catalog")},
    required_resource_keys=RESOURCES,
    description=(
        "The strategy's signals recomputed on history truncated at sampled cut points equal the full-history "
        "signals up to each cut: no value depends on the future."
    ),
)
def lookahead_guard(context: dg.AssetCheckExecutionContext, scenario_catalog: pd.DataFrame) -> dg.AssetCheckResult:
    settings = context.resources.simulation
    strategy = get_strategy(settings.strategy, **dict(settings.strategy_params))
    violations: dict[str, list[str]] = {}
    for key in context.partition_keys:
        _, stressed = load_scenario_bars(context, scenario_catalog, key)
        report = check_lookahead(strategy, paths_of(stressed)[0])
        if not report.passed:
            violations[key] = [str(v) for v in report.violations[:5]]
    return dg.AssetCheckResult(
        passed=not violations,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "strategy": dg.MetadataValue.text(settings.strategy),
            "scenarios_checked": dg.MetadataValue.int(len(context.partition_keys)),
            "violations": dg.MetadataValue.json(violations),
        },
    )
