"""The live write path under real faults: drills end clean, and a state machine over random faults
keeps "ledger = exchange fills, each exactly once; Redis = ledger replay"."""

from __future__ import annotations

import contextlib
import os
import uuid
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlparse

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from redis.backoff import NoBackoff
from redis.retry import Retry

from stress_pipeline.faults.proxy import FaultProxy
from stress_pipeline.market.synthetic import generate_bars
from stress_pipeline.scenarios.fault_model import (
    DuplicateFillsFault,
    DuplicateFillsParams,
    OutOfOrderFillsFault,
    OutOfOrderFillsParams,
    PostgresDownFault,
    RedisDownFault,
    WriterCrashFault,
    WriterCrashParams,
    parse_faults,
)
from stress_pipeline.services import embedded, postgres_engine, redis_client, resolve_service_urls, stop_embedded
from stress_pipeline.services.errors import ServiceUnavailableError
from stress_pipeline.services.server_use import run_server_use
from stress_pipeline.services.status import service_status
from stress_pipeline.settings import Settings, get_settings
from stress_pipeline.simulation import SimConfig, run_paper
from stress_pipeline.state.hot_state import HotState
from stress_pipeline.state.ledger import Ledger
from stress_pipeline.state.live_run import LiveStateConfig, run_live_state
from stress_pipeline.state.reconcile import replay
from stress_pipeline.state.records import fill_from_values
from stress_pipeline.state.writer import CRASH_POINT, StateWriter, WriterCrash

HOUR = 3600
ACTIVE = SimConfig(strategy="trend", strategy_params={"fast": 15, "slow": 90, "band": 0.0005})


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory):
    settings = get_settings({"STRESS_HOME": str(tmp_path_factory.mktemp("live-home"))})
    try:
        yield settings
    finally:
        stop_embedded(settings)  # both pairs: the shared one and the one planned outages stop


@pytest.fixture(scope="module")
def paper():
    return run_paper(generate_bars(days=3), None, ACTIVE, scenario_name="live")


def live(paper, settings: Settings, faults, tmp_path: Path):
    return run_live_state(
        paper, run_id=f"t-{uuid.uuid4().hex[:8]}", faults=faults, settings=settings, initial_cash=100_000.0,
        buffer_root=tmp_path / "buffers", config=_config(),
    )  # fmt: skip


def _config() -> LiveStateConfig:
    return LiveStateConfig(schema=f"ledger_{uuid.uuid4().hex[:8]}", namespace=f"live-{uuid.uuid4().hex[:8]}")


@pytest.mark.services
def test_no_fault_run_is_clean(paper, home: Settings, tmp_path: Path) -> None:
    outcome = live(paper, home, [], tmp_path)
    assert outcome.report.passed and outcome.report.exchange_fills == len(paper.fills) > 50
    assert outcome.writer["buffered"] == {"postgres": 0, "redis": 0}


@pytest.mark.services
@pytest.mark.parametrize("target", ["redis", "postgres"])
def test_sixty_second_outage_buffers_and_flushes(paper, home: Settings, tmp_path: Path, target: str) -> None:
    faults = parse_faults([{"kind": f"{target}_down", "at_s": 10 * HOUR, "duration_s": 60}])
    outcome = live(paper, home, faults, tmp_path)
    report = outcome.report
    assert report.passed and report.breaks.empty, report.summary()
    (outage,) = [o for o in outcome.outages if o["target"] == target]
    # a heartbeat a second was tried and coalesced to one pending mark: the buffer holds no more
    # than the fills of the outage and one mark per buffered batch; all of it, plus the newest mark, flushed
    assert outage["marks_tried"] >= 59 and outcome.writer["buffered"][target] == outage["buffered"] < 10
    assert outage["flushed"] == outage["buffered"] + 1
    assert outage["flush_seconds"] is not None and outage["flush_seconds"] <= 30
    assert [h["mode"] for h in outcome.health][:2] == ["NORMAL", "DEGRADED"]
    assert any(h[target] == "DOWN" for h in outcome.health)
    assert outcome.health[-1]["mode"] == "NORMAL"
    row = outcome.summary_row()  # what the reconciliation table stores for the certification gates
    assert row["outages_recovered"] == 1 and 0 < row["recovery_s_sum"] == row["recovery_s_max"] <= 30
    assert row["cash_delta"] == 0.0


