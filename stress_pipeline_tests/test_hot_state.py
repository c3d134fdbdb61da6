"""The Redis hot state against real servers: the embedded Redis and, when configured, STRESS_REDIS_URL.

Every test works under a namespace of its own and removes its keys, so it can share a server with
anything else. Expected values are computed in Python with Decimal, independently of the Lua script.
"""

from __future__ import annotations

import contextlib
import os
import signal
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal, localcontext
from pathlib import Path

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stress_pipeline.bench.state_redis import run_redis_bench, target_met
from stress_pipeline.services import ServiceUnavailableError, embedded, redis_client
from stress_pipeline.settings import Settings, get_settings
from stress_pipeline.state.hot_state import (
    ESS_STATES,
    NO_EVENT,
    HotState,
    HotStateCorruptError,
    HotStateKeys,
    HotStateNotInitialisedError,
    OpenOrder,
    decimal_string,
    to_units,
)
from stress_pipeline.state.records import Fill

RUN = "run-hot"

# ------------------------------------------------------------------------------------------ helpers


def _fill(event_id: int, symbol: str = "BTCUSDT", qty: str | Decimal = "1", price: str | Decimal = "100",
          fee: str | Decimal = "0", run_id: str = RUN) -> Fill:  # fmt: skip
    return Fill(
        run_id=run_id, fill_id=f"f{event_id}", event_id=event_id, ts_ns=1_000 + event_id, symbol=symbol,
        order_id=event_id // 2, qty=Decimal(qty), price=Decimal(price), fee=Decimal(fee),
    )  # fmt: skip


def _expected(initial_cash: Decimal, fills: Sequence[Fill]) -> tuple[dict[str, Decimal], Decimal]:
    """Positions and cash after ``fills``, summed exactly in Python."""
    deltas = [fill.cash_delta for fill in fills]  # in the default context, as the writer computes them
    with localcontext() as ctx:
        ctx.prec = 200
        positions: dict[str, Decimal] = {}
        cash = initial_cash
        for fill, delta in zip(fills, deltas, strict=True):
            positions[fill.symbol] = positions.get(fill.symbol, Decimal(0)) + fill.qty
            cash += delta
    return positions, cash


def _from_units(units: int) -> Decimal:
    """An amount of ``units`` 1e-8 units, built exactly (Decimal arithmetic would round past 28 digits)."""
    return Decimal(f"{units}E-8")


def _keys_under(client: redis.Redis, namespace: str) -> list[bytes]:
    return list(client.scan_iter(match=f"{namespace}:*", count=1_000))


def _shutdown(settings_: Settings) -> None:
    """Stop the embedded servers, then kill anything still working in the temporary services dir."""
    try:
        embedded.stop(settings_)
    finally:
        root = os.path.realpath(settings_.services_dir)
        for entry in Path("/proc").glob("[0-9]*"):
            try:
                cwd = os.readlink(entry / "cwd")
            except OSError:
                continue
            if cwd == root or cwd.startswith(root + os.sep):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(entry.name), signal.SIGKILL)


# ------------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def embedded_redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    settings_ = get_settings({"STRESS_HOME": str(tmp_path_factory.mktemp("hot-state-home"))})
    try:
        yield embedded.start(settings_, [embedded.REDIS]).redis.url
    finally:
        _shutdown(settings_)


@pytest.fixture(params=["embedded", "external"])
def server(request: pytest.FixtureRequest) -> tuple[str, str]:
    """(kind, url) of the Redis under test; the external one is skipped unless STRESS_REDIS_URL is set."""
    if request.param == "embedded":
        return "embedded", request.getfixturevalue("embedded_redis_url")
    return "external", request.getfixturevalue("external_service_urls").redis_url


@pytest.fixture
def client(server: tuple[str, str]) -> Iterator[redis.Redis]:
    connection = redis_client(server[1])
    try:
        yield connection
    finally:
        connection.close()


