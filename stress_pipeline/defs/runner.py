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
from dataclasses import dataclass, field

import dagster as dg

from stress_pipeline.defs.beside import BESIDE_TAG, QUIET_TAG, BesideProcess, ordered_groups
from stress_pipeline.defs.partitions import symbols_partitions
from stress_pipeline.defs.stale_runs import fail_dead_runs, worker_tag
from stress_pipeline.market.symbols import discover_symbol_files
from stress_pipeline.settings import Settings

QUIET_RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}

# The run tags of a run over a range of partitions, as Dagster's single-run backfills and
# `dagster asset materialize --partition-range` set them (documented names; Dagster exports no constant).
PARTITION_RANGE_START_TAG = "dagster/asset_partition_range_start"
PARTITION_RANGE_END_TAG = "dagster/asset_partition_range_end"
LAUNCHED_BY_TAG = "stress_pipeline/launched_by"

# Check verdicts, as the CLI prints them and the UI shows them.
PASSED, FAILED, WARNED, ERRORED, SKIPPED = "passed", "failed", "warn", "error", "skipped"


@dataclass(frozen=True)
class CheckVerdict:
    """One check's verdict on one partition (``partition`` is None for an unpartitioned check).

    ``status``: passed; failed; warn (failed with WARN severity); error (the check's step raised, or it
    was planned in a run that failed and never evaluated: what the Dagster UI shows as "Execution
    failed"); skipped (not evaluated although nothing in its run failed).
    """

    asset: str
    check: str
    partition: str | None
    status: str
    description: str | None = None
    metadata: Mapping[str, object] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status in (PASSED, WARNED)