@pytest.mark.services
def test_a_planned_outage_stops_servers_of_its_own(paper, home: Settings, tmp_path: Path) -> None:
    shared = resolve_service_urls(home)  # the pair every run shares
    pids = {row.name: row.record.pid for row in embedded.status(home)}
    # Held shared by this process, as the drills hold it: a run stopping the shared Redis would fail here
    # ("used (shared) by this process's run, which cannot also stop it") or wait for the holder.
    with run_server_use(home, "a drill beside"):
        outcome = live(paper, home, [RedisDownFault(at_s=10 * HOUR, duration_s=60)], tmp_path)
        redis_client(shared.redis_url).ping()  # the shared Redis answered throughout
    assert outcome.report.passed and [o["target"] for o in outcome.outages] == ["redis"]
    assert {row.name: row.record.pid for row in embedded.status(home)} == pids  # neither shared server stopped
    own = resolve_service_urls(home.for_planned_outages(), start=False)
    assert {own.redis_url, own.postgres_url}.isdisjoint({shared.redis_url, shared.postgres_url})
    names = [row["name"] for row in service_status(home)]
    assert names == ["PostgreSQL", "Redis", "PostgreSQL (planned outages)", "Redis (planned outages)"]
    assert all(row["running"] for row in service_status(home))


@pytest.mark.services
def test_writer_crash_between_the_two_writes_loses_nothing(paper, home: Settings, tmp_path: Path) -> None:
    crash = WriterCrashFault(at_s=5 * HOUR, params=WriterCrashParams(point=CRASH_POINT))
    outcome = live(paper, home, [crash], tmp_path)
    assert outcome.writer["crashes"] == 1
    assert outcome.report.passed, outcome.report.summary()


@pytest.mark.services
def test_duplicate_and_out_of_order_delivery(paper, home: Settings, tmp_path: Path) -> None:
    faults = [
        DuplicateFillsFault(at_s=0, duration_s=72 * HOUR, params=DuplicateFillsParams(rate=0.3)),
        OutOfOrderFillsFault(at_s=0, duration_s=72 * HOUR, params=OutOfOrderFillsParams(window=5)),
    ]
    outcome = live(paper, home, faults, tmp_path)
    assert outcome.report.passed and not outcome.report.duplicated_fills


