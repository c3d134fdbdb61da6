"""Fault plans: order and timing of the actions, crashes fired once, delivery faults that are
deterministic and never lose a fill."""

from __future__ import annotations

import re
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stress_pipeline.faults import FaultPlan, duplicate, shuffle_window
from stress_pipeline.scenarios.fault_model import FaultSpecError, RedisDownFault
from stress_pipeline.state.records import Fill, fill_from_values

START = 1_700_000_000_000_000_000
S = 1_000_000_000


def _fills(n: int, *, step_s: float = 1.0) -> list[Fill]:
    return [
        fill_from_values("run-plan", i, i, START + int(i * step_s * S), "BTCUSDT", i, 0.01, 100 + i, 0.001)
        for i in range(n)
    ]


# ------------------------------------------------------------------------------------------- schedule


def test_actions_are_ordered_in_sim_time_and_handed_out_once() -> None:
    plan = FaultPlan.from_scenario(
        [
            {"kind": "postgres_down", "at_s": 30, "duration_s": 10},
            RedisDownFault(at_s=10, duration_s=20),
            {"kind": "exchange_outage", "at_s": 5, "duration_s": 5},  # the exchange's, not the plan's
            {"kind": "writer_crash", "at_s": 30, "params": {"point": "after_ledger_before_redis"}},
        ],
        START,
    )
    assert [(a.at_ns - START, a.phase, a.kind) for a in plan.actions] == [
        (10 * S, "begin", "redis_down"),
        (30 * S, "end", "redis_down"),  # ends before what begins at the same time: windows are [begin, end)
        (30 * S, "begin", "postgres_down"),
        (30 * S, "begin", "writer_crash"),
        (30 * S, "end", "writer_crash"),  # zero length: begins, then ends
        (40 * S, "end", "postgres_down"),
    ]
    assert [a.target for a in plan.actions[:3]] == ["redis", "redis", "postgres"]
    assert plan.actions[3].crash_point == "after_ledger_before_redis"

    assert plan.due(START) == []
    assert [a.kind for a in plan.due(START + 10 * S)] == ["redis_down"]
    assert plan.due(START + 10 * S) == []  # never twice
    assert len(plan.due(START + 35 * S)) == 4
    assert len(plan.pending) == 1
    assert plan.due(START + 10**6 * S) == list(plan.actions[-1:])
    plan.reset()
    assert len(plan.due(START + 10**6 * S)) == 6


def test_active_windows() -> None:
    plan = FaultPlan.from_scenario([{"kind": "duplicate_fills", "at_s": 5, "duration_s": 5}], START)
    assert plan.active("duplicate_fills", START + 4 * S) == []
    assert [a.index for a in plan.active("duplicate_fills", START + 5 * S)] == [0]
    assert plan.active("duplicate_fills", START + 10 * S) == []
    assert plan.active("redis_down", START + 6 * S) == []


def test_writer_crash_fires_once_at_its_point() -> None:
    plan = FaultPlan.from_scenario([{"kind": "writer_crash", "at_s": 3}, {"kind": "writer_crash", "at_s": 8}], START)
    point = "after_ledger_before_redis"
    assert plan.take_crash(point, START + 2 * S) is None
    first = plan.take_crash(point, START + 5 * S)
    assert first is not None and first.index == 0
    assert plan.take_crash(point, START + 6 * S) is None  # taken
    assert plan.take_crash(point, START + 9 * S).index == 1
    assert plan.take_crash(point, START + 99 * S) is None
    plan.reset()
    assert plan.take_crash(point, START + 99 * S).index == 0
    with pytest.raises(ValueError, match="unknown crash point"):
        plan.take_crash("before_everything", START)


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ({"kind": "writer_crash", "at_s": 1, "params": {"point": "nowhere"}}, "(writer_crash): params.point"),
        ({"kind": "writer_crash", "at_s": 1, "duration_s": 5}, "(writer_crash): duration_s: a writer crash is inst"),
        (
            {"kind": "duplicate_fills", "at_s": 1, "duration_s": 1, "params": {"rate": 1.5}},
            "params.rate: Input should be less than or equal to 1 (got 1.5)",
        ),
        ({"kind": "duplicate_fills", "at_s": 1, "duration_s": 1, "params": {"rate": True}}, "params.rate"),
        ({"kind": "out_of_order_fills", "at_s": 1, "duration_s": 1, "params": {"window": 2.5}}, "params.window"),
        ({"kind": "out_of_order_fills", "at_s": 1, "duration_s": 1, "params": {"window": 0}}, "params.window"),
        ({"kind": "redis_down", "at_s": 1}, "faults[0] (redis_down): duration_s: missing (required)"),
        (
            {"kind": "redis_down", "at_s": 1, "duration_s": 0},
            "duration_s: Input should be greater than or equal to 0.000000001 (got 0)",  # a window of at least 1 ns
        ),
        ({"kind": "redis_down", "at_s": -1, "duration_s": 1}, "at_s: Input should be greater than or equal to 0"),
        ({"kind": "redis_down", "at_s": 1, "duration_s": 1, "params": {"rate": 1}}, "params.rate: unknown field"),
        ({"kind": "redis_gone", "at_s": 1, "duration_s": 1}, "kind: expected one of redis_down, postgres_down"),
    ],
)
def test_bad_faults_fail_when_the_plan_is_built_naming_the_field(fault: dict, message: str) -> None:
    with pytest.raises(FaultSpecError, match=re.escape(message)):
        FaultPlan.from_scenario([fault], START)


