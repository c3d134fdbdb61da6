"""The writer while a server is away, the supervisor of an unplanned loss, the repair of dead runs.

Against the machine's PostgreSQL and Redis (STRESS_POSTGRES_URL / STRESS_REDIS_URL), each test in its
own ledger schema and Redis namespace; outages are real: a FaultProxy between the writer and the
server is taken down.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import uuid
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlparse

import pytest
from redis.backoff import NoBackoff
from redis.retry import Retry

from stress_pipeline.faults.proxy import FaultProxy
from stress_pipeline.services import postgres_engine, redis_client
from stress_pipeline.services.connections import check_redis
from stress_pipeline.services.errors import ServiceUnavailableError
from stress_pipeline.state.disk_buffer import FILE_NAME, DiskBuffer, DiskBufferFullError
from stress_pipeline.state.hot_state import HotState
from stress_pipeline.state.ledger import Ledger
from stress_pipeline.state.leftovers import RunInUseError, repair_leftovers, run_lock
from stress_pipeline.state.records import Fill, Mark, fill_from_values
from stress_pipeline.state.supervisor import ServerLostError, Supervisor, SupervisorPolicy
from stress_pipeline.state.writer import POSTGRES, REDIS, StateWriter

CASH = Decimal("100000")


def _fills(run_id: str, first: int, count: int) -> list[Fill]:
    return [
        fill_from_values(run_id, i, i, 1_000 + i, "BTCUSDT", i, 0.5 if i % 3 else -0.25, 100.0 + i % 7, 0.01)
        for i in range(first, first + count)
    ]  # fmt: skip


def _mark(run_id: str, second: int) -> Mark:
    return Mark(run_id=run_id, ts_ns=second * 1_000_000_000, equity=Decimal(100_000 + second))


class Rig:
    """A writer whose PostgreSQL and Redis are each behind a fault proxy."""

    def __init__(self, urls, buffer_root: Path, **writer_options) -> None:
        self.run_id = f"w-{uuid.uuid4().hex[:8]}"
        self.proxies = {
            POSTGRES: FaultProxy("127.0.0.1", urlparse(urls.postgres_url).port).start(),
            REDIS: FaultProxy("127.0.0.1", urlparse(urls.redis_url).port).start(),
        }
        self.ledger = Ledger(postgres_engine(self.proxies[POSTGRES].url_for(urls.postgres_url)),
                             schema=f"w_{uuid.uuid4().hex[:8]}")  # fmt: skip
        self.ledger.migrate()
        self.ledger.start_run(self.run_id, "writer")
        client = redis_client(self.proxies[REDIS].url_for(urls.redis_url), retry=Retry(NoBackoff(), 0))
        self.hot = HotState(client, self.run_id, namespace=f"w-{uuid.uuid4().hex[:6]}")
        self.hot.init(CASH)
        self.buffer_dir = buffer_root / self.run_id
        self.writer = StateWriter(self.run_id, self.ledger, self.hot, self.buffer_dir, initial_cash=CASH,
                                  **writer_options)  # fmt: skip

    def close(self) -> None:
        for proxy in self.proxies.values():
            proxy.stop()


@pytest.fixture
def rig_factory(external_service_urls, tmp_path: Path):
    made: list[Rig] = []

    def make(**options) -> Rig:
        made.append(Rig(external_service_urls, tmp_path / "buffers", **options))
        return made[-1]

    yield make
    for rig in made:
        rig.close()


def _lines(rig: Rig, target: str) -> int:
    path = rig.buffer_dir / target / FILE_NAME
    return path.read_bytes().count(b"\n") if path.exists() else 0


@pytest.mark.services
def test_marks_coalesce_to_one_pending_mark_while_a_server_is_down(rig_factory) -> None:
    rig = rig_factory()
    rig.proxies[POSTGRES].down()
    rig.proxies[REDIS].down()
    for second in range(1, 601):  # ten minutes of heartbeats, nothing else
        rig.writer.write([], [_mark(rig.run_id, second)], second)
    assert _lines(rig, POSTGRES) == 0 and _lines(rig, REDIS) == 0
    assert rig.writer.pending() == {POSTGRES: 1, REDIS: 1}
    rig.writer.write(_fills(rig.run_id, 0, 3), [_mark(rig.run_id, 601)], 601)
    assert _lines(rig, POSTGRES) == 4 and _lines(rig, REDIS) == 4  # the fills and the one newest mark
    for second in range(602, 700):
        rig.writer.write([], [_mark(rig.run_id, second)], second)
    assert _lines(rig, POSTGRES) == 4 and rig.writer.pending()[POSTGRES] == 5
    rig.proxies[POSTGRES].up()
    rig.proxies[REDIS].up()
    rig.writer.flush(700)
    assert rig.writer.pending() == {POSTGRES: 0, REDIS: 0} and rig.writer.health()["mode"] == "NORMAL"
    assert rig.ledger.mark_count(rig.run_id) == 2  # the mark buffered with the fills, then the newest
    assert [f.fill_id for f in rig.ledger.fills(rig.run_id)] == ["0", "1", "2"]
    assert rig.hot.client.get(rig.hot.keys.equity).decode() == "100699"
    assert rig.hot.snapshot().last_event_id == 2


@pytest.mark.services
def test_a_large_backlog_flushes_in_streamed_batches(rig_factory) -> None:
    rig = rig_factory(flush_batch=1_000)
    rig.proxies[POSTGRES].down()
    for start in range(0, 4_500, 500):
        rig.writer.write(_fills(rig.run_id, start, 500), [], start)
    assert len(rig.writer.buffers[POSTGRES]) == 4_500
    sent: list[int] = []
    record = rig.ledger.record_fills
    rig.ledger.record_fills = lambda fills: sent.append(len(fills)) or record(fills)
    rig.proxies[POSTGRES].up()
    rig.writer.flush(5_000)
    assert sent == [1_000, 1_000, 1_000, 1_000, 500]
    assert rig.ledger.fill_count(rig.run_id) == 4_500 and len(rig.writer.buffers[POSTGRES]) == 0
    outage = rig.writer.stats.outages[0]
    assert (outage.target, outage.buffered, outage.flushed, outage.recovered_ns) == (POSTGRES, 4_500, 4_500, 5_000)


@pytest.mark.services
def test_a_full_buffer_fails_the_write_naming_the_file_and_keeps_what_it_holds(rig_factory) -> None:
    rig = rig_factory(max_buffer_bytes=20_000)
    rig.proxies[POSTGRES].down()
    written = 0
    with pytest.raises(DiskBufferFullError, match=f"disk buffer {rig.buffer_dir / POSTGRES / FILE_NAME} holds"):
        while True:
            rig.writer.write(_fills(rig.run_id, written, 10), [], written)
            written += 10
    assert written > 0 and [f.event_id for f in DiskBuffer(rig.buffer_dir / POSTGRES).read()] == list(range(written))
    rig.proxies[POSTGRES].up()
    rig.writer.flush(written)
    assert rig.ledger.fill_count(rig.run_id) == written


# ----------------------------------------------------------------------------------- supervisor


class FakeClock:
    """Time that moves only when the supervisor sleeps (named as a fake: no real waiting)."""

    def __init__(self) -> None:
        self.now = 0.0

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def _down(message: str = "connection refused"):
    def probe() -> None:
        raise ServiceUnavailableError("PostgreSQL", "postgresql://u:secret@db:5432/x", message)

    return probe


def test_an_external_server_past_its_outage_budget_fails_the_run_naming_it() -> None:
    clock = FakeClock()
    supervisor = Supervisor("PostgreSQL at postgresql://u:***@db:5432/x", _down(), None,
                            SupervisorPolicy(outage_budget_s=5, probe_interval_s=0.5),
                            clock=lambda: clock.now, sleep=clock.sleep)  # fmt: skip
    with pytest.raises(ServerLostError, match=r"PostgreSQL at postgresql://u:\*\*\*@db:5432/x has been unreachable "
                       r"for 5.0 s, past its outage budget of 5 s; last probe: connection refused") as caught:
        supervisor.recover()
    assert caught.value.server.startswith("PostgreSQL at") and "secret" not in str(caught.value)
    assert clock.now == 5.0 and supervisor.recoveries == []


def test_an_external_server_back_within_its_budget_is_waited_for() -> None:
    clock = FakeClock()
    answers = iter([False, False, False, True])

    def probe() -> None:
        if not next(answers):
            _down()()

    supervisor = Supervisor("Redis", probe, None, SupervisorPolicy(outage_budget_s=5, probe_interval_s=0.5),
                            clock=lambda: clock.now, sleep=clock.sleep)  # fmt: skip
    recovery = supervisor.recover()
    assert (recovery.how, recovery.attempts, recovery.seconds) == ("returned", 4, 1.5)


def test_an_embedded_server_gets_bounded_restarts() -> None:
    clock = FakeClock()
    restarts: list[float] = []

    def restart() -> None:
        restarts.append(clock.now)
        raise RuntimeError("port 5999 taken")

    supervisor = Supervisor("embedded PostgreSQL", _down(), restart, SupervisorPolicy(restart_attempts=3),
                            clock=lambda: clock.now, sleep=clock.sleep)  # fmt: skip
    with pytest.raises(ServerLostError, match=r"embedded PostgreSQL was lost and did not come back after 3 restart "
                       r"attempt.*last error: port 5999 taken"):  # fmt: skip
        supervisor.recover()
    assert len(restarts) == 3

    up = {"value": False}
    supervisor = Supervisor("embedded Redis", lambda: None if up["value"] else _down()(),
                            lambda: up.update(value=True), clock=lambda: clock.now, sleep=clock.sleep)  # fmt: skip
    assert supervisor.recover().attempts == 1
    with pytest.raises(ValueError, match="restart_attempts must be at least 1"):
        SupervisorPolicy(restart_attempts=0)


@pytest.mark.services
def test_the_supervisor_probes_a_real_server_through_a_proxy(external_service_urls) -> None:
    url = external_service_urls.redis_url
    with FaultProxy("127.0.0.1", urlparse(url).port).start() as proxy:
        proxied = proxy.url_for(url)
        supervisor = Supervisor("Redis at proxy", lambda: check_redis(proxied, 1.0), None,
                                SupervisorPolicy(outage_budget_s=0.6, probe_interval_s=0.05))  # fmt: skip
        proxy.down()
        started = time.monotonic()
        with pytest.raises(ServerLostError, match="Redis at proxy has been unreachable"):
            supervisor.recover()
        assert 0.6 <= time.monotonic() - started < 3.0  # fails within the budget and one probe
        supervisor = Supervisor("Redis at proxy", lambda: check_redis(proxied, 1.0), None,
                                SupervisorPolicy(outage_budget_s=10, probe_interval_s=0.05))  # fmt: skip
        threading.Timer(0.3, proxy.up).start()
        recovery = supervisor.recover()
        assert recovery.how == "returned" and 0.2 < recovery.seconds < 5 and supervisor.alive()


# ------------------------------------------------------------------------------------ leftovers


@pytest.fixture
def ledger(external_service_urls) -> Ledger:
    ledger = Ledger(postgres_engine(external_service_urls.postgres_url), schema=f"lo_{uuid.uuid4().hex[:8]}")
    ledger.migrate()
    return ledger


@pytest.mark.services
def test_a_killed_run_is_repaired_by_the_next(ledger: Ledger, tmp_path: Path) -> None:
    root = tmp_path / "buffers"
    ledger.start_run("dead", "s")
    ledger.record_fills(_fills("dead", 0, 5))
    code = (
        "import os, sys\n"
        "from pathlib import Path\n"
        "from stress_pipeline.state.disk_buffer import DiskBuffer\n"
        "from stress_pipeline.state.leftovers import run_lock\n"
        "from stress_pipeline_tests.test_writer_durability import _fills, _mark\n"
        "with run_lock(Path(sys.argv[1]), 'dead') as directory:\n"
        "    DiskBuffer(directory / 'postgres').append([*_fills('dead', 5, 20), _mark('dead', 9)])\n"
        "    DiskBuffer(directory / 'redis').append(_fills('dead', 3, 22))\n"
        "    os._exit(9)\n"
    )
    result = subprocess.run([sys.executable, "-c", code, str(root)], capture_output=True, text=True)
    assert result.returncode == 9, result.stderr
    ledger.start_run("alive", "s")
    with run_lock(root, "alive") as directory:  # a live run: its lock is held, it is left alone
        DiskBuffer(directory / "postgres").append(_fills("alive", 0, 2))
        with pytest.raises(RunInUseError, match="run alive is in use"), run_lock(root, "alive"):
            pass
        report = repair_leftovers(root, ledger, current="me")
        assert report.replayed == {"dead": 20 + 1 + 22} and report.aborted == ["dead"]
        assert report.skipped_live == ["alive"] and report.unreplayed == {}
        assert sorted(int(f.fill_id) for f in ledger.fills("dead")) == list(range(25))
        assert ledger.mark_count("dead") == 1 and ledger.run_status("dead") == "aborted"
        assert not (root / "dead").exists() and ledger.fill_count("alive") == 0
        assert ledger.run_status("alive") == "running"
    assert repair_leftovers(root, ledger).replayed == {"alive": 2}  # once its process is gone


@pytest.mark.services
def test_a_dead_run_is_repaired_only_by_a_run_on_the_same_servers(ledger: Ledger, tmp_path: Path) -> None:
    root = tmp_path / "buffers"
    ledger.start_run("outage-run", "s")
    with run_lock(root, "outage-run", servers="outages") as directory:  # it wrote to the outage pair
        DiskBuffer(directory / "postgres").append(_fills("outage-run", 0, 3))
    report = repair_leftovers(root, ledger)  # a run on the shared servers: not its ledger
    assert report.other_servers == ["outage-run"] and report.replayed == {} and report.aborted == []
    assert "left 1 dead run(s) of other servers" in report.summary() and (root / "outage-run").exists()
    assert ledger.fill_count("outage-run") == 0 and ledger.run_status("outage-run") == "running"
    report = repair_leftovers(root, ledger, servers="outages")
    assert report.replayed == {"outage-run": 3} and report.aborted == ["outage-run"]
    assert not (root / "outage-run").exists()


@pytest.mark.services
def test_a_damaged_or_unknown_buffer_is_reported_by_run_and_count_and_kept(ledger: Ledger, tmp_path: Path) -> None:
    root = tmp_path / "buffers"
    ledger.start_run("broken", "s")
    DiskBuffer(root / "broken" / "postgres").append(_fills("broken", 0, 3))
    path = root / "broken" / "postgres" / FILE_NAME
    data = bytearray(path.read_bytes())
    data[20] ^= 0x01  # a flipped byte in the first, complete line
    path.write_bytes(bytes(data))
    DiskBuffer(root / "stranger" / "redis").append(_fills("stranger", 0, 4))
    report = repair_leftovers(root, ledger)
    assert set(report.unreplayed) == {"broken/postgres", "stranger/redis"}
    assert report.unreplayed["broken/postgres"].startswith(f"3 line(s): disk buffer {path}: line 1 (byte 0)")
    assert report.unreplayed["stranger/redis"] == "4 record(s): the ledger has no run 'stranger'"
    assert report.aborted == ["broken"] and ledger.fill_count("broken") == 0
    assert path.exists() and (root / "stranger").exists()  # nothing deleted that was not replayed
    assert "NOT replayed broken/postgres: 3 line(s)" in report.summary()


def test_the_outage_budget_and_the_buffer_cap_are_settings() -> None:
    from stress_pipeline.settings import SettingsError, get_settings
    from stress_pipeline.state.live_run import LiveStateConfig

    config = LiveStateConfig.from_settings(get_settings({"STRESS_OUTAGE_BUDGET_S": "7.5",
                                                         "STRESS_BUFFER_MAX_BYTES": "1000"}))  # fmt: skip
    assert config.supervisor.outage_budget_s == 7.5 and config.max_buffer_bytes == 1000
    defaults = LiveStateConfig.from_settings(get_settings({}))
    assert defaults.supervisor.outage_budget_s == 30.0 and defaults.max_buffer_bytes == 256 * 1024**2
    for name, value in (("STRESS_OUTAGE_BUDGET_S", "0"), ("STRESS_OUTAGE_BUDGET_S", "soon"),
                        ("STRESS_OUTAGE_BUDGET_S", "inf"), ("STRESS_BUFFER_MAX_BYTES", "-1")):  # fmt: skip
        with pytest.raises(SettingsError, match=f"{name}='{value}'"):
            get_settings({name: value})


def test_supervised_gets_back_the_server_an_action_found_gone_once() -> None:
    from stress_pipeline.state.supervisor import supervised

    clock = FakeClock()
    restarts: list[str] = []
    supervisors = {
        name: Supervisor(name, lambda: None, lambda n=name: restarts.append(n), clock=lambda: clock.now,
                         sleep=clock.sleep)
        for name in ("PostgreSQL", "Redis")
    }
    failures = iter(["PostgreSQL", "Redis"])

    def flaky() -> str:
        service = next(failures, None)
        if service is not None:
            raise ServiceUnavailableError(service, None, "connection refused")
        return "done"

    assert supervised(supervisors, flaky) == "done"
    assert [r.server for s in supervisors.values() for r in s.recoveries] == ["PostgreSQL", "Redis"]

    def always_down() -> None:
        raise ServiceUnavailableError("PostgreSQL", None, "connection refused")

    with pytest.raises(ServiceUnavailableError):  # once per server: a second loss is not waited for
        supervised(supervisors, always_down)
    assert len(supervisors["PostgreSQL"].recoveries) == 2
    with pytest.raises(ServiceUnavailableError):  # down on purpose (a planned outage): not waited for
        supervised(supervisors, always_down, skip={"PostgreSQL"})
    assert len(supervisors["PostgreSQL"].recoveries) == 2