@pytest.fixture
def namespace(client: redis.Redis) -> Iterator[str]:
    """A namespace no other test or user of the server has; every key under it is removed afterwards."""
    name = f"stress-test-{uuid.uuid4().hex[:12]}"
    try:
        yield name
    finally:
        leftovers = _keys_under(client, name)
        if leftovers:
            client.delete(*leftovers)


@pytest.fixture
def state(client: redis.Redis, namespace: str) -> HotState:
    return HotState(client, RUN, namespace=namespace)


# ------------------------------------------------------------------------------------ without a server


def test_key_layout() -> None:
    keys = HotStateKeys.of("run-7")
    assert keys.all() == (
        "stress:run-7:positions", "stress:run-7:cash", "stress:run-7:open_orders", "stress:run-7:ess_state",
        "stress:run-7:kill_switch", "stress:run-7:kill_switch_info", "stress:run-7:last_event_id",
        "stress:run-7:heartbeat", "stress:run-7:equity",
    )  # fmt: skip
    assert HotStateKeys.of("r", "ns").cash == "ns:r:cash"


def test_ess_states_are_the_safety_governors() -> None:
    from stress_pipeline.trading.risk.safety_governor import STATE_NAMES

    assert ESS_STATES == STATE_NAMES


@pytest.mark.parametrize(
    ("amount", "units", "text"),
    [
        ("0", 0, "0.00000000"),
        ("-0.00000001", -1, "-0.00000001"),
        ("0.1", 10_000_000, "0.10000000"),
        ("9999999999.99999999", 999_999_999_999_999_999, "9999999999.99999999"),
        ("-123456789012345678901.5", -12345678901234567890150000000, "-123456789012345678901.50000000"),
        ("1.000000000", 100_000_000, "1.00000000"),
    ],
)
def test_minor_units_are_exact(amount: str, units: int, text: str) -> None:
    assert to_units(Decimal(amount)) == units
    assert decimal_string(units) == text
    assert Decimal(text) == Decimal(amount)


def test_finer_than_minor_units_is_refused() -> None:
    with pytest.raises(ValueError, match="multiple of 1e-8"):
        to_units(Decimal("0.000000001"))
    with pytest.raises(ValueError, match="finite"):
        to_units(Decimal("NaN"))


def test_unreachable_redis_raises_service_unavailable() -> None:
    connection = redis_client("redis://127.0.0.1:1/0", socket_connect_timeout=1)
    try:
        with pytest.raises(ServiceUnavailableError, match=r"^Redis at redis://127.0.0.1:1/0 is unreachable") as info:
            HotState(connection, RUN).apply_fills([_fill(0)])
        assert isinstance(info.value.__cause__, redis.exceptions.ConnectionError)
    finally:
        connection.close()


# ---------------------------------------------------------------------------------------- lifecycle


@pytest.mark.services
def test_init_and_snapshot(state: HotState) -> None:
    state.init(Decimal("1000.5"))
    snap = state.snapshot()
    assert snap.positions == {} and snap.cash == Decimal("1000.5") and snap.last_event_id == NO_EVENT
    assert (snap.ess_state, snap.kill_switch, snap.heartbeat_ts, snap.open_orders) == ("ARMED", False, None, {})
    assert state.client.get(state.keys.cash) == b"1000.50000000"
    assert state.exists() and state.last_event_id() == NO_EVENT


@pytest.mark.services
def test_init_reseeds_from_the_ledger(state: HotState) -> None:
    state.init(Decimal("5"), positions={"ETHUSDT": Decimal("-2.5")}, last_event_id=41)
    assert state.apply_fills([_fill(41, "ETHUSDT"), _fill(42, "ETHUSDT", qty="0.5", price="2")]) == 1
    snap = state.snapshot()
    assert snap.positions == {"ETHUSDT": Decimal("-2")} and snap.cash == Decimal("4") and snap.last_event_id == 42


@pytest.mark.services
def test_clear_removes_every_key(state: HotState, namespace: str) -> None:
    state.init(Decimal(1))
    state.apply_fills([_fill(0)])
    state.heartbeat()
    state.put_open_order(OpenOrder(1, "BTCUSDT", Decimal(1), None))
    assert len(_keys_under(state.client, namespace)) == 7
    assert state.clear() == 7
    assert _keys_under(state.client, namespace) == []
    assert not state.exists()


