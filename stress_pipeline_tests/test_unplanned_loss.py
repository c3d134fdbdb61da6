"""Unplanned server loss during a reconciliation run: kill -9 of the embedded Redis or PostgreSQL at
a random point (outside any planned outage). The run ends within the bound, recovered (the supervisor
restarted the server) or failed with one error naming the server, and nothing is lost: the ledger,
plus any buffer left on disk, holds every exchange fill."""

from __future__ import annotations

import contextlib
import random
import signal
import threading
import time
import uuid
from pathlib import Path

import pytest

from stress_pipeline.market.synthetic import generate_bars
from stress_pipeline.scenarios.fault_model import parse_faults
from stress_pipeline.services import embedded, stop_embedded
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
        stop_embedded(settings)  # both pairs: the shared one and the one planned outages stop


@pytest.fixture(scope="module")
def paper():
    return run_paper(generate_bars(days=6), None, ACTIVE, scenario_name="loss")


def _kill_later(
    settings: Settings, target: str, delay: float, killed: list[float], then=lambda: None
) -> threading.Thread:
    def kill() -> None:
        time.sleep(delay)
        record = embedded.read_state(settings).get(target)
        pids = [record.pid, *processes_in(Path(record.data_dir))]
        for pid in pids:
            send_signal(pid, signal.SIGKILL)
        killed.append(time.monotonic())
        then()

    thread = threading.Thread(target=kill, daemon=True)
    thread.start()
    return thread


