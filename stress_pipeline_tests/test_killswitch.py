"""The KILL_SWITCH against real servers: set with reason and time in Redis, every change in the ledger,
`stress-pipeline killswitch status|reset` (who and why recorded), and the risk stack refusing every new
order of the live run while it is on, and the paper engine's router sending nothing in a kill_switch
window."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

from stress_pipeline import cli
from stress_pipeline.lite.killswitch import (
    RESET,
    TRIP,
    KillSwitchEvent,
    KillSwitchLedger,
    KillSwitchState,
    read_state,
    reset,
    trip,
)
from stress_pipeline.market.synthetic import generate_bars
from stress_pipeline.services import embedded, postgres_engine, redis_client, resolve_service_urls
from stress_pipeline.settings import get_settings
from stress_pipeline.simulation.paper import run_paper
from stress_pipeline.state.hot_state import HotState, HotStateKeys, HotStateNotInitialisedError
from stress_pipeline.state.risk_decisions import RiskDecisionState, RiskStackDecider
from stress_pipeline.trading.risk.decision import BUY, SELL, DecisionRequest
from stress_pipeline.trading.risk.stack import compile_stack
from stress_pipeline_tests.test_exchange import FixedWeights

AT = datetime(2026, 12, 7, 15, 0, 5, 250_000, tzinfo=UTC)


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory):
    home = tmp_path_factory.mktemp("killswitch-home")
    settings = get_settings({"STRESS_HOME": str(home)})
    try:
        yield home, resolve_service_urls(settings)
    finally:
        embedded.stop(settings)


@pytest.fixture
def run(servers):
    """A live run of this test's own in the hot state: (client, keys, ledger)."""
    _home, urls = servers
    client, namespace = redis_client(urls.redis_url), f"ks-{uuid.uuid4().hex[:8]}"
    hot = HotState(client, "live", namespace=namespace)
    hot.init(Decimal("1000"))
    engine = postgres_engine(urls.postgres_url)
    try:
        yield client, hot.keys, KillSwitchLedger(engine)
    finally:
        hot.clear()
        engine.dispose()


def test_trip_keeps_the_first_reason_and_reset_returns_it(run) -> None:
    client, keys, _ledger = run
    assert read_state(client, keys) == KillSwitchState(False)
    assert trip(client, keys, reason="drawdown 9% > 5%", by="lite_stress", at=AT) is True
    assert client.get(keys.kill_switch) == b"1"  # what the trading system reads
    tripped = KillSwitchState(True, "drawdown 9% > 5%", "2026-12-07T15:00:05.250Z", "lite_stress")
    assert read_state(client, keys) == tripped
    assert trip(client, keys, reason="later", by="someone", at=datetime.now(UTC)) is False
    assert read_state(client, keys).reason == "drawdown 9% > 5%"
    assert reset(client, keys) == tripped
    assert read_state(client, keys) == KillSwitchState(False)
    assert client.get(keys.kill_switch) == b"0"


def test_bad_requests_are_refused(run) -> None:
    client, keys, ledger = run
    unknown = HotStateKeys.of("never-started", keys.prefix.split(":")[0])
    with pytest.raises(HotStateNotInitialisedError, match=r"never-started is not initialised \(.*is not set\)"):
        trip(client, unknown, reason="x", by="y", at=AT)
    with pytest.raises(HotStateNotInitialisedError, match="never-started"):
        reset(client, unknown)
    with pytest.raises(ValueError, match="reason: a kill switch change needs a non-empty reason"):
        trip(client, keys, reason=" ", by="y", at=AT)
    assert not read_state(client, keys).on
    with pytest.raises(ValueError, match="action: expected 'trip' or 'reset', got 'pause'"):
        ledger.record(KillSwitchEvent("ns", "live", "pause", AT, "me", "why"))
    with pytest.raises(ValueError, match="kill switch event of ns:live: details: Out of range float values"):
        ledger.record(KillSwitchEvent("ns", "live", TRIP, AT, "me", "why", details={"x": float("nan")}))