@pytest.mark.services
def test_uninitialised_state_is_refused(state: HotState) -> None:
    with pytest.raises(HotStateNotInitialisedError, match="not initialised"):
        state.apply_fills([_fill(0)])
    with pytest.raises(HotStateNotInitialisedError):
        state.snapshot()
    with pytest.raises(HotStateNotInitialisedError):
        state.last_event_id()


# -------------------------------------------------------------------------------------------- fills


@pytest.mark.services
def test_same_batch_twice_applies_nothing_the_second_time(state: HotState) -> None:
    initial = Decimal("100000")
    fills = [
        _fill(i, ("BTCUSDT", "ETHUSDT", "SOLUSDT")[i % 3], qty=f"{(-1) ** i * (i + 1) * 0.125}",
              price=f"{100 + i}.12345678", fee="0.00100001")
        for i in range(30)
    ]  # fmt: skip
    state.init(initial)
    assert state.apply_fills(fills) == 30
    first = state.snapshot()
    assert state.apply_fills(fills) == 0
    assert state.snapshot() == first
    positions, cash = _expected(initial, fills)
    assert first.positions == positions and first.cash == cash and first.last_event_id == 29


@pytest.mark.services
def test_old_event_ids_are_skipped_and_batches_are_ordered(state: HotState) -> None:
    state.init(Decimal(0))
    shuffled = [_fill(i, qty="1", price="1") for i in (4, 0, 3, 1, 2)]
    assert state.apply_fills(shuffled) == 5  # sorted by event id before applying
    assert state.apply_fills([_fill(3, qty="1", price="1"), _fill(1, qty="1", price="1")]) == 0
    assert state.apply_fills([_fill(2, qty="1", price="1"), _fill(5, qty="1", price="1")]) == 1
    # A fill arriving after a later one was applied is not applied: the writer must deliver in order.
    state.apply_fills([_fill(8, qty="1", price="1")])
    assert state.apply_fills([_fill(7, qty="1", price="1")]) == 0
    snap = state.snapshot()
    assert snap.positions == {"BTCUSDT": Decimal(7)} and snap.cash == Decimal(-7) and snap.last_event_id == 8


@pytest.mark.services
def test_duplicates_within_a_batch(state: HotState) -> None:
    state.init(Decimal(0))
    assert state.apply_fills([_fill(0), _fill(0), _fill(1)]) == 2
    with pytest.raises(ValueError, match="share event id 2"):
        state.apply_fills([_fill(2), _fill(2, qty="2")])
    with pytest.raises(ValueError, match="belongs to run 'other'"):
        state.apply_fills([_fill(3, run_id="other")])
    with pytest.raises(ValueError, match="event id"):
        state.apply_fills([_fill(-1)])
    assert state.last_event_id() == 1


@pytest.mark.services
def test_cash_stays_exact_over_many_small_fills(client: redis.Redis, namespace: str) -> None:
    state = HotState(client, RUN, namespace=namespace, chunk_size=97)  # chunks of odd sizes
    fills = [
        _fill(i, ("A", "B")[i % 2], qty=("0.1", "0.2", "-0.3", "0.00000001")[i % 4], price="0.1", fee="0.2")
        for i in range(3_000)
    ]
    state.init(Decimal("0.3"))
    assert state.apply_fills(fills) == 3_000
    positions, cash = _expected(Decimal("0.3"), fills)
    snap = state.snapshot()
    assert snap.positions == positions and snap.cash == cash
    assert snap.cash == Decimal("-599.7")  # 0.3 - 3,000 x 0.2 in fees; the notionals cancel per 4 fills


