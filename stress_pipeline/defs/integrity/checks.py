"""The reconciliation check: positions equal exactly, cash within $1, no fill lost or duplicated."""

import dagster as dg

from stress_pipeline.defs.integrity.assets import portfolio_reconciliation
from stress_pipeline.defs.partitions import scenarios_partitions

RECONCILIATION_CLEAN = "reconciliation_clean"


@dg.asset_check(
    asset=portfolio_reconciliation,
    name=RECONCILIATION_CLEAN,
    partitions_def=scenarios_partitions,
    required_resource_keys={"parquet_io_manager"},
    description=(
        "Exchange truth, the PostgreSQL ledger replay and the Redis snapshot agree: positions exactly, cash "
        "within $1, every exchange fill in the ledger exactly once."
    ),
)
def reconciliation_clean(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    io_manager = context.resources.parquet_io_manager
    rows = {key: io_manager.load_partition(portfolio_reconciliation.key, key).iloc[0] for key in context.partition_keys}
    failed = sorted(key for key, row in rows.items() if not bool(row["passed"]))
    return dg.AssetCheckResult(
        passed=not failed,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "scenarios_checked": dg.MetadataValue.int(len(rows)),
            "failed_scenarios": dg.MetadataValue.json(failed),
            "buffered": dg.MetadataValue.json(
                {key: {"postgres": int(r["buffered_postgres"]), "redis": int(r["buffered_redis"])}
                 for key, r in rows.items() if r["buffered_postgres"] or r["buffered_redis"]}
            ),
        },
    )
