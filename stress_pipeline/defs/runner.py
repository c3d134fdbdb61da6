"""Materialise an asset selection in process on the local Dagster instance (the CLI's ``run``).

Dagster runs one partitions definition per run, so the selection is split into groups of assets that
share one, in dependency order. A group whose assets all have a single-run backfill policy is one run
over its partitions (one per contiguous span of the wanted keys: a run covers a range of keys);
otherwise each partition is a run. Run hooks report each step as it finishes, with its time. Every
(asset, partition) outcome, and every check evaluation with the partition it names, feeds the summary.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import dagster as dg

from stress_pipeline.defs.beside import BESIDE_TAG, QUIET_TAG, RunnerProcess, ordered_groups
from stress_pipeline.defs.partitions import symbols_partitions
from stress_pipeline.defs.run_plan import (
    dynamic_name,
    groups_of,
    is_dynamic,
    lanes_of,
    missing_partitions,
    partition_label,
    spans,
)
from stress_pipeline.defs.run_records import (
    ERRORED,
    FAILED,
    PASSED,
    SKIPPED,
    WARNED,
    CheckVerdict,
    RunSummary,
    RunTiming,
    StepDone,
    StepOutcome,
)
from stress_pipeline.defs.stale_runs import fail_dead_runs, worker_tag
from stress_pipeline.market.symbols import discover_symbol_files
from stress_pipeline.settings import Settings

QUIET_RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}
# A group of a dynamic partitions definition run over a range of this many partitions or more is split
# in two halves, one run by a helper process (the other core) while this process runs the other.
SPLIT_MIN = 8
# Seconds a latency measurement waits for the processes spawned in advance to finish loading the project.
SPARE_WAIT = 30.0

# The run tags of a run over a range of partitions, as Dagster's single-run backfills and
# `dagster asset materialize --partition-range` set them (documented names; Dagster exports no constant).
PARTITION_RANGE_START_TAG = "dagster/asset_partition_range_start"
PARTITION_RANGE_END_TAG = "dagster/asset_partition_range_end"
LAUNCHED_BY_TAG = "stress_pipeline/launched_by"

class _GroupJob(NamedTuple):
    """The jobs of one group: ``full`` (its assets and ``checks``); for a group that may be split,
    ``partitioned`` (without its ``unpartitioned`` checks, which read every partition) and ``alone``
    (those checks only); otherwise both are ``full`` / None."""

    full: dg.JobDefinition
    checks: tuple[dg.AssetCheckKey, ...]
    partitioned: dg.JobDefinition
    alone: dg.JobDefinition | None
    unpartitioned: tuple[dg.AssetCheckKey, ...]


@dataclass(frozen=True)
class _Node:
    """One op of the asset graph: the assets or checks it computes."""

    name: str
    assets: tuple[dg.AssetKey, ...]
    checks: tuple[dg.AssetCheckKey, ...]


def register_symbols(instance: dg.DagsterInstance, settings: Settings) -> list[str]:
    """Add a symbols partition for every symbol with files on disk; return the new ones."""
    on_disk = set(discover_symbol_files(settings.bars_dir))
    known = set(instance.get_dynamic_partitions(symbols_partitions.name))
    new = sorted(on_disk - known)
    if new:
        instance.add_dynamic_partitions(symbols_partitions.name, new)
    return new


def resolve_selection(
    defs: dg.Definitions, selection: str | None, *, partitioned_by: str | None = None
) -> list[dg.AssetKey]:
    """Asset keys of a Dagster selection string, in dependency order.

    Without a selection: every asset, or with ``partitioned_by`` (a dynamic partitions name) the assets
    partitioned by it and what they read, so that a run for a few of its keys leaves out the assets
    that summarise every key."""
    graph = defs.resolve_asset_graph()
    with warnings.catch_warnings():
        # Dagster's selection parser passes a beta parameter (include_sources) to AssetSelection.groups.
        warnings.filterwarnings("ignore", message="Parameter `include_sources`", category=dg.BetaWarning)
        if selection:
            chosen = dg.AssetSelection.from_string(selection)
        elif partitioned_by:
            by_name = [
                key for key in graph.materializable_asset_keys
                if graph.get(key).partitions_def is not None
                and dynamic_name(graph.get(key).partitions_def) == partitioned_by
            ]  # fmt: skip
            chosen = dg.AssetSelection.assets(*by_name).upstream()
        else:
            chosen = dg.AssetSelection.all()
        wanted = chosen.resolve(graph)
    ordered = [key for level in graph.toposorted_asset_keys_by_level for key in sorted(level) if key in wanted]
    if not ordered:
        raise ValueError(f"the selection {selection!r} matches no asset")
    return ordered


class Runner:
    """Runs selections of one Definitions object on one instance, reporting as it goes.

    ``on_run(number, total, label, partitions)`` is called as each run starts (``number`` of ``total``
    groups), ``on_step(StepDone)`` as each of its
    steps finishes, and ``on_run_done(outcomes, verdicts)`` when the run has ended.

    With ``defs_factory`` (a module-level function building the same Definitions, so that a new process
    can call it), the assets tagged :data:`BESIDE` whose inputs are all beside-tagged too run in other
    processes on the same instance (one per set that neither reads from another nor shares a step) while
    this one runs the rest; a group that reads from them waits for those, and runs as late as the
    dependency order allows; and a large single-run partition range is split with a helper process. The
    processes start once the groups at the front holding an asset tagged :data:`QUIET` (a latency
    measurement) have run; ``spares`` are processes spawned in advance (:meth:`RunnerProcess.spawn`),
    used first. Every process's reports reach the callbacks (from a relay thread, for the others').
    """

    def __init__(
        self,
        defs: dg.Definitions,
        instance: dg.DagsterInstance,
        *,
        verbose: bool = False,
        on_run: Callable[[int, int, str, list[str | None]], None] | None = None,
        on_step: Callable[[StepDone], None] | None = None,
        on_run_done: Callable[[list[StepOutcome], list[CheckVerdict]], None] | None = None,
        defs_factory: Callable[[], dg.Definitions] | None = None,
        job_prefix: str = "stress_pipeline_run",
        spares: Sequence[RunnerProcess] = (),
    ):
        self._defs = defs
        self._defs_factory = defs_factory
        self._job_prefix = job_prefix  # the group jobs are <prefix>_1, <prefix>_2...
        self._instance = instance
        self._verbose = verbose
        self._on_run, self._on_step, self._on_run_done = on_run, on_step, on_run_done
        self._graph = defs.resolve_asset_graph()
        definitions = [d for d in (*defs.assets, *(defs.asset_checks or [])) if isinstance(d, dg.AssetsDefinition)]
        self._nodes = {
            d.node_def.name: _Node(d.node_def.name, tuple(d.keys), tuple(d.check_keys)) for d in definitions
        }
        self._node_of = {key: node.name for node in self._nodes.values() for key in (*node.assets, *node.checks)}
        # The ops inside a graph-backed asset (the sweep's batches) count as that asset's step, which is
        # reported when the op giving the asset's output (or any of its ops, failing) finishes.
        self._graph_ops = {
            op.name: d.node_def for d in definitions if isinstance(d.node_def, dg.GraphDefinition)
            for op in d.node_def.iterate_op_defs()
        }  # fmt: skip
        self._partitioned_checks = {
            spec.key for d in definitions for spec in d.check_specs if spec.partitions_def is not None
        }
        self._mark = 0.0
        self._partitions: tuple[str | None, ...] = ()
        self._step_seconds: dict[str, float] = {}  # op -> seconds, in the current run
        self._totals: dict[str, float] = {}  # op -> seconds, over the current call of run()
        self._job_count = 0  # jobs made by this runner: their names never repeat
        self._processes = 0
        self._spares = list(spares)
        self._labels: dict[int, tuple[str, str]] = {}  # process -> its job prefix and label suffix

    def run(
        self, keys: Sequence[dg.AssetKey], *, partitions: Mapping[str, Sequence[str]] | None = None,
        exclude_checks: Sequence[dg.AssetCheckKey] = (),
    ) -> RunSummary:
        """Materialise ``keys`` with their checks (but ``exclude_checks``), group by group in dependency order.

        ``partitions`` restricts a dynamic partitions definition (by name) to the given keys. A group's
        partitions are read when the group starts, so a catalog run earlier in the same call can add them.
        """
        self.dead_runs_failed = fail_dead_runs(self._instance)  # runs a killed process left STARTED
        beside = self._beside(keys)
        # A key reading (through any chain) from a beside key never shares a group with one that does not.
        waits: set[dg.AssetKey] = set()
        for key in keys:
            if any(p in beside or p in waits for p in self._graph.get(key).parent_keys):
                waits.add(key)
        groups = groups_of(self._graph, [key for key in keys if key not in beside], split=waits.__contains__)
        self._totals = {}
        summary = RunSummary()
        # One process per set of beside keys that do not read from each other, the one over the most
        # partitions first (it takes a process spawned in advance); one helper for the splits.
        beside_keys = [key for key in keys if key in beside]
        chosen_lanes = sorted(lanes_of(self._graph, beside_keys, self._node_of.get), key=self._weight, reverse=True)
        lanes = [(lane, self._process("beside", "beside the others")) for lane in chosen_lanes]
        total = len(groups) + sum(len(groups_of(self._graph, lane_keys)) for lane_keys, _ in lanes)
        may_split = self._defs_factory is not None and not self._instance.is_ephemeral
        jobs = self._jobs(groups, set(exclude_checks), variants=may_split)
        quiet = {key for key in keys if self._graph.get(key).tags.get(QUIET_TAG) == "true"}
        helper: RunnerProcess | None = None

        def start_others() -> None:
            nonlocal helper
            offset = len(groups)
            for lane_keys, lane in lanes:
                if not lane.started:
                    self._start(lane)
                    lane.submit(lane_keys, partitions, offset=offset, total=total)
                offset += len(groups_of(self._graph, lane_keys))
            if helper is None and may_split and self._splittable(groups, partitions):
                helper = self._process("helper", "in a second process")
                self._start(helper)

        def wait_lanes() -> None:
            start_others()
            for _, lane in lanes:
                if lane.busy:
                    summary.merge(lane.wait())
                    lane.finish()  # it ends while this process goes on
            summary.beside_wall_seconds = max((lane.wall_seconds for _, lane in lanes), default=0.0)

        try:
            order = ordered_groups(self._graph, groups, beside, wait_lanes)
            for number, (index, (group_keys, partitions_def)) in enumerate(order, start=1):
                if not quiet.intersection(group_keys):
                    start_others()  # the groups measuring latency at the front ran on a quiet machine
                else:
                    for spare in self._spares:
                        spare.wait_ready(SPARE_WAIT)  # done loading the project: idle while latency is measured
                wanted = None if partitions_def is None else (partitions or {}).get(dynamic_name(partitions_def))
                self._run_group(summary, number, total, jobs[index], group_keys, partitions_def, wanted, helper)
                for missing in missing_partitions(self._instance, partitions_def, wanted):
                    summary.steps.extend(
                        StepOutcome(key.to_user_string(), missing, "failed", 0.0, error=f"no partition {missing!r}")
                        for key in group_keys
                    )
            wait_lanes()
        finally:
            others = [*(lane for _, lane in lanes), *([helper] if helper else []), *self._spares]
            for process in others:
                process.finish()  # all told first: they end side by side
            for process in others:
                process.close()  # after a failure too, and spares never used: no process is left behind
            self._spares = []
        counted: set[str] = set()  # a step that materialises several keys (a multi-asset) counts once
        for key in keys:
            group = self._graph.get(key).group_name or "default"
            if key in beside:
                continue  # timed by the other process
            node_names = {self._node_of[key], *(self._node_of[c] for c in self._graph.get(key).check_keys)} - counted
            counted |= node_names
            seconds = sum(self._totals.get(name, 0.0) for name in node_names)
            summary.group_seconds[group] = summary.group_seconds.get(group, 0.0) + seconds
        return summary

    def _process(self, kind: str, suffix: str) -> RunnerProcess | None:
        """A runner process (a spare spawned in advance, or a new one) for its jobs
        ``<prefix>_<kind><n>_run_<m>`` and its progress lines ending with ``suffix``, when this runner may
        start one."""
        if self._defs_factory is None or self._instance.is_ephemeral:
            return None  # an ephemeral instance cannot be opened by another process
        self._processes += 1
        process = self._spares.pop(0) if self._spares else RunnerProcess(self._defs_factory, self._verbose)
        self._labels[id(process)] = (f"{self._job_prefix.removesuffix('_run')}_{kind}{self._processes}_run", suffix)
        return process

    def _start(self, process: RunnerProcess) -> None:
        prefix, suffix = self._labels[id(process)]
        process.start(self._instance, job_prefix=prefix, suffix=suffix, on_run=self._on_run, on_step=self._on_step,
                      on_run_done=self._on_run_done)  # fmt: skip

    def _weight(self, keys: Sequence[dg.AssetKey]) -> int:
        """How many partitions ``keys`` run over (an unpartitioned key counts one)."""
        return sum(
            len(node.partitions_def.get_partition_keys(dynamic_partitions_store=self._instance))
            if (node := self._graph.get(key)).partitions_def is not None else 1
            for key in keys
        )  # fmt: skip

    def _splittable(self, groups, partitions: Mapping[str, Sequence[str]] | None) -> bool:
        """True when a group is worth splitting (:meth:`_worth_splitting`) for the partitions it may run."""
        for keys, partitions_def in groups:
            if is_dynamic(partitions_def):
                wanted = (partitions or {}).get(partitions_def.name)
                count = len(partitions_def.get_partition_keys(dynamic_partitions_store=self._instance))
                count = min(count, len(wanted)) if wanted is not None else count
                if self._worth_splitting(keys, partitions_def, count):
                    return True
        return False

    def _worth_splitting(self, keys, partitions_def, count: int) -> bool:
        """A group of a dynamic partitions definition run over a range (single-run backfill) of ``count``
        partitions, SPLIT_MIN or more."""
        return is_dynamic(partitions_def) and self._single_run(keys) and count >= SPLIT_MIN

    def _run_group(self, summary, number, total, job: _GroupJob, keys, partitions_def, wanted, helper) -> None:
        """Run one group; a large one of a dynamic partitions definition run over ranges of partitions
        (single-run backfill) half here, half in ``helper``, then its unpartitioned checks (which read every
        partition) once both halves have run."""
        runs = self._runs(keys, partitions_def, wanted)
        chosen = [partition for run_partitions, _ in runs for partition in run_partitions]
        if helper is None or not self._worth_splitting(keys, partitions_def, len(chosen)):
            self._execute_runs(summary, number, total, job.full, keys, runs, job.checks)
            return
        theirs = chosen[(len(chosen) + 1) // 2 :]  # the smaller half: that process may still be starting
        helper.submit(keys, {dynamic_name(partitions_def): theirs}, offset=number - 1, total=total,
                      exclude_checks=job.unpartitioned)  # fmt: skip
        mine = self._runs(keys, partitions_def, chosen[: len(chosen) - len(theirs)])
        partitioned = [check for check in job.checks if check not in job.unpartitioned]
        self._execute_runs(summary, number, total, job.partitioned, keys, mine, partitioned)
        summary.merge(helper.wait())
        if job.unpartitioned:
            label = ", ".join(check.name for check in job.unpartitioned) + " (every partition)"
            self._execute_runs(summary, number, total, job.alone, [], [([None], {})], job.unpartitioned, label=label)

    def _execute_runs(self, summary, number, total, job, keys, runs, checks, *, label=None) -> None:
        for run_partitions, tags in runs:
            run_label = label or ", ".join(k.to_user_string() for k in keys) + partition_label(run_partitions)
            if self._on_run:
                self._on_run(number, total, run_label, run_partitions)
            outcomes, verdicts, timing = self._execute(job, keys, run_partitions, tags, run_label, checks)
            summary.steps.extend(outcomes)
            summary.checks.extend(verdicts)
            summary.runs.append(timing)
            if self._on_run_done:
                self._on_run_done(outcomes, verdicts)

    def _beside(self, keys: Sequence[dg.AssetKey]) -> set[dg.AssetKey]:
        """The keys to run in other processes: tagged beside, with every selected parent beside too,
        and only when something else is selected to run meanwhile."""
        if self._defs_factory is None or self._instance.is_ephemeral:
            return set()  # an ephemeral instance cannot be opened by another process
        selected, beside = set(keys), set()
        for key in keys:  # dependency order: a key's parents are decided before it
            node = self._graph.get(key)
            if node.tags.get(BESIDE_TAG) == "true" and all(p in beside for p in node.parent_keys if p in selected):
                beside.add(key)
        return beside if len(beside) < len(selected) else set()

    # ------------------------------------------------------------------------------------ internals

    def _jobs(self, groups, excluded: set[dg.AssetCheckKey], *, variants: bool) -> list[_GroupJob]:
        """The asset jobs of each group, with the hooks that report finished steps: with ``variants``,
        also one leaving out the unpartitioned checks of its partitioned assets and one of those checks
        alone (for a group split between two processes)."""

        @dg.success_hook(name="stress_pipeline_step_succeeded")
        def succeeded(context: dg.HookContext) -> None:
            self._finished(context.op.name, None)

        @dg.failure_hook(name="stress_pipeline_step_failed")
        def failed(context: dg.HookContext) -> None:
            self._finished(context.op.name, _exception_text(context.op_exception))

        specs: list[tuple[str, dg.AssetSelection]] = []
        plan = []
        for group_keys, partitions_def in groups:
            checks = tuple(
                check for key in group_keys for check in sorted(self._graph.get(key).check_keys, key=lambda c: c.name)
                if check not in excluded
            )  # fmt: skip
            full = dg.AssetSelection.assets(*group_keys)
            if excluded:
                full = full - dg.AssetSelection.checks(*excluded)
            unpartitioned = tuple(c for c in checks if c not in self._partitioned_checks) if variants else ()
            names = [self._job_name()]
            specs.append((names[0], full))
            if unpartitioned and is_dynamic(partitions_def):
                names += [self._job_name(), self._job_name()]
                specs += [(names[1], full - dg.AssetSelection.checks(*unpartitioned)),
                          (names[2], dg.AssetSelection.checks(*unpartitioned))]  # fmt: skip
            else:
                unpartitioned = ()
            plan.append((names, checks, unpartitioned))
        job_defs = dg.Definitions(
            assets=self._defs.assets,
            asset_checks=self._defs.asset_checks,
            resources=self._defs.resources,
            jobs=[dg.define_asset_job(name, selection=chosen, hooks={succeeded, failed}) for name, chosen in specs],
        )
        jobs = []
        for names, checks, unpartitioned in plan:
            full, *split = [job_defs.resolve_job_def(name) for name in names]
            partitioned, alone = split or (full, None)
            jobs.append(_GroupJob(full, checks, partitioned, alone, unpartitioned))
        return jobs

    def _job_name(self) -> str:
        self._job_count += 1
        return f"{self._job_prefix}_{self._job_count}"

    def _finished(self, node_name: str, error: str | None) -> None:
        now = time.perf_counter()
        graph = self._graph_ops.get(node_name)
        if graph is not None:
            if error is None and node_name != graph.output_mappings[0].maps_from.node_name:
                return  # the time runs on until the asset's output op finishes
            node_name = graph.name
        seconds, self._mark = now - self._mark, now
        self._step_seconds[node_name] = self._step_seconds.get(node_name, 0.0) + seconds
        self._totals[node_name] = self._totals.get(node_name, 0.0) + seconds
        if self._on_step is None:
            return
        node = self._nodes.get(node_name)
        if node is None:
            node = _Node(node_name, (dg.AssetKey(node_name),), ())
        if node.assets:
            names, kind = tuple(k.to_user_string() for k in node.assets), "asset"
        else:
            names, kind = tuple(c.name for c in node.checks), "check"
        partitioned = kind == "asset" or any(c in self._partitioned_checks for c in node.checks)
        partitions = self._partitions if partitioned else (None,)
        self._on_step(StepDone(names, kind, partitions, seconds, error is None, error))

    def _runs(
        self, keys: list[dg.AssetKey], partitions_def: dg.PartitionsDefinition | None, wanted: Sequence[str] | None
    ) -> list[tuple[list[str | None], dict[str, str]]]:
        """The runs that materialise ``keys``: (partition keys, extra run tags) for each."""
        if partitions_def is None:
            return [([None], {})]
        every = list(partitions_def.get_partition_keys(dynamic_partitions_store=self._instance))
        if wanted is None and isinstance(partitions_def, dg.TimeWindowPartitionsDefinition):
            wanted = every[-1:]  # a time-partitioned asset runs for its latest window (today), not its history
        chosen = every if wanted is None else [key for key in every if key in set(wanted)]
        if not chosen:
            return []
        if not self._single_run(keys):
            return [([key], {}) for key in chosen]
        runs: list[tuple[list[str | None], dict[str, str]]] = []
        for span in spans(every, chosen):
            tags = {} if len(span) == 1 else {PARTITION_RANGE_START_TAG: span[0], PARTITION_RANGE_END_TAG: span[-1]}
            runs.append((list(span), tags))
        return runs

    def _single_run(self, keys: Sequence[dg.AssetKey]) -> bool:
        """True when every key has a single-run backfill policy (one run covers a range of partitions)."""
        return all(
            (policy := self._graph.get(key).backfill_policy) is not None and policy.max_partitions_per_run is None
            for key in keys
        )

    def _execute(
        self, job: dg.JobDefinition, keys: list[dg.AssetKey], partitions: list[str | None], tags: dict[str, str],
        label: str, checks: Sequence[dg.AssetCheckKey],
    ) -> tuple[list[StepOutcome], list[CheckVerdict], RunTiming]:
        """Run ``job`` (materialising ``keys``, evaluating ``checks``) for ``partitions``."""
        self._partitions = tuple(partitions)
        self._step_seconds = {}
        started = self._mark = time.perf_counter()
        result = job.execute_in_process(
            instance=self._instance,
            partition_key=partitions[0] if len(partitions) == 1 else None,
            raise_on_error=False,
            run_config=None if self._verbose else QUIET_RUN_CONFIG,
            tags={LAUNCHED_BY_TAG: "cli", **worker_tag(), **tags},
        )
        seconds = time.perf_counter() - started
        verdicts = self._verdicts(result, checks, partitions)
        outcomes = self._outcomes(result, keys, partitions, verdicts)
        return outcomes, verdicts, RunTiming(label, seconds, sum(self._step_seconds.values()))

    def _failures(self, result: dg.ExecuteInProcessResult) -> dict[str, str]:
        """Failed op -> its message (the step key of an asset or check op is the op's name)."""
        return {event.step_key: _failure_message(event) for event in result.get_step_failure_events()}

    def _verdicts(
        self, result: dg.ExecuteInProcessResult, checks: Sequence[dg.AssetCheckKey], partitions: list[str | None]
    ) -> list[CheckVerdict]:
        verdicts: dict[tuple[dg.AssetCheckKey, str | None], CheckVerdict] = {}
        for evaluation in result.get_asset_check_evaluations():
            check_key = dg.AssetCheckKey(evaluation.asset_key, evaluation.check_name)
            status = PASSED if evaluation.passed else (
                WARNED if evaluation.severity == dg.AssetCheckSeverity.WARN else FAILED
            )
            verdicts[(check_key, evaluation.partition)] = CheckVerdict(
                asset=evaluation.asset_key.to_user_string(),
                check=evaluation.check_name,
                partition=evaluation.partition,
                status=status,
                description=evaluation.description,
                metadata={k: v.value for k, v in evaluation.metadata.items()},
            )
        failures = self._failures(result)
        for check_key in checks:
            covered = partitions if check_key in self._partitioned_checks else [None]
            # Planned in this run but never evaluated: Dagster records the execution as failed when the
            # run failed (the UI shows "Execution failed"), so the summary says error, naming the cause.
            error = failures.get(self._node_of.get(check_key, "")) or (
                f"not evaluated: {_first_failure(failures)}" if failures else None
            )
            for partition in covered:
                if (check_key, partition) not in verdicts:
                    verdicts[(check_key, partition)] = CheckVerdict(
                        asset=check_key.asset_key.to_user_string(), check=check_key.name, partition=partition,
                        status=ERRORED if error else SKIPPED, description=error,
                    )  # fmt: skip
        return list(verdicts.values())

    def _outcomes(
        self, result: dg.ExecuteInProcessResult, keys: list[dg.AssetKey], partitions: list[str | None],
        verdicts: list[CheckVerdict],
    ) -> list[StepOutcome]:
        materialized = {
            (event.asset_key, event.partition): event.materialization.metadata
            for event in result.get_asset_materialization_events()
            if event.asset_key is not None
        }
        failures = self._failures(result)
        out = []
        for key in keys:
            name = key.to_user_string()
            node = self._node_of.get(key, "")
            step_error = failures.get(node)
            step_seconds = self._step_seconds.get(node, 0.0)
            for partition in partitions:
                if (key, partition) in materialized:
                    status, error = "materialized", None
                elif step_error:
                    status, error = "failed", step_error
                else:
                    status, error = "skipped", _first_failure(failures)
                mine = [v for v in verdicts if v.asset == name and v.partition in (partition, None)]
                out.append(
                    StepOutcome(
                        asset=name,
                        partition=partition,
                        status=status,
                        seconds=step_seconds / len(partitions),
                        metadata={k: v.value for k, v in materialized.get((key, partition), {}).items()},
                        checks={v.check: v.status == PASSED for v in mine},
                        check_metadata={v.check: dict(v.metadata) for v in mine},
                        warnings={v.check for v in mine if v.status == WARNED},
                        error=error,
                        step_seconds=step_seconds,
                        verdicts=mine,
                    )
                )
        return out


def run_selection(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    keys: Sequence[dg.AssetKey],
    *,
    on_step: Callable[[int, int, str], None] | None = None,
    on_done: Callable[[list[StepOutcome]], None] | None = None,
    verbose: bool = False,
    partitions: Mapping[str, Sequence[str]] | None = None,
) -> list[StepOutcome]:
    """Materialise ``keys`` (with their checks) and return the outcome of every asset partition.

    ``on_step(number, total, label)`` is called as each run starts, ``on_done(outcomes)`` as it ends.
    """
    runner = Runner(
        defs, instance, verbose=verbose,
        on_run=(lambda number, total, label, _partitions: on_step(number, total, label)) if on_step else None,
        on_run_done=(lambda outcomes, _verdicts: on_done(outcomes)) if on_done else None,
    )  # fmt: skip
    return runner.run(keys, partitions=partitions).steps


def _failure_message(event: dg.DagsterEvent) -> str:
    data = event.step_failure_data
    if data.user_failure_data is not None and data.user_failure_data.description:
        return data.user_failure_data.description
    if data.error is not None:
        cause = data.error.cause or data.error
        return cause.message.strip()
    return "step failed"


def _exception_text(exc: BaseException | None) -> str:
    if exc is None:
        return "step failed"
    description = getattr(exc, "description", None)  # dg.Failure
    return str(description or exc).strip() or type(exc).__name__


def _first_failure(failures: dict[str, str]) -> str | None:
    return next(iter(failures.values()), "an upstream step or a blocking check failed") if failures else None
