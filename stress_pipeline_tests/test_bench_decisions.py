"""bench decisions --cpu: the flood and the project's embedded Redis on one CPU, affinities put back."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from stress_pipeline.bench.decisions import on_cpu
from stress_pipeline.services import resolve_service_urls, stop_embedded
from stress_pipeline.services.embedded import read_state
from stress_pipeline.settings import make_settings

CPUS = sorted(os.sched_getaffinity(0))


def test_without_a_cpu_nothing_moves(tmp_path: Path) -> None:
    before = os.sched_getaffinity(0)
    with on_cpu(None, make_settings(home=str(tmp_path), redis_url="redis://127.0.0.1:6379/0")) as placement:
        assert placement == "" and os.sched_getaffinity(0) == before


def test_the_machines_redis_is_left_where_it_is(tmp_path: Path) -> None:
    before = os.sched_getaffinity(0)
    settings = make_settings(home=str(tmp_path), redis_url="redis://127.0.0.1:6379/0")
    with on_cpu(CPUS[-1], settings) as placement:
        assert os.sched_getaffinity(0) == {CPUS[-1]}
        assert placement == f"on CPU {CPUS[-1]}: the flood; the Redis server is not the project's, its placement is " \
                            "the machine's"  # fmt: skip
    assert os.sched_getaffinity(0) == before


def test_a_cpu_this_process_may_not_use_is_refused(tmp_path: Path) -> None:
    settings = make_settings(home=str(tmp_path), redis_url="redis://127.0.0.1:6379/0")
    message = re.escape(f"--cpu 4096: this process may run on CPUs {CPUS} only")
    with pytest.raises(ValueError, match=message), on_cpu(4096, settings):
        pass
    assert os.sched_getaffinity(0) == set(CPUS)


def test_the_embedded_redis_moves_beside_the_flood_and_back(tmp_path: Path) -> None:
    settings = make_settings(home=str(tmp_path / "home"))
    try:
        resolve_service_urls(settings)  # starts the embedded servers of this home
        pid = read_state(settings).redis.pid
        redis_before, mine_before = os.sched_getaffinity(pid), os.sched_getaffinity(0)
        with on_cpu(CPUS[0], settings) as placement:
            assert os.sched_getaffinity(pid) == {CPUS[0]} == os.sched_getaffinity(0)
            assert placement == f"on CPU {CPUS[0]}: the flood, the embedded Redis (pid {pid})"
        assert os.sched_getaffinity(pid) == redis_before and os.sched_getaffinity(0) == mine_before
    finally:
        stop_embedded(settings)


def test_bench_decisions_drives_the_decider_it_is_given(capsys, monkeypatch, external_service_urls) -> None:
    from stress_pipeline.cli import main as cli_main

    monkeypatch.setenv("STRESS_REDIS_URL", external_service_urls.redis_url)
    spec = "stress_pipeline.trading.risk.decision:allow_all"
    assert cli_main(["bench", "decisions", "--seconds", "0.5", "--rate", "1000", "--decider", spec]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"decision flood: {spec}, 1,000/s scheduled for 0.5 s (500 decisions")
    assert "reasons: PASSED 500" in out and "client CPU us per decision" in out
    assert cli_main(["bench", "decisions", "--seconds", "0.1", "--decider", "no_such_module_xyz:f"]) == 1
    assert "decision function 'no_such_module_xyz:f': cannot import module" in capsys.readouterr().err
