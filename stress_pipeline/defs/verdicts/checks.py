"""Checks on the verdicts: each scenario's verdict on its partition, and a table that covers them all.

A scenario that fails is a finding about the trading system, not a fault of the pipeline: its check
reports with severity WARN, so the certification downstream is still computed (and judges it).
"""

import dagster as dg
import pandas as pd

from stress_pipeline.defs.checks import Verdict, latest_metadata, report_per_partition
from stress_pipeline.defs.io_manager import PartitionValues
from stress_pipeline.defs.partitions import scenarios_partitions
from stress_pipeline.defs.verdicts.assets import scenario_verdict, scenario_verdicts
from stress_pipeline.verdicts.table import EXERCISED, scenario_outcomes

SCENARIO_VERDICT_PASSED = "scenario_verdict_passed"
SCENARIO_VERDICTS_COMPLETE = "scenario_verdicts_complete"
SCENARIO_VERDICTS_KEY = scenario_verdicts.key


@dg.asset_check(
    asset=scenario_verdict,
    name=SCENARIO_VERDICT_PASSED,
    partitions_def=scenarios_partitions,
    description=(
        "The scenario passes every criterion with the system exercised. A failure (with every failed criterion and "
        "its value) or a scenario that did not stress the system (not exercised: no position at the shock and no "
        "trade in the window) reports as a WARN: a finding about the system under test, which the certification "
        "judges."
    ),
)
def scenario_verdict_passed(context: dg.AssetCheckExecutionContext, scenario_verdict: PartitionValues) -> None:
    verdicts = {}
    for key in context.partition_keys:
        verdicts[key] = partition_verdict(scenario_verdict[key])
    report_per_partition(context, verdicts, severity=dg.AssetCheckSeverity.WARN)


def partition_verdict(table: pd.DataFrame) -> Verdict:
    """The check's verdict on one scenario's rows."""
    outcome = scenario_outcomes(table).iloc[0]
    if outcome["outcome"] == "fail":
        description = f"FAIL: {outcome['failed']}"
    elif outcome["outcome"] == "not_exercised":
        description = "NOT EXERCISED: " + "; ".join(table.loc[table["criterion"] == EXERCISED, "detail"])
    else:
        description = None
    return Verdict(
        passed=outcome["outcome"] == "pass",
        description=description,
        metadata={
            "outcome": dg.MetadataValue.text(str(outcome["outcome"])),
            "failed_criteria": dg.MetadataValue.json(table.loc[table["outcome"] == "fail", "criterion"].tolist()),
        },
    )


@dg.asset_check(
    asset=scenario_verdicts,
    name=SCENARIO_VERDICTS_COMPLETE,
    description=(
        "The verdict table covers every scenario partition. A run of some scenarios leaves the others without a "
        "verdict: a WARN naming them (the certification then lacks their evidence), not a pipeline failure."
    ),
)
def scenario_verdicts_complete(
    context: dg.AssetCheckExecutionContext, scenario_verdicts: pd.DataFrame
) -> dg.AssetCheckResult:
    missing = list(latest_metadata(context.instance, SCENARIO_VERDICTS_KEY).get("missing") or [])
    outcomes = scenario_outcomes(scenario_verdicts)
    return dg.AssetCheckResult(
        passed=not missing,
        severity=dg.AssetCheckSeverity.WARN,
        description=f"no verdict for {', '.join(missing)}" if missing else None,
        metadata={
            "scenarios": dg.MetadataValue.int(len(outcomes)),
            "not_exercised": dg.MetadataValue.int(int((outcomes["outcome"] == "not_exercised").sum())),
            "missing": dg.MetadataValue.json(missing),
        },
    )
