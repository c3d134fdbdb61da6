"""The seeded fault campaign: schedules replay from their seed, the reorder buffer restores order, a
small campaign over real servers ends with nothing lost, and a writer that drops fills fails it."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stress_pipeline.faults.campaign import FAULT_KINDS, CampaignConfig, make_schedule, reorder, run_campaign
from stress_pipeline.faults.plan import duplicate, shuffle_window
from stress_pipeline.services import embedded
from stress_pipeline.settings import get_settings
from stress_pipeline.state.writer import StateWriter

CLI = [sys.executable, "-m", "stress_pipeline.cli"]


@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, 2**32))
def test_a_schedule_is_a_function_of_its_seed(seed: int) -> None:
    schedule = make_schedule(seed)
    assert make_schedule(seed) == schedule
    config = CampaignConfig()
    assert config.min_fills <= len(schedule.fills) <= config.max_fills
    assert sum(schedule.batches) == len(schedule.delivered)
    assert all(1 <= b <= config.max_batch for b in schedule.batches)
    assert sorted(f.event_id for f in set(schedule.delivered)) == [f.event_id for f in schedule.fills]
    assert 1 <= len(schedule.faults) <= config.max_faults and {f.kind for f in schedule.faults} <= set(FAULT_KINDS)
    for target in ("postgres", "redis"):
        spans = sorted((f.write, f.end) for f in schedule.faults if f.target == target)
        assert all(end < next_start for (_, end), (next_start, _) in itertools.pairwise(spans))
    assert all(0 <= f.write < len(schedule.batches) for f in schedule.faults)


def test_seeds_give_varied_schedules() -> None:
    kinds = {fault.kind for seed in range(60) for fault in make_schedule(seed).faults}
    assert kinds == set(FAULT_KINDS)
    assert len({make_schedule(seed).faults for seed in range(60)}) == 60


@settings(max_examples=200, deadline=None)
@given(count=st.integers(0, 80), window=st.integers(1, 12), rate=st.floats(0, 0.5), seed=st.integers(0, 10**6))
def test_the_reorder_buffer_restores_event_order(count: int, window: int, rate: float, seed: int) -> None:
    fills = list(range(count))
    rng = np.random.default_rng(seed)

    class F:  # the buffer needs only event ids
        def __init__(self, event_id: int) -> None:
            self.event_id = event_id

    delivered = shuffle_window([F(i) for i in duplicate(fills, rate, rng)], window, rng)
    out = [f.event_id for f in reorder(delivered, window)]
    assert out == sorted(out) and sorted(set(out)) == fills and len(out) == len(delivered)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory):
    settings_ = get_settings({"STRESS_HOME": str(tmp_path_factory.mktemp("campaign-home"))})
    embedded.start(settings_)
    try:
        yield settings_
    finally:
        embedded.stop(settings_)


@pytest.mark.services
def test_a_small_campaign_against_the_embedded_servers_loses_nothing(home) -> None:
    env = {**os.environ, "STRESS_HOME": str(home.home)}
    env.pop("STRESS_POSTGRES_URL", None)
    env.pop("STRESS_REDIS_URL", None)
    out = subprocess.run([*CLI, "bench", "faults", "--seed", "4", "--schedules", "4", "--json"],
                         capture_output=True, text=True, env=env, timeout=600)  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    totals = json.loads(out.stdout)
    assert totals["schedules"] == 4 and totals["failing_seeds"] == []
    assert (totals["fills_lost"], totals["fills_duplicated"], totals["fills_unexpected"], totals["breaks"]) == (0,) * 4
    assert totals["faults_injected"] >= 4 and totals["outages_seen"] >= 1 and totals["slowest_recovery_s"] > 0
    assert totals["fills"] == sum(len(make_schedule(seed).fills) for seed in range(4, 8))
    kinds = [d["faults"] for d in totals["schedules_detail"]]
    assert kinds == [dict(make_schedule(seed).injected()) for seed in range(4, 8)]  # replayable from the seed
    text = subprocess.run([*CLI, "bench", "faults", "--seed", "5", "--schedules", "1"], capture_output=True,
                          text=True, env=env, timeout=600)  # fmt: skip
    assert text.returncode == 0 and "fills lost                0   target 0   ok" in text.stdout


@pytest.mark.services
def test_a_writer_that_drops_fills_fails_the_campaign_with_its_seeds(home, monkeypatch, tmp_path: Path) -> None:
    real_write = StateWriter.write

    def lossy_write(self, fills, marks, now_ns):
        return real_write(self, [f for f in fills if f.event_id % 7 != 3], marks, now_ns)

    monkeypatch.setattr(StateWriter, "write", lossy_write)
    result = run_campaign(home, 11, 2, buffer_root=tmp_path / "buffers")
    totals = result.totals()
    assert totals["failing_seeds"] == [11, 12]
    expected = sum(len([f for f in make_schedule(s).fills if f.event_id % 7 == 3]) for s in (11, 12))
    assert totals["fills_lost"] == expected > 0


@pytest.mark.services
def test_the_campaign_against_configured_servers(external_service_urls, tmp_path: Path) -> None:
    settings_ = get_settings({"STRESS_HOME": str(tmp_path / "home"), "STRESS_POSTGRES_URL":
                              external_service_urls.postgres_url, "STRESS_REDIS_URL": external_service_urls.redis_url})
    result = run_campaign(settings_, 20, 3, CampaignConfig(schema="campaign_test"), buffer_root=tmp_path / "b")
    totals = result.totals()
    assert totals["failing_seeds"] == [], totals["errors"]
    assert totals["fills_lost"] == totals["fills_duplicated"] == totals["fills_unexpected"] == 0
    assert not (tmp_path / "home" / "services").exists()  # nothing embedded was started
