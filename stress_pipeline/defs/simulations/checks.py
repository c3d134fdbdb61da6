"""Checks on the simulations: the divergence limit, the optimism bias, the lookahead guard.

Each judges what the assets stored; none re-runs a simulation or recomputes a signal.
"""

import dagster as dg

from stress_pipeline.defs.checks import Verdict, report_per_partition
from stress_pipeline.defs.io_manager import NotMaterialisedError, PartitionValues
from stress_pipeline.defs.partitions import scenarios_partitions
from stress_pipeline.defs.resources import StressResource
from stress_pipeline.defs.simulations.assets import backtest_results, divergence_report
from stress_pipeline.simulation.divergence import DIVERGENCE_LIMIT, bias_check

DIVERGENCE_WITHIN_LIMIT = "divergence_within_limit"
PAPER_NOT_OPTIMISTIC = "paper_not_optimistic"
LOOKAHEAD_GUARD = "lookahead_guard"


@dg.asset_check(
    asset=divergence_report,
    name=DIVERGENCE_WITHIN_LIMIT,
    partitions_def=scenarios_partitions,
    description=(
        f"Every metric's |paper - backtest| / max(|backtest|, floor) is under {DIVERGENCE_LIMIT:.0%}. A failure is "
        "a WARN, not an ERROR: the gap is a finding about the trading system (its risk stack, its costs), and "
        "divergence_report's attribution says which part of it comes from where."
    ),
)
def divergence_within_limit(context: dg.AssetCheckExecutionContext, divergence_report: PartitionValues) -> None:
    verdicts = {}
    for key in context.partition_keys:
        table = divergence_report[key]
        failing = table.loc[~table["passed"].astype(bool), "metric"].tolist()
        verdicts[key] = Verdict(
            passed=not failing,
            metadata={"limit": dg.MetadataValue.float(DIVERGENCE_LIMIT), "failing_metrics": failing},
        )
    report_per_partition(context, verdicts, severity=dg.AssetCheckSeverity.WARN)


@dg.asset_check(
    asset=divergence_report,
    name=PAPER_NOT_OPTIMISTIC,
    description=(
        "Across every scenario of the catalog, the paper run does not beat its backtest systematically "
        "(one-sided sign test); if it did, the simulation would be optimistic."
    ),
)
def paper_not_optimistic(
    stress: StressResource, divergence_report: PartitionValues
) -> dg.AssetCheckResult:
    pairs, missing = [], []
    for key in divergence_report:
        try:
            table = divergence_report[key]
        except NotMaterialisedError:
            missing.append(key)
            continue
        pnl = table.loc[table["metric"] == "total_pnl"].iloc[0]
        pairs.append((float(pnl["backtest"]), float(pnl["paper"])))
    report = bias_check(pairs, initial_capital=stress.initial_capital)
    return dg.AssetCheckResult(
        passed=report.passed,
        severity=dg.AssetCheckSeverity.ERROR,
        description=report.reason,
        metadata={
            "scenarios": dg.MetadataValue.int(report.scenarios),
            "paper_better": dg.MetadataValue.int(report.paper_better),
            "p_value": dg.MetadataValue.float(report.p_value),
            "reason": dg.MetadataValue.text(report.reason),
            "not_materialised": dg.MetadataValue.json(missing),
        },
    )


@dg.asset_check(
    asset=backtest_results,
    name=LOOKAHEAD_GUARD,
    partitions_def=scenarios_partitions,
    blocking=True,
    description=(
        "The strategy's target weights (what the simulations trade) recomputed on history truncated at sampled "
        "cut points equal the full-history weights up to each cut: no value depends on the future. Computed "
        "before each simulation, which refuses to produce results when it fails; judged here on the stored "
        "backtest (blocking)."
    ),
)
def lookahead_guard(context: dg.AssetCheckExecutionContext, backtest_results: PartitionValues) -> None:
    verdicts = {}
    for key in context.partition_keys:
        report = backtest_results[key].details.get("lookahead")
        if report is None:
            verdicts[key] = Verdict(passed=False, description="the backtest result carries no lookahead report")
            continue
        verdicts[key] = Verdict(
            passed=bool(report["passed"]),
            description=str(report["summary"]),
            metadata={
                "strategy": dg.MetadataValue.text(str(report["strategy"])),
                "cut_points": dg.MetadataValue.int(int(report["cuts"])),
                "violations": dg.MetadataValue.json(list(report["violations"])),
            },
        )
    report_per_partition(context, verdicts)
