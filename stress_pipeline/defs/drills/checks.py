"""The drills' checks: every criterion of a drill passed; the decision flood within the seeds' latency bar."""

import dagster as dg
import pandas as pd

from stress_pipeline.defs.checks import Verdict, report_per_partition
from stress_pipeline.defs.drills.assets import DRILLS_KEY, decision_flood
from stress_pipeline.defs.io_manager import PartitionValues
from stress_pipeline.defs.partitions import drills_partitions

SEED_P99_MS = 15.0


@dg.asset_check(
    asset=DRILLS_KEY, name="drill_criteria_met", partitions_def=drills_partitions,
    description="Every pass criterion of the drill was measured and met (not_exercised is not a pass).",
)  # fmt: skip
def drill_criteria_met(context: dg.AssetCheckExecutionContext, drills: PartitionValues) -> None:
    verdicts = {}
    for key in context.partition_keys:
        table = drills[key]
        missed = table[table["outcome"] != "pass"]
        verdicts[key] = Verdict(
            passed=bool(len(table)) and not len(missed),
            metadata={
                "criteria": dg.MetadataValue.int(len(table)),
                "missed": dg.MetadataValue.md(
                    missed[["criterion", "comparison", "threshold", "value", "outcome"]].to_markdown(index=False)
                    if len(missed) else "none"
                ),
            },
        )
    report_per_partition(context, verdicts)


@dg.asset_check(
    asset=decision_flood, name="decision_latency_p99",
    description=f"P99 decision latency, from the scheduled send time, within the seeds' {SEED_P99_MS:g} ms. A miss "
                "is a WARN: a finding about the system under test (and its machine), which the certification's "
                "decision_latency_p99_ms gate turns into NO-GO.",
)  # fmt: skip
def decision_latency_p99(decision_flood: pd.DataFrame) -> dg.AssetCheckResult:
    p99 = float(decision_flood["p99_ms"].iloc[0])
    return dg.AssetCheckResult(
        passed=p99 <= SEED_P99_MS,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"p99_ms": dg.MetadataValue.float(p99), "target_ms": dg.MetadataValue.float(SEED_P99_MS)},
    )
