"""Merging a live replay's per-bar writes: same fills in the same order, never across a fault action,
and the same outage and health records as bar by bar, in far fewer writes."""

from __future__ import annotations

import uuid
from itertools import pairwise
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stress_pipeline.faults.plan import FaultPlan
from stress_pipeline.market.synthetic import generate_bars
from stress_pipeline.scenarios.fault_model import parse_faults
from stress_pipeline.services import stop_embedded
from stress_pipeline.settings import Settings, get_settings
from stress_pipeline.simulation import SimConfig, run_paper
from stress_pipeline.state import live_run
from stress_pipeline.state.live_run import LiveStateConfig, run_live_state
from stress_pipeline.state.live_run_batches import coalesce_writes

HOUR = 3600
NS = 1_000_000_000
ACTIVE = SimConfig(strategy="trend", strategy_params={"fast": 15, "slow": 90, "band": 0.0005})

_KINDS = ("redis_down", "postgres_down", "writer_crash", "duplicate_fills")


@st.composite
def replays(draw):
    """Per-bar writes (sim time, fills tagged with their write's number) and a fault plan."""
    gaps = draw(st.lists(st.integers(0, 5), min_size=0, max_size=40))
    sizes = draw(st.lists(st.integers(1, 4), min_size=len(gaps), max_size=len(gaps)))
    writes, now = [], 0
    for number, (gap, size) in enumerate(zip(gaps, sizes, strict=True)):
        now += gap * NS
        writes.append((now, [(number, j) for j in range(size)]))
    faults, free_s = [], 0  # outages may not overlap: lay them out one after the other
    for kind in draw(st.lists(st.sampled_from(_KINDS), max_size=4)):
        at_s = free_s + draw(st.integers(0, 60))
        if kind == "writer_crash":
            faults.append({"kind": kind, "at_s": at_s, "params": {"point": "after_ledger_before_redis"}})
            continue
        duration_s = draw(st.integers(1, 30))
        params = {"rate": 0.5} if kind == "duplicate_fills" else {}
        faults.append({"kind": kind, "at_s": at_s, "duration_s": duration_s, "params": params})
        free_s = at_s + duration_s
    limit = draw(st.integers(1, 12))
    return writes, FaultPlan.from_scenario(parse_faults(faults), 0).actions, limit


@given(replays())
def test_merged_writes_keep_the_fills_and_every_fault_boundary(case) -> None:
    writes, actions, limit = case
    merged = list(coalesce_writes(writes, actions, limit))
    # the same fills, in the same order, each once; no write empty or over the limit (inputs are <= 4)
    assert [f for _, fills in merged for f in fills] == [f for _, fills in writes for f in fills]
    assert all(0 < len(fills) <= max(limit, 4) for _, fills in merged)
    times = [t for t, _ in writes]
    action_times = sorted({a.at_ns for a in actions})
    outages = [(a.begin_ns, a.end_ns) for a in actions if a.phase == "begin" and a.target is not None]

    def fired(k: int) -> bool:  # the first write, or an action falls due just before write k
        return k == 0 or any(times[k - 1] < at <= times[k] for at in action_times)

    def alone(k: int) -> bool:
        return fired(k) or any(begin <= times[k] < end for begin, end in outages)

    groups = []
    for now_ns, fills in merged:
        members = sorted({number for number, _ in fills})
        assert members == list(range(members[0], members[-1] + 1))  # consecutive writes
        assert now_ns == times[members[-1]]  # at the sim time of the newest
        if len(members) > 1:
            assert not any(alone(k) for k in members)
            assert len(fills) <= limit
        groups.append(members)
    for first, second in pairwise(groups):  # greedy: a cut always has a reason
        size = sum(len(writes[k][1]) for k in first) + len(writes[second[0]][1])
        assert alone(first[0]) or alone(second[0]) or size > limit


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 1 fill"):
        list(coalesce_writes([(0, [1])], (), 0))
    with pytest.raises(ValueError, match="out of time order: 5 after 9"):
        list(coalesce_writes([(9, [1]), (5, [2])], (), 10))


# ------------------------------------------------------------------------------ live, real servers


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory):
    settings = get_settings({"STRESS_HOME": str(tmp_path_factory.mktemp("batches-home"))})
    try:
        yield settings
    finally:
        stop_embedded(settings)  # both pairs: the shared one and the one planned outages stop


@pytest.fixture(scope="module")
def paper():
    return run_paper(generate_bars(days=3), None, ACTIVE, scenario_name="batches")


def _live(paper, settings: Settings, faults, tmp_path: Path):
    config = LiveStateConfig(schema=f"ledger_{uuid.uuid4().hex[:8]}", namespace=f"b-{uuid.uuid4().hex[:8]}")
    return run_live_state(
        paper, run_id=f"b-{uuid.uuid4().hex[:8]}", faults=faults, settings=settings, initial_cash=100_000.0,
        buffer_root=tmp_path / "buffers", config=config,
    )  # fmt: skip


def _timeline(outcome) -> tuple[list, list]:
    """The outage records and health changes, without the wall-clock figures."""
    outages = [{k: v for k, v in o.items() if k != "flush_seconds"} for o in outcome.outages]
    return outages, [dict(h) for h in outcome.health]


@pytest.mark.services
def test_merged_replay_has_the_bar_by_bar_timeline_in_fewer_writes(
    paper, home: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    faults = parse_faults([
        {"kind": "postgres_down", "at_s": 10 * HOUR, "duration_s": 60},
        {"kind": "writer_crash", "at_s": 20 * HOUR, "params": {"point": "after_ledger_before_redis"}},
        {"kind": "redis_down", "at_s": 30 * HOUR, "duration_s": 60},
    ])  # fmt: skip
    merged = _live(paper, home, faults, tmp_path / "merged")
    monkeypatch.setattr(live_run, "coalesce_writes", lambda writes, actions, limit: writes)
    by_bar = _live(paper, home, faults, tmp_path / "by-bar")
    for outcome in (merged, by_bar):
        assert outcome.report.passed, outcome.report.summary()
        assert outcome.writer["crashes"] == 1
    assert merged.report.exchange_fills == by_bar.report.exchange_fills == len(paper.fills) > 50
    assert _timeline(merged) == _timeline(by_bar)
    assert {t["target"] for t in merged.writer["outage_timings"]} == {"postgres", "redis"}
    assert merged.writer["fills"] == by_bar.writer["fills"]
    assert merged.writer["batches"] * 5 < by_bar.writer["batches"]
