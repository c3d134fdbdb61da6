"""The runner's accounting of a step that materialises several assets (like the drills step, which
stores the criteria and the detections): one step, its time counted once in the time by phase."""

from __future__ import annotations

import dagster as dg
import pytest

from stress_pipeline.defs.runner import Runner, StepDone


@dg.multi_asset(group_name="pair", outs={"first": dg.AssetOut(), "second": dg.AssetOut()})
def pair() -> tuple[int, int]:
    return sum(range(100_000)), 2


def test_a_step_of_two_assets_is_one_step_counted_once() -> None:
    steps: list[StepDone] = []
    defs = dg.Definitions(assets=[pair])
    with dg.instance_for_test() as instance:
        summary = Runner(defs, instance, on_step=steps.append).run([dg.AssetKey("first"), dg.AssetKey("second")])
    [step] = steps
    assert sorted(step.names) == ["first", "second"] and step.ok and step.seconds > 0
    assert {(s.asset, s.status) for s in summary.steps} == {("first", "materialized"), ("second", "materialized")}
    assert summary.group_seconds["pair"] == pytest.approx(step.seconds)