@pytest.mark.services
def test_large_values_beyond_double_precision(state: HotState) -> None:
    initial = Decimal("9999999999.99999999")  # 1e18 minor units, far beyond 2^53
    fills = [
        _fill(0, qty="0.00000001", price="9999999999.99999999", fee="0.00000001"),
        _fill(1, qty="-3", price="9999999999.99999999", fee="9999999999.99999999"),
        _fill(2, qty="1000000.00000001", price="9999999999.99999999"),  # cash goes deep negative
        _fill(3, qty="-1000000.00000002", price="9999999999.99999999", fee="0.00000007"),  # and back
        _fill(4, "ETHUSDT", qty="-99999999999.99999999", price="0.00000001"),
    ]
    state.init(initial)
    for n, fill in enumerate(fills):
        assert state.apply_fills([fill]) == 1
        positions, cash = _expected(initial, fills[: n + 1])
        snap = state.snapshot()
        assert snap.positions == positions and snap.cash == cash, n
    assert state.client.hget(state.keys.positions, "ETHUSDT") == b"-99999999999.99999999"
    assert state.client.hget(state.keys.positions, "BTCUSDT") == b"-3.00000000"


@pytest.mark.services
def test_concurrent_writers_apply_each_fill_once(server: tuple[str, str], namespace: str) -> None:
    """Four writers race to apply the same fills (as a retrying writer and its replacement might)."""
    fills = [_fill(i, ("A", "B")[i % 2], qty="0.3", price="0.7", fee="0.00000001") for i in range(2_000)]
    clients = [redis_client(server[1]) for _ in range(4)]
    try:
        states = [HotState(c, RUN, namespace=namespace, chunk_size=50) for c in clients]
        states[0].init(Decimal(0))
        batches = [fills[i : i + 100] for i in range(0, len(fills), 100)]
        with ThreadPoolExecutor(max_workers=4) as pool:
            counts = list(pool.map(lambda s: sum(s.apply_fills(batch) for batch in batches), states))
        assert sum(counts) == len(fills)
        positions, cash = _expected(Decimal(0), fills)
        snap = states[0].snapshot()
        assert snap.positions == positions and snap.cash == cash and snap.last_event_id == 1_999
    finally:
        for c in clients:
            c.close()


@pytest.mark.services
def test_runs_do_not_share_state(client: redis.Redis, namespace: str) -> None:
    one, two = HotState(client, "run-1", namespace=namespace), HotState(client, "run-2", namespace=namespace)
    one.init(Decimal(1))
    two.init(Decimal(2))
    assert one.apply_fills([_fill(0, run_id="run-1")]) == 1
    assert two.apply_fills([_fill(0, run_id="run-2", qty="2")]) == 1
    assert one.snapshot().positions == {"BTCUSDT": Decimal(1)} and two.snapshot().positions == {"BTCUSDT": Decimal(2)}
    one.clear()
    assert not one.exists() and two.exists()


@pytest.mark.services
def test_a_failing_chunk_changes_nothing_and_stops_the_rest(client: redis.Redis, namespace: str) -> None:
    state = HotState(client, RUN, namespace=namespace, chunk_size=2)
    fills = [_fill(0, "A"), _fill(1, "A"), _fill(2, "B"), _fill(3, "A"), _fill(4, "A")]
    state.init(Decimal(1000))
    client.hset(state.keys.positions, "B", "not-a-number")
    with pytest.raises(HotStateCorruptError, match="B holds not-a-number"):
        state.apply_fills(fills)
    # The first chunk applied; the corrupt one wrote nothing (not even A's fill 3); the last one waited.
    assert state.last_event_id() == 1
    assert client.hget(state.keys.positions, "A") == b"2.00000000"
    assert client.get(state.keys.cash) == b"800.00000000"
    client.hset(state.keys.positions, "B", "0.00000000")
    assert state.apply_fills(fills) == 3
    positions, cash = _expected(Decimal(1000), fills)
    snap = state.snapshot()
    assert snap.positions == positions and snap.cash == cash and snap.last_event_id == 4