def test_overlapping_outages_of_one_server_are_refused() -> None:
    with pytest.raises(ValueError, match="overlaps"):
        FaultPlan.from_scenario(
            [{"kind": "redis_down", "at_s": 0, "duration_s": 10}, {"kind": "redis_down", "at_s": 5, "duration_s": 1}],
            START,
        )
    # Back to back, or of different servers, is fine.
    FaultPlan.from_scenario(
        [
            {"kind": "redis_down", "at_s": 0, "duration_s": 5},
            {"kind": "redis_down", "at_s": 5, "duration_s": 1},
            {"kind": "postgres_down", "at_s": 1, "duration_s": 10},
        ],
        START,
    )


# ------------------------------------------------------------------------------------------- delivery


def test_duplicate_is_deterministic_and_keeps_every_fill() -> None:
    fills = _fills(200)
    first = duplicate(fills, 0.25, np.random.default_rng(7))
    assert first == duplicate(fills, 0.25, np.random.default_rng(7))
    assert first != duplicate(fills, 0.25, np.random.default_rng(8))
    assert list(dict.fromkeys(first)) == fills  # every fill, in order, each copy right after its original
    copies = len(first) - len(fills)
    assert 20 <= copies <= 80
    assert all(n in (1, 2) for n in Counter(f.idempotency_key for f in first).values())
    assert duplicate(fills, 0.0, np.random.default_rng(7)) == fills
    assert len(duplicate(fills, 1.0, np.random.default_rng(7))) == 400


def test_shuffle_window_is_deterministic_and_bounded() -> None:
    fills = _fills(100)
    out = shuffle_window(fills, 4, np.random.default_rng(3))
    assert out == shuffle_window(fills, 4, np.random.default_rng(3))
    assert sorted(out, key=lambda f: f.event_id) == fills and out != fills
    assert all(abs(out.index(f) - i) < 4 for i, f in enumerate(fills))
    assert shuffle_window(fills, 1, np.random.default_rng(3)) == fills


@settings(max_examples=60, deadline=None)
@given(
    items=st.lists(st.integers(), max_size=60),
    rate=st.floats(0, 1),
    window=st.integers(1, 10),
    seed=st.integers(0, 2**32 - 1),
)
def test_delivery_faults_never_lose_an_item(items: list[int], rate: float, window: int, seed: int) -> None:
    tagged = list(enumerate(items))  # unique items
    doubled = duplicate(tagged, rate, np.random.default_rng(seed))
    assert list(dict.fromkeys(doubled)) == tagged and len(doubled) <= 2 * len(tagged)
    shuffled = shuffle_window(tagged, window, np.random.default_rng(seed))
    assert sorted(shuffled) == tagged
    assert all(abs(shuffled.index(item) - i) < window for i, item in enumerate(tagged))


def test_deliver_applies_each_fault_to_its_window_only() -> None:
    faults = [
        {"kind": "duplicate_fills", "at_s": 10, "duration_s": 10, "params": {"rate": 0.5}},
        {"kind": "out_of_order_fills", "at_s": 30, "duration_s": 10, "params": {"window": 5}},
    ]
    fills = _fills(50)
    delivered = FaultPlan.from_scenario(faults, START, seed=11).deliver(fills)
    assert delivered == FaultPlan.from_scenario(faults, START, seed=11).deliver(fills)
    assert delivered != FaultPlan.from_scenario(faults, START, seed=12).deliver(fills)
    assert set(delivered) == set(fills)
    counts = Counter(f.fill_id for f in delivered)
    assert {int(k) for k, n in counts.items() if n == 2} <= set(range(10, 20))
    assert any(n == 2 for n in counts.values())
    extra = len(delivered) - len(fills)
    assert delivered[:10] == fills[:10]  # before any window: untouched
    window = delivered[30 + extra : 40 + extra]
    assert sorted(window, key=lambda f: f.event_id) == fills[30:40] and window != fills[30:40]
    assert delivered[40 + extra :] == fills[40:]