@pytest.mark.services
def test_outages_through_the_fault_proxy_on_configured_servers(
    paper, external_service_urls, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STRESS_POSTGRES_URL", external_service_urls.postgres_url)
    monkeypatch.setenv("STRESS_REDIS_URL", external_service_urls.redis_url)
    settings = get_settings({**os.environ, "STRESS_HOME": str(tmp_path / "home")})
    faults = [RedisDownFault(at_s=10 * HOUR, duration_s=60), PostgresDownFault(at_s=20 * HOUR, duration_s=60)]
    outcome = live(paper, settings, faults, tmp_path)
    assert outcome.report.passed, outcome.report.summary()
    assert [o["marks_tried"] >= 59 and o["flushed"] >= 1 for o in outcome.outages] == [True, True]
    assert not (tmp_path / "home" / "services").exists()  # nothing embedded was started


# -------------------------------------------------------------------------------- state machine


class LiveStateMachine(RuleBasedStateMachine):
    """Random interleavings of fills, Redis and PostgreSQL outages (through fault proxies) and writer
    crashes. After recovery: the ledger holds every exchange fill exactly once, Redis equals the
    ledger's replay."""

    settings_: Settings = None  # set by the test

    @initialize()
    def start(self) -> None:
        urls = resolve_service_urls(self.settings_)
        self.proxies = {
            "postgres": FaultProxy("127.0.0.1", urlparse(urls.postgres_url).port).start(),
            "redis": FaultProxy("127.0.0.1", urlparse(urls.redis_url).port).start(),
        }
        self.run_id = f"sm-{uuid.uuid4().hex[:8]}"
        schema = f"sm_{uuid.uuid4().hex[:8]}"
        engine = postgres_engine(self.proxies["postgres"].url_for(urls.postgres_url))
        self.ledger = Ledger(engine, schema=schema)
        self.ledger.migrate()
        self.ledger.start_run(self.run_id, "state machine")
        client = redis_client(self.proxies["redis"].url_for(urls.redis_url), retry=Retry(NoBackoff(), 0))
        self.hot = HotState(client, self.run_id, namespace=f"sm-{uuid.uuid4().hex[:6]}")
        self.hot.init(Decimal("100000"))
        self.buffer_dir = Path(self.settings_.home) / "sm-buffers" / self.run_id
        self.writer = self._writer()
        self.exchange = []
        self.next_id = 0
        self.crash_next = False

    def _writer(self, *, recovering: bool = False) -> StateWriter:
        return StateWriter(
            self.run_id, self.ledger, self.hot, self.buffer_dir, initial_cash=Decimal("100000"),
            crash=lambda point, now: self._take_crash(), recovering=recovering,
        )  # fmt: skip

    def _take_crash(self) -> bool:
        crash, self.crash_next = self.crash_next, False
        return crash

    @rule(count=st.integers(1, 6), data=st.data())
    def trade(self, count: int, data) -> None:
        batch = []
        for _ in range(count):
            self.next_id += 1
            qty = data.draw(st.decimals("-3", "3", places=4, allow_nan=False).filter(lambda q: q != 0))
            price = data.draw(st.decimals("10", "60000", places=2, allow_nan=False))
            batch.append(fill_from_values(self.run_id, self.next_id, self.next_id, self.next_id, "BTCUSDT",
                                          self.next_id, float(qty), float(price), float(abs(qty * price) / 1000)))
        self.exchange.extend(batch)
        try:
            self.writer.write(batch, [], self.next_id)
        except WriterCrash:
            self.writer = self._writer(recovering=True)  # catches Redis up once both servers answer
            with contextlib.suppress(ServiceUnavailableError):
                self.writer.recover_after_crash()

    @rule(target_name=st.sampled_from(["postgres", "redis"]))
    def outage(self, target_name: str) -> None:
        self.proxies[target_name].down()

    @rule(target_name=st.sampled_from(["postgres", "redis"]))
    def recover(self, target_name: str) -> None:
        self.proxies[target_name].up()
        self.writer.flush(self.next_id)

    @precondition(lambda self: not self.crash_next)
    @rule()
    def crash_on_next_write(self) -> None:
        self.crash_next = True

    @invariant()
    def ledger_never_holds_a_fill_twice(self) -> None:
        if not hasattr(self, "ledger"):
            return
        try:
            fills = self.ledger.fills(self.run_id)
        except ServiceUnavailableError:  # the ledger may be down right now
            return
        keys = [f.idempotency_key for f in fills]
        assert len(keys) == len(set(keys))

    def teardown(self) -> None:
        if not hasattr(self, "proxies"):
            return
        try:
            for proxy in self.proxies.values():
                proxy.up()
            self.writer.flush(self.next_id + 1)
            self.writer.recover_after_crash()
            fills = self.ledger.fills(self.run_id)
            assert sorted(f.idempotency_key for f in fills) == sorted(f.idempotency_key for f in self.exchange)
            positions, cash = replay(fills, Decimal("100000"))
            snapshot = self.hot.snapshot()
            assert {k: v for k, v in snapshot.positions.items() if v} == {k: v for k, v in positions.items() if v}
            assert snapshot.cash == cash
        finally:
            for proxy in self.proxies.values():
                proxy.stop()


@pytest.mark.services
def test_state_machine_over_random_faults(home: Settings) -> None:
    LiveStateMachine.settings_ = home
    machine = LiveStateMachine.TestCase
    machine.settings = settings(
        max_examples=30, stateful_step_count=20, deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )  # fmt: skip
    machine().runTest()