@pytest.mark.services
def test_script_cache_loss_is_recovered(server: tuple[str, str], client: redis.Redis, namespace: str) -> None:
    if server[0] != "embedded":
        pytest.skip("SCRIPT FLUSH would affect every user of a shared server")
    state = HotState(client, RUN, namespace=namespace)
    state.init(Decimal(0))
    assert state.apply_fills([_fill(0)]) == 1
    client.script_flush()
    assert state.apply_fills([_fill(0), _fill(1)]) == 1
    assert state.snapshot().positions == {"BTCUSDT": Decimal(2)}


@pytest.mark.services
def test_decoding_client_reads_the_same_snapshot(server: tuple[str, str], namespace: str) -> None:
    decoding = redis_client(server[1], decode_responses=True)
    try:
        state = HotState(decoding, RUN, namespace=namespace)
        state.init(Decimal("10"))
        assert state.apply_fills([_fill(0, qty="0.5", price="2", fee="0.1")]) == 1
        snap = state.snapshot()
        assert snap.positions == {"BTCUSDT": Decimal("0.5")} and snap.cash == Decimal("8.9")
    finally:
        decoding.close()


# ------------------------------------------------------------------------------- trading controls


@pytest.mark.services
def test_kill_switch_ess_heartbeat_and_open_orders(state: HotState) -> None:
    state.init(Decimal(100))
    state.set_kill_switch(True)
    state.set_ess_state("TRIPPED")
    assert state.heartbeat(1_700_000_000.25) == 1_700_000_000.25
    state.put_open_order(OpenOrder(7, "BTCUSDT", Decimal("-0.5"), Decimal("101.25")))
    state.put_open_order(OpenOrder(8, "ETHUSDT", Decimal("2"), None))
    assert state.apply_fills([_fill(0, qty="1", price="10")]) == 1  # fills are recorded with the switch on
    snap = state.snapshot()
    assert snap.kill_switch is True and snap.ess_state == "TRIPPED" and snap.heartbeat_ts == 1_700_000_000.25
    assert snap.open_orders == {
        7: OpenOrder(7, "BTCUSDT", Decimal("-0.5"), Decimal("101.25")),
        8: OpenOrder(8, "ETHUSDT", Decimal("2"), None),
    }
    assert snap.cash == Decimal(90)
    assert state.client.get(state.keys.kill_switch) == b"1"
    assert state.remove_open_order(7) and not state.remove_open_order(7)
    state.set_kill_switch(False)
    state.set_ess_state("HALTED")
    snap = state.snapshot()
    assert (snap.kill_switch, snap.ess_state, list(snap.open_orders)) == (False, "HALTED", [8])
    with pytest.raises(ValueError, match="unknown ESS state"):
        state.set_ess_state("PANIC")
    before = state.snapshot().heartbeat_ts
    assert state.heartbeat() > before


# ---------------------------------------------------------------------------------------- properties

_amounts = st.integers(min_value=-(10**14), max_value=10**14).map(_from_units)
_prices = st.integers(min_value=1, max_value=10**14).map(_from_units)
_fees = st.integers(min_value=0, max_value=10**10).map(_from_units)


@st.composite
def _fill_lists(draw: st.DrawFn) -> list[Fill]:
    n = draw(st.integers(min_value=1, max_value=40))
    ids = sorted(draw(st.sets(st.integers(min_value=0, max_value=10**6), min_size=n, max_size=n)))
    return [
        _fill(event_id, draw(st.sampled_from(("A", "B", "C"))), draw(_amounts), draw(_prices), draw(_fees))
        for event_id in ids
    ]


@st.composite
def _in_order_deliveries(draw: st.DrawFn) -> tuple[list[Fill], list[list[Fill]]]:
    """Every fill delivered once in order, each batch shuffled and padded with replays of earlier fills."""
    fills = draw(_fill_lists())
    batches, delivered = [], 0
    while delivered < len(fills):
        step = draw(st.integers(min_value=1, max_value=8))
        new = fills[delivered : delivered + step]
        delivered += len(new)
        replays = draw(st.lists(st.sampled_from(fills[:delivered]), max_size=6))
        batches.append(draw(st.permutations(new + replays)))
    return fills, batches


