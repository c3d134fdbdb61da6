"""Unplanned server loss during a reconciliation run: kill -9 of the embedded Redis or PostgreSQL at
a random point (outside any planned outage). The run ends within the bound, recovered (the supervisor
restarted the server) or failed with one error naming the server, and nothing is lost: the ledger,
plus any buffer left on disk, holds every exchange fill."""

from __future__ import annotations

import random
import signal
import threading
import time
import uuid
from pathlib import Path

import pytest

from stress_pipeline.market.synthetic import generate_bars
from stress_pipeline.services import embedded
from stress_pipeline.services.processes import processes_in, send_signal
from stress_pipeline.settings import Settings, get_settings
from stress_pipeline.simulation import SimConfig, run_paper
from stress_pipeline.state.live_run import LiveStateConfig, exchange_fills, run_live_state
from stress_pipeline.state.supervisor import ServerLostError, SupervisorPolicy

ACTIVE = SimConfig(strategy="trend", strategy_params={"fast": 15, "slow": 90, "band": 0.0005})
BOUND_S = 90.0  # the whole run, kill and restart included


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory):
    settings = get_settings({"STRESS_HOME": str(tmp_path_factory.mktemp("loss-home"))})
    embedded.start(settings)
    try:
        yield settings
    finally:
        embedded.stop(settings)


@pytest.fixture(scope="module")
def paper():
    return run_paper(generate_bars(days=6), None, ACTIVE, scenario_name="loss")


def _kill_later(settings: Settings, target: str, delay: float, killed: list[float]) -> threading.Thread:
    def kill() -> None:
        time.sleep(delay)
        record = embedded.read_state(settings).get(target)
        pids = [record.pid, *processes_in(Path(record.data_dir))]
        for pid in pids:
            send_signal(pid, signal.SIGKILL)
        killed.append(time.monotonic())

    thread = threading.Thread(target=kill, daemon=True)
    thread.start()
    return thread


@pytest.mark.services
@pytest.mark.parametrize("target,seed", [("redis", 1), ("postgres", 2), ("redis", 3), ("postgres", 4)])
def test_kill_9_during_a_run_recovers_or_fails_cleanly_losing_nothing(
    paper, home: Settings, tmp_path: Path, target: str, seed: int
) -> None:
    run_id = f"loss-{uuid.uuid4().hex[:8]}"
    killed: list[float] = []
    started = time.monotonic()
    thread = _kill_later(home, target, random.Random(seed).uniform(0.3, 1.5), killed)
    config = LiveStateConfig(schema=f"loss_{uuid.uuid4().hex[:8]}", namespace=f"loss-{run_id}",
                             supervisor=SupervisorPolicy(restart_attempts=3))  # fmt: skip
    try:
        outcome = run_live_state(paper, run_id=run_id, faults=[], settings=home, initial_cash=100_000.0,
                                 buffer_root=tmp_path / "buffers", config=config)  # fmt: skip
    except ServerLostError as err:  # a clean failure names the server; the buffer keeps the rest
        assert err.server.startswith(f"embedded {embedded.DISPLAY_NAMES[target]} at ")
        pytest.fail(f"the supervisor could not restart the server: {err}")
    thread.join()
    elapsed = time.monotonic() - started
    assert killed and killed[0] - started < outcome.seconds, "the kill came after the run: nothing exercised"
    assert elapsed < BOUND_S
    assert [r["how"] for r in outcome.recoveries] == ["restarted"]
    assert outcome.recoveries[0]["server"].startswith(f"embedded {embedded.DISPLAY_NAMES[target]}")
    report = outcome.report
    assert report.passed, report.summary()
    assert report.ledger_fills == report.exchange_fills == len(exchange_fills(paper, run_id))
    assert (len(report.lost_fills), len(report.duplicated_fills), len(report.unexpected_fills)) == (0, 0, 0)
    assert not (tmp_path / "buffers" / run_id / "postgres" / "pending.jsonl").exists() or not (
        tmp_path / "buffers" / run_id / "postgres" / "pending.jsonl"
    ).stat().st_size
