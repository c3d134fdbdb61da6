"""Sweep points in batches: every key once, none dropped, batches no larger than asked, one system's points
together, and a batch of one system runs its baseline once."""

from __future__ import annotations

import itertools

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stress_pipeline.sweeps.batches import plan_batches


def _points(systems: list[int]) -> pd.DataFrame:
    return pd.DataFrame({
        "key": [f"s__{i:04d}" for i in range(len(systems))],
        "strategy": "trend", "strategy_params": "{}", "policy": "default",
        "policy_overrides": [f'{{"risk.stop_loss.pct": {s}}}' for s in systems],
    })  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(systems=st.lists(st.integers(0, 4), min_size=1, max_size=60), per_step=st.integers(1, 12), data=st.data())
def test_batches_hold_every_key_once_in_steps_of_at_most_the_size(systems, per_step, data) -> None:
    points = _points(systems)
    keys = data.draw(st.permutations(points["key"].tolist()))
    batches = plan_batches(points, keys, per_step)
    flat = [key for batch in batches for key in batch]
    assert sorted(flat) == sorted(keys)
    assert all(1 <= len(batch) <= per_step for batch in batches)
    assert len(batches) == -(-len(keys) // per_step)
    # One system's points are contiguous, in the order given.
    system = dict(zip(points["key"], points["policy_overrides"], strict=True))
    runs = [system[key] for key in flat]
    changes = sum(a != b for a, b in itertools.pairwise(runs))
    assert changes == len(set(runs)) - 1
    for name in set(runs):
        assert [k for k in flat if system[k] == name] == [k for k in keys if system[k] == name]


def test_a_grid_over_two_systems_in_steps_of_three() -> None:
    points = _points([0, 1, 0, 1, 0, 1])
    assert plan_batches(points, points["key"].tolist(), 3) == [
        ["s__0000", "s__0002", "s__0004"], ["s__0001", "s__0003", "s__0005"],
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("keys", "per_step", "message"),
    [(["s__0000"], 0, "points_per_step=0"), (["s__0000", "s__0000"], 2, "listed twice"),
     (["nope"], 2, "no sweep point nope")],
)  # fmt: skip
def test_bad_requests_are_errors(keys, per_step, message) -> None:
    with pytest.raises(ValueError, match=message):
        plan_batches(_points([0]), keys, per_step)
