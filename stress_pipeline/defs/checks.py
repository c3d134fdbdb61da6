"""How a partitioned check reports: one evaluation per partition, in every kind of run.

A check step that covers several partitions (a single-run backfill over a sweep) would otherwise
record one evaluation without a partition, which the UI shows as "Skipped" for each scenario. Each
partition's verdict is logged as its own ``AssetCheckEvaluation``, exactly what a run of that one
partition records, so the UI, GraphQL and the CLI summary read the same verdicts.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field

import dagster as dg


@dataclass(frozen=True)
class Verdict:
    """One partition's outcome of a check."""

    passed: bool
    metadata: Mapping[str, object] = field(default_factory=dict)
    description: str | None = None


def report_per_partition(
    context: dg.AssetCheckExecutionContext,
    verdicts: Mapping[str, Verdict],
    *,
    severity: dg.AssetCheckSeverity = dg.AssetCheckSeverity.ERROR,
) -> None:
    """Log one evaluation of the running check for each partition in ``verdicts``."""
    keys = list(context.selected_asset_check_keys)
    if len(keys) != 1:
        raise ValueError("report_per_partition serves a check step that runs exactly one check")
    check_key = keys[0]
    missing = set(context.partition_keys) - set(verdicts)
    if missing:
        raise ValueError(f"{check_key.name}: no verdict for partition(s) {', '.join(sorted(missing))}")
    for partition in context.partition_keys:
        verdict = verdicts[partition]
        target = _latest_materialization(context.instance, check_key.asset_key, partition)
        context.op_execution_context.log_event(
            dg.AssetCheckEvaluation(
                asset_key=check_key.asset_key,
                check_name=check_key.name,
                passed=verdict.passed,
                metadata=dict(verdict.metadata),
                severity=severity,
                description=verdict.description,
                partition=partition,
                target_materialization_data=target,
            )
        )


# The evaluation names the materialisation it judged, as Dagster's own AssetCheckResult does; without
# it the UI does not count the evaluation as the partition's current status. The class is reached
# through the public constructor's signature, since dagster does not export it by name.
_TARGET = typing.get_args(
    inspect.signature(dg.AssetCheckEvaluation).parameters["target_materialization_data"].annotation
)[0]


def _latest_materialization(instance: dg.DagsterInstance, asset_key: dg.AssetKey, partition: str):
    record = _latest_record(instance, asset_key, partition)
    if record is None:
        return None
    return _TARGET(storage_id=record.storage_id, run_id=record.run_id, timestamp=record.timestamp)


def latest_metadata(
    instance: dg.DagsterInstance, asset_key: dg.AssetKey, partition: str | None = None
) -> dict[str, object]:
    """The metadata values of the latest materialisation of an asset (partition) ({} if none)."""
    record = _latest_record(instance, asset_key, partition)
    materialization = record.asset_materialization if record is not None else None
    return {key: value.value for key, value in (materialization.metadata if materialization else {}).items()}


def _latest_record(instance: dg.DagsterInstance, asset_key: dg.AssetKey, partition: str | None):
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=asset_key, asset_partitions=[partition] if partition else None), limit=1
    ).records
    return records[0] if records else None