def test_the_command_line_shows_and_resets_recording_who_and_why(servers, run, monkeypatch, capsys) -> None:
    home, urls = servers
    client, keys, ledger = run
    namespace = keys.prefix.split(":")[0]
    for name, value in (("STRESS_HOME", str(home)), ("STRESS_POSTGRES_URL", urls.postgres_url),
                        ("STRESS_REDIS_URL", urls.redis_url)):  # fmt: skip
        monkeypatch.setenv(name, value)
    args = ["--run-id", "live", "--namespace", namespace, "--json"]
    trip(client, keys, reason="var multiple 3.1 > 2", by="lite_stress", at=AT)
    ledger.record(KillSwitchEvent(namespace, "live", TRIP, AT, "lite_stress", "var multiple 3.1 > 2", "active_book"))

    assert cli.main(["killswitch", "status", *args]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["kill_switch"] == {"on": True, "reason": "var multiple 3.1 > 2", "at": "2026-12-07T15:00:05.250Z",
                                    "by": "lite_stress"}  # fmt: skip
    assert [(e["action"], e["actor"]) for e in shown["events"]] == [("trip", "lite_stress")]

    assert cli.main(["killswitch", "reset", *args, "--by", "alice", "--reason", "positions cut to 1x"]) == 0
    done = json.loads(capsys.readouterr().out)
    assert done["reset"] is True and done["was"]["reason"] == "var multiple 3.1 > 2"
    assert not read_state(client, keys).on
    events = ledger.events("live", namespace=namespace)
    assert [(e.action, e.actor, e.reason) for e in events] == [
        (TRIP, "lite_stress", "var multiple 3.1 > 2"), (RESET, "alice", "positions cut to 1x"),
    ]
    assert events[1].event_id == done["ledger_event_id"] and events[1].details["cleared"]["by"] == "lite_stress"

    # Off already: refused, nothing recorded.
    assert cli.main(["killswitch", "reset", *args, "--by", "bob", "--reason", "again"]) == 1
    assert json.loads(capsys.readouterr().out)["reset"] is False
    assert len(ledger.events("live", namespace=namespace)) == 2
    assert cli.main(["killswitch", "status", "--run-id", "live", "--namespace", namespace]) == 0
    text = capsys.readouterr().out
    assert f"kill switch of {namespace}:live: off" in text and "reset  alice: positions cut to 1x" in text
    assert cli.main(["killswitch", "reset", *args, "--by", " ", "--reason", "x"]) == 1
    assert "--by and --reason must not be empty" in capsys.readouterr().err


def test_the_risk_stack_blocks_every_new_order_while_the_switch_is_on(servers) -> None:
    _home, urls = servers
    client, namespace = redis_client(urls.redis_url), f"ks-{uuid.uuid4().hex[:8]}"
    state = RiskDecisionState(client, "live", namespace=namespace)
    state.init(100_000.0, positions={"BTCUSDT": 0.5})
    compile_stack()
    decider = RiskStackDecider(state)
    keys = state.hot.keys

    def order(side: str, qty: float, n: int):
        return decider.decide(DecisionRequest("BTCUSDT", side, qty, 30_000.0, 1_700_000_000_000_000_000 + n, n))

    try:
        assert order(BUY, 0.01, 1).allowed
        trip(client, keys, reason="flash_crash_lite breach", by="lite_stress", at=AT)
        opening, reducing = order(BUY, 0.01, 2), order(SELL, 0.1, 3)
        assert (opening.allowed, opening.qty, opening.reason) == (False, 0.0, "KILL_SWITCH")
        assert (reducing.allowed, reducing.reason) == (False, "KILL_SWITCH")  # a kill switch stops every new order
        assert decider.positions()["BTCUSDT"] == pytest.approx(0.51)
        reset(client, keys)
        assert order(BUY, 0.01, 4).allowed
        assert state.counts()["KILL_SWITCH"] == 2
    finally:
        state.clear()


def test_the_paper_engine_sends_no_order_while_the_switch_is_on_and_resumes_after() -> None:
    bars = generate_bars(days=1, seed=5)
    n_bars = bars["ts"].nunique()
    strategy = FixedWeights(np.where(np.arange(n_bars) < 125, 0.3, 0.5))  # a new target inside the window
    begin = pd.Timestamp(bars["ts"].min()) + pd.Timedelta(seconds=7230)
    end = begin + pd.Timedelta(seconds=900)
    free = run_paper(bars, strategy)
    switched = run_paper(bars, strategy, faults=[{"kind": "kill_switch", "at_s": 7230, "duration_s": 900}])

    def orders(result, lo, hi):
        e = result.events
        return e[(e["kind"] == "order") & (e["ts"] >= lo) & (e["ts"] < hi)]

    assert len(orders(free, begin, end)) == 3  # the run without the switch trades in the window
    assert orders(switched, begin, end).empty
    blocks = switched.events[switched.events["reason"] == "KILL_SWITCH"]
    assert (blocks["kind"] == "risk_block").all() and blocks["ts"].between(begin, end, inclusive="left").all()
    assert sorted(blocks["symbol"]) == ["BTCUSDT", "ETHUSDT", "SOLUSDT"]  # one per target, not one per bar
    # Before the switch the two runs are the same; the first decision after it routes the targets again.
    assert orders(switched, bars["ts"].min(), begin).equals(orders(free, bars["ts"].min(), begin))
    after = orders(switched, end, end + pd.Timedelta(minutes=1))
    assert sorted(after["symbol"]) == ["BTCUSDT", "ETHUSDT", "SOLUSDT"]
    assert switched.events.loc[switched.events["kind"] == "fault_start", "reason"].tolist() == ["kill_switch"]