@dataclass
class StepOutcome:
    """What happened to one asset partition in a run.

    ``step_seconds`` is the time of the asset's step, which covers every partition of its run;
    ``seconds`` is that time shared out over those partitions.
    """

    asset: str
    partition: str | None
    status: str  # materialized | failed | skipped
    seconds: float
    metadata: dict[str, object] = field(default_factory=dict)
    checks: dict[str, bool] = field(default_factory=dict)
    check_metadata: dict[str, dict[str, object]] = field(default_factory=dict)
    warnings: set[str] = field(default_factory=set)  # checks that failed with WARN severity
    error: str | None = None
    step_seconds: float = 0.0
    verdicts: list[CheckVerdict] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Materialised, and every check passed or failed only with WARN severity."""
        return self.status == "materialized" and all(verdict.ok for verdict in self.verdicts)


@dataclass(frozen=True)
class StepDone:
    """A step that just finished: what it ran (assets or checks), for which partitions, in how long."""

    names: tuple[str, ...]
    kind: str  # asset | check
    partitions: tuple[str | None, ...]
    seconds: float
    ok: bool
    error: str | None = None


@dataclass(frozen=True)
class RunTiming:
    """One in-process run: its label, wall time, and the time its steps took."""

    label: str
    seconds: float
    step_seconds: float


@dataclass
class RunSummary:
    """Everything a call of :meth:`Runner.run` did."""

    steps: list[StepOutcome] = field(default_factory=list)
    checks: list[CheckVerdict] = field(default_factory=list)
    runs: list[RunTiming] = field(default_factory=list)
    group_seconds: dict[str, float] = field(default_factory=dict)  # asset group -> its steps' time
    # The second process's steps' time by asset group, and its wall time (see defs/beside.py).
    beside_seconds: dict[str, float] = field(default_factory=dict)
    beside_wall_seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return bool(self.steps) and all(step.ok for step in self.steps) and all(v.ok for v in self.checks)

    @property
    def overhead_seconds(self) -> float:
        """Wall time of the runs not spent in a step: Dagster's run start, planning, event writes."""
        return sum(run.seconds - run.step_seconds for run in self.runs)


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
                and _dynamic_name(graph.get(key).partitions_def) == partitioned_by
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
    can call it), the assets tagged :data:`BESIDE` whose inputs are all beside-tagged too run in a
    second process on the same instance while this one runs the rest; a group that reads from them
    waits for that process, and runs as late as the dependency order allows. The process starts once
    the groups at the front holding an asset tagged :data:`QUIET` (a latency measurement) have run.
    Both processes' reports reach the callbacks (from a second thread of this process, for the other's).
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

    def run(
        self, keys: Sequence[dg.AssetKey], *, partitions: Mapping[str, Sequence[str]] | None = None
    ) -> RunSummary:
        """Materialise ``keys`` with their checks, group by group in dependency order.

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
        groups = _groups(self._graph, [key for key in keys if key not in beside], split=waits.__contains__)
        jobs = self._jobs(groups)
        self._totals = {}
        summary = RunSummary()
        other = None
        if beside:
            other = BesideProcess(self._defs_factory, self._instance, list(beside), partitions, self._verbose,
                                  offset=len(groups), total=len(groups) + len(_groups(self._graph, list(beside))))
        quiet = {key for key in keys if self._graph.get(key).tags.get(QUIET_TAG) == "true"}

        def start_other() -> None:
            if other is not None and not other.started:
                other.start(self._on_run, self._on_step, self._on_run_done)

        order = ordered_groups(self._graph, groups, beside, lambda: (start_other(), other.wait()))
        for number, (index, (group_keys, partitions_def)) in enumerate(order, start=1):
            if not quiet.intersection(group_keys):
                start_other()  # the groups measuring latency at the front ran on a quiet machine
            wanted = None if partitions_def is None else (partitions or {}).get(_dynamic_name(partitions_def))
            total = other.total if other else len(groups)
            for run_partitions, tags in self._runs(group_keys, partitions_def, wanted):
                label = ", ".join(k.to_user_string() for k in group_keys) + _partition_label(run_partitions)
                if self._on_run:
                    self._on_run(number, total, label, run_partitions)
                outcomes, verdicts, timing = self._execute(jobs[index], group_keys, run_partitions, tags, label)
                summary.steps.extend(outcomes)
                summary.checks.extend(verdicts)
                summary.runs.append(timing)
                if self._on_run_done:
                    self._on_run_done(outcomes, verdicts)
            for missing in _missing(self._instance, partitions_def, wanted):
                summary.steps.extend(
                    StepOutcome(key.to_user_string(), missing, "failed", 0.0, error=f"no partition {missing!r}")
                    for key in group_keys
                )
        counted: set[str] = set()  # a step that materialises several keys (a multi-asset) counts once
        for key in keys:
            group = self._graph.get(key).group_name or "default"
            if key in beside:
                continue  # timed by the other process
            node_names = {self._node_of[key], *(self._node_of[c] for c in self._graph.get(key).check_keys)} - counted
            counted |= node_names
            seconds = sum(self._totals.get(name, 0.0) for name in node_names)
            summary.group_seconds[group] = summary.group_seconds.get(group, 0.0) + seconds
        if other is not None:
            start_other()
            theirs = other.wait()
            summary.steps.extend(theirs.steps)
            summary.checks.extend(theirs.checks)
            summary.runs.extend(theirs.runs)
            summary.beside_seconds = dict(theirs.group_seconds)
            summary.beside_wall_seconds = other.wall_seconds
        return summary

    def _beside(self, keys: Sequence[dg.AssetKey]) -> set[dg.AssetKey]:
        """The keys to run in the second process: tagged beside, with every selected parent beside too,
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

    def _jobs(self, groups) -> list[dg.JobDefinition]:
        """One asset job per group, with the hooks that report finished steps."""

        @dg.success_hook(name="stress_pipeline_step_succeeded")
        def succeeded(context: dg.HookContext) -> None:
            self._finished(context.op.name, None)

        @dg.failure_hook(name="stress_pipeline_step_failed")
        def failed(context: dg.HookContext) -> None:
            self._finished(context.op.name, _exception_text(context.op_exception))

        names = [f"{self._job_prefix}_{number}" for number in range(1, len(groups) + 1)]
        job_defs = dg.Definitions(
            assets=self._defs.assets,
            asset_checks=self._defs.asset_checks,
            resources=self._defs.resources,
            jobs=[
                dg.define_asset_job(name, selection=dg.AssetSelection.assets(*group_keys), hooks={succeeded, failed})
                for name, (group_keys, _) in zip(names, groups, strict=True)
            ],
        )
        return [job_defs.resolve_job_def(name) for name in names]

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
        single_run = all(
            (policy := self._graph.get(key).backfill_policy) is not None and policy.max_partitions_per_run is None
            for key in keys
        )
        if not single_run:
            return [([key], {}) for key in chosen]
        runs: list[tuple[list[str | None], dict[str, str]]] = []
        for span in _spans(every, chosen):
            tags = {} if len(span) == 1 else {PARTITION_RANGE_START_TAG: span[0], PARTITION_RANGE_END_TAG: span[-1]}
            runs.append((list(span), tags))
        return runs

    def _execute(
        self, job: dg.JobDefinition, keys: list[dg.AssetKey], partitions: list[str | None], tags: dict[str, str],
        label: str,
    ) -> tuple[list[StepOutcome], list[CheckVerdict], RunTiming]:
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
        verdicts = self._verdicts(result, keys, partitions)
        outcomes = self._outcomes(result, keys, partitions, verdicts)
        return outcomes, verdicts, RunTiming(label, seconds, sum(self._step_seconds.values()))

    def _failures(self, result: dg.ExecuteInProcessResult) -> dict[str, str]:
        """Failed op -> its message (the step key of an asset or check op is the op's name)."""
        return {event.step_key: _failure_message(event) for event in result.get_step_failure_events()}

    def _verdicts(
        self, result: dg.ExecuteInProcessResult, keys: list[dg.AssetKey], partitions: list[str | None]
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
        for key in keys:
            for check_key in sorted(self._graph.get(key).check_keys, key=lambda c: c.name):
                covered = partitions if check_key in self._partitioned_checks else [None]
                # Planned in this run but never evaluated: Dagster records the execution as failed when the
                # run failed (the UI shows "Execution failed"), so the summary says error, naming the cause.
                error = failures.get(self._node_of.get(check_key, "")) or (
                    f"not evaluated: {_first_failure(failures)}" if failures else None
                )
                for partition in covered:
                    if (check_key, partition) not in verdicts:
                        verdicts[(check_key, partition)] = CheckVerdict(
                            asset=key.to_user_string(), check=check_key.name, partition=partition,
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


def _groups(
    graph, keys: Sequence[dg.AssetKey], *, split: Callable[[dg.AssetKey], bool] = lambda key: False
) -> list[tuple[list[dg.AssetKey], dg.PartitionsDefinition | None]]:
    """Split ``keys`` (in dependency order) into groups of one partitions definition each.

    A key joins the first group, at or after the groups of its parents, that has its partitions
    definition (and the same ``split`` answer); otherwise it starts a new group. Every group then runs
    after the groups it reads from.
    """
    selected = set(keys)
    groups: list[tuple[list[dg.AssetKey], dg.PartitionsDefinition | None]] = []
    names: list[str] = []
    group_of: dict[dg.AssetKey, int] = {}
    for key in keys:
        partitions_def = graph.get(key).partitions_def
        name = _partitions_name(partitions_def) + ("|split" if split(key) else "")
        lowest = max((group_of[p] for p in graph.get(key).parent_keys if p in selected), default=0)
        index = next((i for i in range(lowest, len(groups)) if names[i] == name), None)
        if index is None:
            groups.append(([], partitions_def))
            names.append(name)
            index = len(groups) - 1
        groups[index][0].append(key)
        group_of[key] = index
    return groups


def _spans(every: Sequence[str], chosen: Sequence[str]) -> list[list[str]]:
    """``chosen`` cut into runs of keys that are contiguous in ``every``."""
    position = {key: i for i, key in enumerate(every)}
    spans: list[list[str]] = []
    for key in sorted(chosen, key=position.__getitem__):
        if spans and position[spans[-1][-1]] == position[key] - 1:
            spans[-1].append(key)
        else:
            spans.append([key])
    return spans


def _missing(
    instance: dg.DagsterInstance, partitions_def: dg.PartitionsDefinition | None, wanted: Sequence[str] | None
) -> list[str]:
    if partitions_def is None or wanted is None:
        return []
    every = set(partitions_def.get_partition_keys(dynamic_partitions_store=instance))
    return [key for key in wanted if key not in every]


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


def _dynamic_name(partitions_def: dg.PartitionsDefinition) -> str | None:
    return partitions_def.name if isinstance(partitions_def, dg.DynamicPartitionsDefinition) else None


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