@pytest.mark.services
@pytest.mark.parametrize("target,seed", [("redis", 1), ("postgres", 2), ("redis", 3), ("postgres", 4)])
def test_kill_9_during_a_run_recovers_or_fails_cleanly_losing_nothing(
    paper, home: Settings, tmp_path: Path, target: str, seed: int
) -> None:
    from stress_pipeline.services import postgres_engine, resolve_service_urls
    from stress_pipeline.state.ledger import Ledger

    run_id = f"loss-{uuid.uuid4().hex[:8]}"
    killed: list[float] = []
    schema = f"loss_{uuid.uuid4().hex[:8]}"
    # small writes, so that the replay lasts long enough to be killed at a point chosen by the seed: once
    # the ledger holds that many of the run's fills (a wall-clock delay outlived the replay once it got fast)
    config = LiveStateConfig(schema=schema, namespace=f"loss-{run_id}", batch_fills=2,
                             supervisor=SupervisorPolicy(restart_attempts=3))  # fmt: skip
    at_fill = random.Random(seed).randint(1, len(exchange_fills(paper, run_id)) // 2)
    ledger = Ledger(postgres_engine(resolve_service_urls(home).postgres_url), schema=schema)

    def when_written() -> None:
        deadline = time.monotonic() + BOUND_S
        while time.monotonic() < deadline:
            with contextlib.suppress(Exception):
                if ledger.fill_count(run_id) >= at_fill:
                    break
            time.sleep(0.005)
        ledger.engine.dispose()
        _kill_later(home, target, 0.0, killed).join()

    thread = threading.Thread(target=when_written, daemon=True)
    started = time.monotonic()
    thread.start()
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


@pytest.mark.services
def test_a_server_that_cannot_come_back_fails_the_run_naming_it_and_the_next_run_replays_its_buffer(
    paper, home: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stress_pipeline.services import postgres_engine, resolve_service_urls
    from stress_pipeline.state.disk_buffer import DiskBuffer
    from stress_pipeline.state.ledger import Ledger
    from stress_pipeline.state.records import Fill

    real_start = embedded.start

    def broken_start(settings, names=embedded.SERVICE_NAMES, **kwargs):
        if "postgres" in list(names):
            raise RuntimeError("port 1 is taken")
        return real_start(settings, names, **kwargs)

    schema, buffers, dead = f"fail_{uuid.uuid4().hex[:8]}", tmp_path / "buffers", f"dead-{uuid.uuid4().hex[:6]}"
    config = LiveStateConfig(schema=schema, namespace=f"fail-{dead}", batch_fills=2,  # long enough to kill
                             supervisor=SupervisorPolicy(restart_attempts=2, probe_interval_s=0.05))  # fmt: skip
    killed: list[float] = []
    ledger = Ledger(postgres_engine(resolve_service_urls(home).postgres_url), schema=schema)

    def kill_once_writing() -> None:  # mid-run: once the ledger holds some of the run's fills
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(Exception):
                if ledger.fill_count(dead) > 0:
                    break
            time.sleep(0.05)
        ledger.engine.dispose()
        # once killed, the server cannot be started again (its port taken, say)
        _kill_later(home, "postgres", 0.0, killed, then=lambda: monkeypatch.setattr(embedded, "start", broken_start))

    threading.Thread(target=kill_once_writing, daemon=True).start()
    started = time.monotonic()
    with pytest.raises(ServerLostError) as caught:
        run_live_state(paper, run_id=dead, faults=[], settings=home, initial_cash=100_000.0, buffer_root=buffers,
                       config=config)  # fmt: skip
    assert time.monotonic() - started < BOUND_S and killed
    assert caught.value.server.startswith("embedded PostgreSQL at postgresql://")
    message = str(caught.value)
    assert "did not come back after 2 restart attempt(s)" in message and "port 1 is taken" in message
    monkeypatch.setattr(embedded, "start", real_start)
    real_start(home)
    buffered = [r for r in DiskBuffer(buffers / dead / "postgres").read() if isinstance(r, Fill)]
    assert buffered, "the loss happened with nothing buffered: the test exercised nothing"

    outcome = run_live_state(paper, run_id=f"next-{uuid.uuid4().hex[:6]}", faults=[], settings=home,
                             initial_cash=100_000.0, buffer_root=buffers, config=config)  # fmt: skip
    assert outcome.report.passed and outcome.leftovers.aborted == [dead]
    assert outcome.leftovers.replayed[dead] >= len(buffered) and not (buffers / dead).exists()
    stored = sorted(f.event_id for f in ledger.fills(dead))
    truth = [f.event_id for f in exchange_fills(paper, dead)]
    assert {f.event_id for f in buffered} <= set(stored)
    assert stored == truth[: len(stored)]  # every fill the dead run had written: a prefix, no gap
    assert ledger.run_status(dead) == "aborted"


KILLED_RUN = """
import sys, uuid
from pathlib import Path
from stress_pipeline.market.synthetic import generate_bars
from stress_pipeline.scenarios.fault_model import parse_faults
from stress_pipeline.settings import get_settings
from stress_pipeline.simulation import SimConfig, run_paper
from stress_pipeline.state.live_run import LiveStateConfig, run_live_state

home, buffers, run_id, schema = sys.argv[1:5]
paper = run_paper(generate_bars(days=6), None, SimConfig(strategy="trend", strategy_params={"fast": 15, "slow": 90,
                  "band": 0.0005}), scenario_name="loss")
faults = parse_faults([{"kind": "postgres_down", "at_s": 3600 * 24, "duration_s": 3600 * 96}])
run_live_state(paper, run_id=run_id, faults=faults, settings=get_settings({"STRESS_HOME": home}),
               initial_cash=100_000.0, buffer_root=Path(buffers), config=LiveStateConfig(schema=schema))
"""


@pytest.mark.services
def test_a_run_process_killed_mid_outage_is_repaired_by_the_next_run(paper, home: Settings, tmp_path: Path) -> None:
    import subprocess
    import sys

    from stress_pipeline.services import postgres_engine, resolve_service_urls
    from stress_pipeline.state.ledger import Ledger

    schema, buffers, dead = f"killed_{uuid.uuid4().hex[:8]}", tmp_path / "buffers", f"killed-{uuid.uuid4().hex[:6]}"
    process = subprocess.Popen([sys.executable, "-c", KILLED_RUN, str(home.home), str(buffers), dead, schema])
    pending = buffers / dead / "postgres" / "pending.jsonl"
    deadline = time.monotonic() + 180
    while not (pending.exists() and pending.read_bytes().count(b"\n") >= 5):  # mid-outage, fills buffered
        assert process.poll() is None and time.monotonic() < deadline, "the run ended before it could be killed"
        time.sleep(0.05)
    process.kill()
    assert process.wait(30) == -9
    lines = pending.read_bytes().count(b"\n")

    config = LiveStateConfig(schema=schema, namespace=f"next-{dead}")
    # A run on the shared servers leaves it: the killed run wrote to the pair planned outages use.
    outcome = run_live_state(paper, run_id=f"shared-{uuid.uuid4().hex[:6]}", faults=[], settings=home,
                             initial_cash=100_000.0, buffer_root=buffers, config=config)  # fmt: skip
    assert outcome.report.passed and outcome.leftovers.other_servers == [dead] and (buffers / dead).exists()
    # The next run with a planned outage (on the same servers) repairs it.
    outage = parse_faults([{"kind": "redis_down", "at_s": 3600 * 24, "duration_s": 60}])
    outcome = run_live_state(paper, run_id=f"next-{uuid.uuid4().hex[:6]}", faults=outage, settings=home,
                             initial_cash=100_000.0, buffer_root=buffers, config=config)  # fmt: skip
    assert outcome.report.passed
    assert outcome.leftovers.aborted == [dead] and outcome.leftovers.replayed[dead] >= lines
    assert outcome.leftovers.unreplayed == {} and not (buffers / dead).exists()
    ledger = Ledger(postgres_engine(resolve_service_urls(home.for_planned_outages()).postgres_url), schema=schema)
    stored = sorted(f.event_id for f in ledger.fills(dead))
    assert stored == [f.event_id for f in exchange_fills(paper, dead)][: len(stored)] and len(stored) >= lines // 2
    assert ledger.run_status(dead) == "aborted"
