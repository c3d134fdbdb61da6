"""Assets tagged beside run in a second process while the runner computes the rest; what reads from
them waits for that process, and runs as late as the dependency order allows."""

from __future__ import annotations

import os
import time

import dagster as dg

from stress_pipeline.defs.beside import BESIDE, QUIET, ordered_groups
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


def build() -> dg.Definitions:
    """The factory the second process calls (module level, so a spawned process can import it)."""
    return dg.Definitions(assets=[slow, broken_slow, latency_probe, first, second, reader])


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
    assert "stress_pipeline_beside_run_1" in jobs and "stress_pipeline_run_1" in jobs  # never the same name


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
