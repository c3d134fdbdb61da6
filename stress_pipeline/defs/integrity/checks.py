"""The reconciliation check: positions equal exactly, cash within $1, no fill lost or duplicated."""

import dagster as dg

from stress_pipeline.defs.checks import Verdict, report_per_partition
from stress_pipeline.defs.integrity.assets import portfolio_reconciliation
from stress_pipeline.defs.io_manager import PartitionValues
from stress_pipeline.defs.partitions import scenarios_partitions

RECONCILIATION_CLEAN = "reconciliation_clean"


@dg.asset_check(
    asset=portfolio_reconciliation,
    name=RECONCILIATION_CLEAN,
    partitions_def=scenarios_partitions,
    description=(
        "Exchange truth, the PostgreSQL ledger replay and the Redis snapshot agree: positions exactly, cash "
        "within $1, every exchange fill in the ledger exactly once."
    ),
)
def reconciliation_clean(context: dg.AssetCheckExecutionContext, portfolio_reconciliation: PartitionValues) -> None:
    verdicts = {}
    for key in context.partition_keys:
        row = portfolio_reconciliation[key].iloc[0]
        verdicts[key] = Verdict(
            passed=bool(row["passed"]),
            metadata={
                "buffered_postgres": dg.MetadataValue.int(int(row["buffered_postgres"])),
                "buffered_redis": dg.MetadataValue.int(int(row["buffered_redis"])),
            },
        )
    report_per_partition(context, verdicts)