_PROPERTY = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.mark.services
@_PROPERTY
@given(delivery=_in_order_deliveries(), initial_units=st.integers(-(10**20), 10**20))
def test_replays_never_change_the_sums(client: redis.Redis, namespace: str, delivery, initial_units: int) -> None:
    fills, batches = delivery
    initial = _from_units(initial_units)
    state = HotState(client, f"prop-{uuid.uuid4().hex[:8]}", namespace=namespace, chunk_size=3)
    fills = [_with_run(fill, state.run_id) for fill in fills]
    batches = [[_with_run(fill, state.run_id) for fill in batch] for batch in batches]
    try:
        state.init(initial)
        assert sum(state.apply_fills(batch) for batch in batches) == len(fills)
        assert all(state.apply_fills(batch) == 0 for batch in batches)
        positions, cash = _expected(initial, fills)
        snap = state.snapshot()
        assert snap.positions == positions and snap.cash == cash and snap.last_event_id == fills[-1].event_id
    finally:
        state.clear()


@pytest.mark.services
@_PROPERTY
@given(fills=_fill_lists(), data=st.data())
def test_any_delivery_matches_the_high_water_model(client: redis.Redis, namespace: str, fills, data) -> None:
    """Batches drawn in any order and with repeats: the state is what applying "newer than the last
    applied event id", batch by batch in event-id order, gives."""
    state = HotState(client, f"prop-{uuid.uuid4().hex[:8]}", namespace=namespace, chunk_size=4)
    fills = [_with_run(fill, state.run_id) for fill in fills]
    batches = data.draw(st.lists(st.lists(st.sampled_from(fills), max_size=10), min_size=1, max_size=6))
    try:
        state.init(Decimal(0))
        last, applied_model = NO_EVENT, []
        for batch in batches:
            newer = [fill for fill in sorted(set(batch), key=lambda f: f.event_id) if fill.event_id > last]
            applied_model += newer
            last = newer[-1].event_id if newer else last
            assert state.apply_fills(batch) == len(newer)
            positions, cash = _expected(Decimal(0), applied_model)
            snap = state.snapshot()
            assert snap.cash == cash and snap.last_event_id == last
            assert snap.positions == positions
    finally:
        state.clear()


def _with_run(fill: Fill, run_id: str) -> Fill:
    return Fill(run_id, fill.fill_id, fill.event_id, fill.ts_ns, fill.symbol, fill.order_id, fill.qty, fill.price,
                fill.fee)  # fmt: skip


@pytest.mark.services
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    seed=st.integers(-(10**30), 10**30),
    deltas=st.lists(st.integers(-(10**25), 10**25), min_size=1, max_size=30),
)
def test_big_integer_arithmetic_in_the_script(client: redis.Redis, namespace: str, seed: int, deltas) -> None:
    """Positions far beyond 2^64 minor units, moved by large signed steps, stay exact."""
    state = HotState(client, f"big-{uuid.uuid4().hex[:8]}", namespace=namespace, chunk_size=7)
    fills = [
        Fill(state.run_id, str(i), i, i, "X", i, _from_units(delta), Decimal(1), Decimal(0))
        for i, delta in enumerate(deltas)
    ]
    try:
        state.init(Decimal(0), positions={"X": _from_units(seed)})
        assert state.apply_fills(fills) == len(fills)
        raw = state.client.hget(state.keys.positions, "X")
        assert raw == decimal_string(seed + sum(deltas)).encode()
        assert state.client.get(state.keys.cash) == decimal_string(-sum(deltas)).encode()
    finally:
        state.clear()


# ----------------------------------------------------------------------------------------- benchmark


@pytest.mark.services
def test_bench_applies_every_fill_and_cleans_up(client: redis.Redis, namespace: str) -> None:
    measurement = run_redis_bench(client, updates=2_000, batch=500, chunk_size=100, repeat=1, namespace=namespace)
    assert measurement.items == 2_000 and measurement.unit == "updates" and measurement.seconds > 0
    assert isinstance(target_met(measurement), bool)  # the figure itself is checked by the bench command
    assert _keys_under(client, namespace) == []
