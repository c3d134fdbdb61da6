"""Materialise an asset selection in process, partition by partition, on the local instance.

Dagster runs one partitions definition per run, so the selection is split into groups of assets that
share one, taken in dependency order; each partition of a group is one in-process run. The outcome of
every (asset, partition) step is collected for the CLI's summary.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from stress_pipeline.defs.partitions import symbols_partitions
from stress_pipeline.market.symbols import discover_symbol_files
from stress_pipeline.settings import Settings

QUIET_RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}


@dataclass
class StepOutcome:
    """What happened to one asset partition in a run."""

    asset: str
    partition: str | None
    status: str  # materialized | failed | skipped
    seconds: float
    metadata: dict[str, object] = field(default_factory=dict)
    checks: dict[str, bool] = field(default_factory=dict)
    check_metadata: dict[str, dict[str, object]] = field(default_factory=dict)
    warnings: set[str] = field(default_factory=set)  # checks that failed with WARN severity
    error: str | None = None

    @property
    def ok(self) -> bool:
        """Materialised, and every check passed or failed only with WARN severity."""
        return self.status == "materialized" and all(
            passed or name in self.warnings for name, passed in self.checks.items()
        )


def ensure_dagster_home(project_root: Path | None = None) -> Path:
    """Point DAGSTER_HOME at the project root (where dagster.yaml is) unless it is already set."""
    if os.environ.get("DAGSTER_HOME"):
        return Path(os.environ["DAGSTER_HOME"])
    root = (project_root or Path.cwd()).resolve()
    if not (root / "dagster.yaml").exists():
        root = Path(os.environ.get("STRESS_HOME") or ".stress").resolve() / "dagster"
        root.mkdir(parents=True, exist_ok=True)
        (root / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    os.environ["DAGSTER_HOME"] = str(root)
    return root


def register_symbols(instance: dg.DagsterInstance, settings: Settings) -> list[str]:
    """Add a symbols partition for every symbol with files on disk; return the new ones."""
    on_disk = set(discover_symbol_files(settings.bars_dir))
    known = set(instance.get_dynamic_partitions(symbols_partitions.name))
    new = sorted(on_disk - known)
    if new:
        instance.add_dynamic_partitions(symbols_partitions.name, new)
    return new


def resolve_selection(defs: dg.Definitions, selection: str | None) -> list[dg.AssetKey]:
    """Asset keys of a Dagster selection string (default: every asset), in dependency order."""
    graph = defs.resolve_asset_graph()
    wanted = (
        dg.AssetSelection.all() if not selection else dg.AssetSelection.from_string(selection)
    ).resolve(graph)
    ordered = [key for level in graph.toposorted_asset_keys_by_level for key in sorted(level) if key in wanted]
    if not ordered:
        raise ValueError(f"the selection {selection!r} matches no asset")
    return ordered


def run_selection(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    keys: Sequence[dg.AssetKey],
    *,
    on_step: Callable[[int, int, str], None] | None = None,
    on_done: Callable[[list[StepOutcome]], None] | None = None,
    verbose: bool = False,
) -> list[StepOutcome]:
    """Materialise ``keys`` (with their checks), group by group in dependency order.

    A group's partitions are read when the group starts, so a catalog run earlier in the same call can
    add partitions. A group whose assets all have a single-run backfill policy runs all its partitions
    in one run; otherwise each partition is a run of its own.
    """
    graph = defs.resolve_asset_graph()
    groups = _groups(graph, keys)
    assets = [*defs.assets, *(defs.asset_checks or [])]
    outcomes: list[StepOutcome] = []
    for number, (group_keys, partitions_def) in enumerate(groups, start=1):
        for partitions, tags in _runs(graph, group_keys, partitions_def, instance):
            label = ", ".join(k.to_user_string() for k in group_keys) + _partition_label(partitions)
            if on_step:
                on_step(number, len(groups), label)
            started = time.perf_counter()
            result = dg.materialize(
                assets,
                selection=list(group_keys),
                partition_key=partitions[0] if len(partitions) == 1 else None,
                instance=instance,
                resources=defs.resources,
                raise_on_error=False,
                run_config=None if verbose else QUIET_RUN_CONFIG,
                tags={"stress_pipeline/launched_by": "cli", **tags},
            )
            step_outcomes = _outcomes(result, group_keys, partitions, time.perf_counter() - started)
            outcomes.extend(step_outcomes)
            if on_done:
                on_done(step_outcomes)
    return outcomes


def _groups(graph, keys: Sequence[dg.AssetKey]) -> list[tuple[list[dg.AssetKey], dg.PartitionsDefinition | None]]:
    groups: dict[str, tuple[list[dg.AssetKey], dg.PartitionsDefinition | None]] = {}
    for key in keys:
        partitions_def = graph.get(key).partitions_def
        groups.setdefault(_partitions_name(partitions_def), ([], partitions_def))[0].append(key)
    return list(groups.values())


def _runs(
    graph, keys: list[dg.AssetKey], partitions_def: dg.PartitionsDefinition | None, instance: dg.DagsterInstance
) -> list[tuple[list[str | None], dict[str, str]]]:
    """The runs that materialise ``keys``: (partition keys, extra run tags) for each."""
    if partitions_def is None:
        return [([None], {})]
    partition_keys = list(partitions_def.get_partition_keys(dynamic_partitions_store=instance))
    if not partition_keys:
        return []
    single_run = all(
        (policy := graph.get(key).backfill_policy) is not None and policy.max_partitions_per_run is None
        for key in keys
    )
    if single_run and len(partition_keys) > 1:
        tags = {ASSET_PARTITION_RANGE_START_TAG: partition_keys[0], ASSET_PARTITION_RANGE_END_TAG: partition_keys[-1]}
        return [(partition_keys, tags)]
    return [([partition], {}) for partition in partition_keys]


def _partition_label(partitions: list[str | None]) -> str:
    if partitions == [None]:
        return ""
    if len(partitions) == 1:
        return f" [{partitions[0]}]"
    return f" [{len(partitions)} partitions, one run]"


def _partitions_name(partitions_def: dg.PartitionsDefinition | None) -> str:
    if partitions_def is None:
        return ""
    if isinstance(partitions_def, dg.DynamicPartitionsDefinition):
        return f"dynamic:{partitions_def.name}"
    return repr(partitions_def)


def _outcomes(
    result: dg.ExecuteInProcessResult, keys: Sequence[dg.AssetKey], partitions: list[str | None], seconds: float
) -> list[StepOutcome]:
    materialized = {
        (event.asset_key, event.partition): event.materialization.metadata
        for event in result.get_asset_materialization_events()
        if event.asset_key is not None
    }
    failures = {event.step_key: _failure_message(event) for event in result.get_step_failure_events()}
    checks: dict[tuple[dg.AssetKey, str | None], dict[str, bool]] = {}
    check_metadata: dict[tuple[dg.AssetKey, str | None], dict[str, dict[str, object]]] = {}
    warned: dict[tuple[dg.AssetKey, str | None], set[str]] = {}
    for evaluation in result.get_asset_check_evaluations():
        # A check in a run over a partition range reports once, for every partition of the range.
        covered = [evaluation.partition] if evaluation.partition is not None else partitions
        failed_partitions = _failed_partitions(evaluation) if len(covered) > 1 else None
        for partition in covered:
            where = (evaluation.asset_key, partition)
            passed = evaluation.passed or (failed_partitions is not None and partition not in failed_partitions)
            checks.setdefault(where, {})[evaluation.check_name] = passed
            check_metadata.setdefault(where, {})[evaluation.check_name] = {
                k: v.value for k, v in evaluation.metadata.items()
            }
            if not passed and evaluation.severity == dg.AssetCheckSeverity.WARN:
                warned.setdefault(where, set()).add(evaluation.check_name)
    share = seconds / max(len(partitions), 1)
    out = []
    for key in keys:
        step_error = next((msg for step, msg in failures.items() if step.startswith(key.path[-1])), None)
        for partition in partitions:
            if (key, partition) in materialized:
                status, error = "materialized", None
            elif step_error:
                status, error = "failed", step_error
            else:
                status, error = "skipped", _first_failure(failures)
            out.append(
                StepOutcome(
                    asset=key.to_user_string(),
                    partition=partition,
                    status=status,
                    seconds=share,
                    metadata={k: v.value for k, v in materialized.get((key, partition), {}).items()},
                    checks=checks.get((key, partition), {}),
                    check_metadata=check_metadata.get((key, partition), {}),
                    warnings=warned.get((key, partition), set()),
                    error=error,
                )
            )
    return out


# Checks over a partition range name the partitions that failed under one of these metadata keys.
FAILED_PARTITIONS_KEYS = ("failed_scenarios", "failing", "violations")


def _failed_partitions(evaluation) -> set[str] | None:
    """The partitions a range check failed for, when it says so; None when it does not."""
    for name in FAILED_PARTITIONS_KEYS:
        if name in evaluation.metadata:
            value = evaluation.metadata[name].value
            return set(value) if isinstance(value, dict | list) else None
    return None


def _failure_message(event: dg.DagsterEvent) -> str:
    data = event.step_failure_data
    if data.user_failure_data is not None and data.user_failure_data.description:
        return data.user_failure_data.description
    if data.error is not None:
        cause = data.error.cause or data.error
        return cause.message.strip()
    return "step failed"


def _first_failure(failures: dict[str, str]) -> str | None:
    return next(iter(failures.values()), "an upstream step or a blocking check failed") if failures else None
