"""Assets tagged beside run in a second process while the runner computes the rest; what reads from
them waits for that process, and runs as late as the dependency order allows."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import dagster as dg
import pytest

from stress_pipeline.defs.beside import BESIDE, QUIET, RunnerProcess, ordered_groups
from stress_pipeline.defs.run_plan import lanes_of
from stress_pipeline.defs.runner import Runner

SLOW_S = 4.0


def _stamped(value: int, **extra: float) -> dg.Output:
    return dg.Output(value, metadata={"pid": os.getpid(), "start": time.time(), **extra})


@dg.asset(group_name="waits", tags=BESIDE)
def slow() -> dg.Output:
    started = time.time()
    time.sleep(SLOW_S)
    return dg.Output(1, metadata={"pid": os.getpid(), "start": started, "end": time.time()})


@dg.asset(group_name="waits", tags=BESIDE)
def slow_too() -> dg.Output:
    started = time.time()
    time.sleep(SLOW_S)
    return dg.Output(1, metadata={"pid": os.getpid(), "start": started, "end": time.time()})


@dg.asset(group_name="waits", tags=BESIDE)
def broken_slow() -> int:
    raise RuntimeError("the outage never ended")


@dg.asset(group_name="measures", tags=QUIET)
def latency_probe() -> dg.Output:
    started = time.time()
    time.sleep(0.5)
    return dg.Output(0, metadata={"pid": os.getpid(), "start": started, "end": time.time()})


@dg.asset(group_name="computes")
def first() -> dg.Output:
    return _stamped(2)


@dg.asset(group_name="computes")
def second(first: int) -> dg.Output:
    return _stamped(first + 1)


@dg.asset(group_name="reads")
def reader(slow: int, second: int) -> dg.Output:
    return _stamped(slow + second)


things = dg.DynamicPartitionsDefinition(name="things")
THINGS = [f"t{i:02d}" for i in range(11)]


class PartsIOManager(dg.ConfigurableIOManager):
    """One small file per partition under ``root`` (a single-run backfill hands over a dict by partition)."""

    root: str

    def handle_output(self, context: dg.OutputContext, obj: dict[str, int]) -> None:
        for key, value in obj.items():
            (Path(self.root) / key).write_text(str(value))

    def load_input(self, context: dg.InputContext) -> dict[str, int]:
        return {key: int((Path(self.root) / key).read_text()) for key in context.asset_partition_keys}


@dg.asset(group_name="computes", partitions_def=things, backfill_policy=dg.BackfillPolicy.single_run(),
          io_manager_key="parts_io")  # fmt: skip
def part(context) -> dict[str, int]:  # unannotated: Dagster does not read a string annotation
    for key in context.partition_keys:
        context.add_asset_metadata({"pid": os.getpid()}, partition_key=key)
    return {key: int(key[1:]) for key in context.partition_keys}


@dg.asset_check(asset=part)
def every_part(part: dict[str, int]) -> dg.AssetCheckResult:
    """Reads every partition: run once both halves of a split group have run."""
    return dg.AssetCheckResult(passed=sorted(part) == THINGS, metadata={"count": len(part), "pid": os.getpid()})


def broken_build() -> dg.Definitions:
    """A factory that fails in the spawned process, as a broken project would."""
    raise RuntimeError("the project does not load")


def build() -> dg.Definitions:
    """The factory the other processes call (module level, so a spawned process can import it)."""
    return dg.Definitions(
        assets=[slow, slow_too, broken_slow, latency_probe, first, second, reader, part], asset_checks=[every_part],
        resources={"parts_io": PartsIOManager(root=os.environ.get("RUNNER_TEST_PARTS", "."))},
    )


def _keys(*names: str) -> list[dg.AssetKey]:
    return [dg.AssetKey(name) for name in names]


def test_beside_assets_run_in_a_second_process_meanwhile() -> None:
    starts: list[str] = []
    with dg.instance_for_test() as instance:
        runner = Runner(build(), instance, defs_factory=build, on_run=lambda n, t, label, p: starts.append(label))
        summary = runner.run(_keys("slow", "first", "second", "reader"))
        jobs = {record.dagster_run.job_name for record in instance.get_run_records()}
    assert summary.ok, [(s.asset, s.status, s.error) for s in summary.steps]
    meta = {s.asset: s.metadata for s in summary.steps}
    assert set(meta) == {"slow", "first", "second", "reader"}
    assert meta["slow"]["pid"] != os.getpid() and meta["first"]["pid"] == meta["reader"]["pid"] == os.getpid()
    # The computing groups did not wait for the slow one; the reader did.
    assert meta["first"]["start"] < meta["slow"]["end"] <= meta["reader"]["start"]
    assert "slow (beside the others)" in starts and starts[-1] == "reader"
    assert set(summary.beside_seconds) == {"waits"} and summary.beside_seconds["waits"] >= SLOW_S
    assert summary.beside_wall_seconds >= SLOW_S
    assert "waits" not in summary.group_seconds and {"computes", "reads"} <= set(summary.group_seconds)
    assert "stress_pipeline_beside1_run_1" in jobs and "stress_pipeline_run_1" in jobs  # never the same name


def test_a_failing_beside_asset_is_reported_and_the_rest_still_runs() -> None:
    with dg.instance_for_test() as instance:
        summary = Runner(build(), instance, defs_factory=build).run(_keys("broken_slow", "first", "second"))
    status = {s.asset: (s.status, s.error) for s in summary.steps}
    assert status["first"][0] == status["second"][0] == "materialized"
    assert status["broken_slow"][0] == "failed" and "the outage never ended" in status["broken_slow"][1]
    assert not summary.ok


def test_without_a_factory_or_anything_else_to_run_everything_runs_here() -> None:
    with dg.instance_for_test() as instance:
        summary = Runner(build(), instance).run(_keys("slow", "first"))
        alone = Runner(build(), instance, defs_factory=build).run(_keys("slow"))
    assert summary.beside_seconds == {} and {"waits", "computes"} <= set(summary.group_seconds)
    assert alone.beside_seconds == {} and alone.steps[0].metadata["pid"] == os.getpid()


def test_groups_reading_beside_keys_run_as_late_as_the_order_allows() -> None:
    graph = build().resolve_asset_graph()
    groups = [(_keys("first"), None), (_keys("reader"), None), (_keys("second"), None)]
    waited: list[str] = []
    order = [index for index, _ in ordered_groups(graph, groups, set(_keys("slow")), lambda: waited.append("w"))]
    # reader (index 1) reads slow and second: it runs after second, once the other process is done.
    assert order == [0, 2, 1] and waited == ["w"]
    assert [i for i, _ in ordered_groups(graph, groups[:1], set(), lambda: waited.append("x"))] == [0]
    assert waited == ["w"]


def test_a_latency_measurement_at_the_front_runs_before_the_second_process_starts() -> None:
    with dg.instance_for_test() as instance:
        summary = Runner(build(), instance, defs_factory=build).run(_keys("latency_probe", "slow", "first"))
    assert summary.ok
    meta = {s.asset: s.metadata for s in summary.steps}
    assert meta["latency_probe"]["end"] <= meta["slow"]["start"] and meta["slow"]["pid"] != os.getpid()


def test_beside_assets_that_do_not_read_from_each_other_run_in_processes_of_their_own() -> None:
    with dg.instance_for_test() as instance:
        summary = Runner(build(), instance, defs_factory=build).run(_keys("slow", "slow_too", "first"))
    assert summary.ok
    meta = {s.asset: s.metadata for s in summary.steps}
    assert len({meta["slow"]["pid"], meta["slow_too"]["pid"], os.getpid()}) == 3
    # side by side: each started before the other ended
    assert meta["slow"]["start"] < meta["slow_too"]["end"] and meta["slow_too"]["start"] < meta["slow"]["end"]
    assert SLOW_S <= summary.beside_wall_seconds < 2 * SLOW_S


def test_a_large_partitioned_group_is_split_with_a_helper_process(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("RUNNER_TEST_PARTS", str(tmp_path))  # the helper process inherits it
    starts: list[str] = []
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("things", THINGS)
        runner = Runner(build(), instance, defs_factory=build, on_run=lambda n, t, label, p: starts.append(label))
        summary = runner.run(_keys("first", "part"))
        runs = instance.get_run_records()
    assert summary.ok, [(s.asset, s.partition, s.status, s.error) for s in summary.steps]
    pids = {s.partition: s.metadata["pid"] for s in summary.steps if s.asset == "part"}
    assert sorted(pids) == THINGS
    assert {pids[key] for key in THINGS[:6]} == {os.getpid()} and os.getpid() not in {pids[k] for k in THINGS[6:]}
    # the check reading every partition ran once, here, after both halves: it saw all eleven
    (verdict,) = [v for v in summary.checks if v.check == "every_part"]
    assert verdict.status == "passed" and verdict.partition is None and verdict.metadata["count"] == 11
    assert verdict.metadata["pid"] == os.getpid()
    assert "part [5 partitions, one run] (in a second process)" in starts
    assert starts[-1] == "every_part (every partition)"
    assert len({r.dagster_run.job_name for r in runs}) == len(runs)  # no job name reused with other assets


def test_lanes_keep_keys_of_one_step_and_their_readers_together() -> None:
    graph = build().resolve_asset_graph()
    apart = lanes_of(graph, _keys("slow", "slow_too", "first"), lambda key: key.to_user_string())
    assert apart == [_keys("slow"), _keys("slow_too"), _keys("first")]
    # two outputs of one multi-asset are one step: never two processes running it
    one_step = lanes_of(graph, _keys("slow", "slow_too"), lambda key: "the drills")
    assert one_step == [_keys("slow", "slow_too")]
    reading = lanes_of(graph, _keys("slow", "first", "second", "reader"), lambda key: key.to_user_string())
    assert reading == [_keys("slow", "first", "second", "reader")]  # reader joins what it reads


def test_a_process_spawned_in_advance_runs_the_beside_set_over_the_most_partitions() -> None:
    spare, unused = RunnerProcess(build, False).spawn(), RunnerProcess(build, False).spawn()
    assert spare.wait_ready(60) and unused.wait_ready(60)  # loaded the project, idle
    with dg.instance_for_test() as instance:
        summary = Runner(build(), instance, defs_factory=build, spares=[spare]).run(
            _keys("latency_probe", "slow", "first")
        )
        alone = Runner(build(), instance, defs_factory=build, spares=[unused]).run(_keys("first"))
    meta = {s.asset: s.metadata for s in summary.steps}
    assert summary.ok and meta["slow"]["pid"] == spare.pid
    assert meta["latency_probe"]["end"] <= meta["slow"]["start"]  # measured while the spare sat idle
    assert alone.ok and not spare.alive and not unused.alive  # closed at the end, used or not


def test_a_spare_that_fails_to_load_is_not_waited_for_and_its_error_is_reported() -> None:
    spare = RunnerProcess(broken_build, False).spawn()
    started = time.monotonic()
    assert spare.wait_ready(60) is False and time.monotonic() - started < 30  # died: not waited for
    with dg.instance_for_test() as instance:
        runner = Runner(build(), instance, defs_factory=build, spares=[spare])
        with pytest.raises(RuntimeError, match="the project does not load"):
            runner.run(_keys("slow", "first"))
    assert not spare.alive


def test_an_error_reported_before_the_selection_is_handed_over_is_not_lost() -> None:
    spare = RunnerProcess(broken_build, False).spawn()
    assert spare.wait_ready(60) is False
    raised: list[BaseException] = []
    with dg.instance_for_test() as instance:
        spare.start(instance, job_prefix="t_run", suffix="t", on_run=None, on_step=None, on_run_done=None)
        time.sleep(2.5)  # the relay has read the error (it polls every second) before anything is submitted
        spare.submit(_keys("slow"), None, offset=0, total=1)

        def wait() -> None:
            try:
                spare.wait()
            except RuntimeError as err:
                raised.append(err)

        waiter = threading.Thread(target=wait, daemon=True)
        waiter.start()
        waiter.join(30)
    spare.close()
    assert raised and "the project does not load" in str(raised[0])  # at once, not a wait forever
