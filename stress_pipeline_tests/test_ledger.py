"""The PostgreSQL ledger on real servers: migrations, idempotent batches, exact balances, double entry.

Every server test runs twice: on an embedded PostgreSQL started for this module under a temporary
STRESS_HOME (stopped on teardown), and on the server named by STRESS_POSTGRES_URL (skipped when it is
unset). Each test works in a schema of its own, dropped afterwards, so nothing collides with other
data on a shared server.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stress_pipeline.bench.state_ledger import bench_fills, ledger_target_met, run_ledger_bench
from stress_pipeline.faults.proxy import FaultProxy
from stress_pipeline.services import ServiceUnavailableError, embedded, postgres_engine
from stress_pipeline.settings import get_settings
from stress_pipeline.state.ledger import (
    FillConflictError,
    InvalidFillError,
    Ledger,
    LedgerError,
    OrderRecord,
    UnknownRunError,
)
from stress_pipeline.state.ledger_schema import (
    CASH,
    FEES,
    POSITION,
    current_revision,
    head_revision,
    ledger_tables,
    migrate,
)
from stress_pipeline.state.records import Fill, fill_from_values, money

INITIAL_CASH = Decimal("100000")
SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")


# ------------------------------------------------------------------------------------------- helpers


def _fill(run_id: str, n: int, *, symbol: str = "BTCUSDT", qty: str = "0.5", price: str = "100.25",
          fee: str = "0.01", event_id: int | None = None) -> Fill:  # fmt: skip
    return Fill(
        run_id=run_id, fill_id=f"f-{n}", event_id=n if event_id is None else event_id,
        ts_ns=1_700_000_000_000_000_000 + n, symbol=symbol, order_id=1000 + n,
        qty=Decimal(qty), price=Decimal(price), fee=Decimal(fee),
    )  # fmt: skip


def _random_fills(run_id: str, n: int, seed: int = 0) -> list[Fill]:
    rng = random.Random(seed)
    return [
        fill_from_values(run_id, f"x{i}", i, 1_700_000_000_000_000_000 + i, rng.choice(SYMBOLS), i // 2,
                         rng.uniform(-3, 3), rng.uniform(0.5, 70_000), rng.uniform(0, 5))
        for i in range(n)
    ]  # fmt: skip


def _replay(fills: Sequence[Fill]) -> tuple[dict[str, Decimal], Decimal, dict[str, Decimal], Decimal]:
    """Positions, cash, costs and fees computed from the fills in Python, with Decimal."""
    positions: dict[str, Decimal] = {}
    costs: dict[str, Decimal] = {}
    cash, fees = money(INITIAL_CASH), Decimal(0)
    for fill in fills:
        positions[fill.symbol] = positions.get(fill.symbol, Decimal(0)) + fill.qty
        costs[fill.symbol] = costs.get(fill.symbol, Decimal(0)) - fill.cash_delta - fill.fee
        cash += fill.cash_delta
        fees += fill.fee
    return positions, cash, costs, fees


def _run(ledger: Ledger) -> str:
    run_id = f"run-{uuid.uuid4().hex[:10]}"
    ledger.start_run(run_id, "test-scenario")
    return run_id


def _entries(ledger: Ledger, run_id: str) -> list[tuple]:
    table = ledger.tables.entries
    query = sa.select(table.c.fill_id, table.c.account, table.c.symbol, table.c.qty, table.c.amount).where(
        table.c.run_id == run_id
    )
    with ledger.engine.connect() as conn:
        return [tuple(row) for row in conn.execute(query)]


def _drop_schema(engine: sa.Engine, schema: str) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))


# ------------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def embedded_postgres_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An embedded PostgreSQL for this module's tests, always stopped on teardown."""
    settings = get_settings({"STRESS_HOME": str(tmp_path_factory.mktemp("ledger-home"))})
    try:
        yield embedded.start(settings, [embedded.POSTGRES]).postgres.url
    finally:
        embedded.stop(settings)


@pytest.fixture(params=["embedded", "external"])
def postgres_url(request: pytest.FixtureRequest) -> str:
    if request.param == "embedded":
        return request.getfixturevalue("embedded_postgres_url")
    return request.getfixturevalue("external_service_urls").postgres_url


@pytest.fixture
def engine(postgres_url: str) -> Iterator[sa.Engine]:
    engine = postgres_engine(postgres_url)
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture
def schema(engine: sa.Engine) -> Iterator[str]:
    """A schema name of this test's own; dropped afterwards."""
    name = f"ledger_test_{uuid.uuid4().hex[:12]}"
    try:
        yield name
    finally:
        _drop_schema(engine, name)


@pytest.fixture
def ledger(engine: sa.Engine, schema: str) -> Ledger:
    ledger = Ledger(engine, schema=schema)
    ledger.migrate()
    return ledger


# ---------------------------------------------------------------------------------------- migrations


@pytest.mark.services
def test_migrate_builds_an_empty_schema_and_is_idempotent(engine: sa.Engine, schema: str) -> None:
    assert current_revision(engine, schema) is None
    assert migrate(engine, schema) == head_revision()
    assert current_revision(engine, schema) == head_revision()
    assert migrate(engine, schema) == head_revision()  # re-applied: nothing to do, no error
    assert Ledger(engine, schema=schema).migrate() == head_revision()
    assert current_revision(engine, schema) == head_revision()
    inspector = sa.inspect(engine)
    tables = {"alembic_version", "runs", "orders", "fills", "ledger_entries", "marks", "kill_switch_events"}
    assert set(inspector.get_table_names(schema=schema)) == tables
    assert inspector.get_view_names(schema=schema) == ["positions"]


@pytest.mark.services
def test_migrate_a_brand_new_database(engine: sa.Engine) -> None:
    database = f"ledger_empty_{uuid.uuid4().hex[:10]}"
    admin = engine.execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{database}"'))
    fresh = postgres_engine(engine.url.set(database=database).render_as_string(hide_password=False))
    try:
        assert current_revision(fresh) is None
        assert migrate(fresh) == head_revision()  # the default schema, stress_ledger, on an empty database
        assert migrate(fresh) == current_revision(fresh) == head_revision()
        assert "stress_ledger" in sa.inspect(fresh).get_schema_names()
    finally:
        fresh.dispose()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))


@pytest.mark.services
def test_migrations_build_exactly_the_core_tables(engine: sa.Engine, schema: str) -> None:
    migrate(engine, schema)
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={
            "include_schemas": True,
            "version_table_schema": schema,
            "include_name": lambda name, type_, parents: name == schema if type_ == "schema" else True,
        })  # fmt: skip
        assert compare_metadata(context, ledger_tables(schema).metadata) == []


@pytest.mark.services
def test_concurrent_migrations_of_one_schema_all_succeed(engine: sa.Engine, schema: str) -> None:
    with ThreadPoolExecutor(4) as pool:
        revisions = list(pool.map(lambda _: migrate(engine, schema), range(4)))
    assert revisions == [head_revision()] * 4
    assert current_revision(engine, schema) == head_revision()


def test_schema_names_are_plain_identifiers() -> None:
    engine = postgres_engine("postgresql://u@127.0.0.1:1/db")
    for bad in ("Ledger", "a-b", 'x"; DROP TABLE y; --', "", "9lives", "a" * 64):
        with pytest.raises(ValueError, match="invalid ledger schema name"):
            Ledger(engine, schema=bad)
    assert Ledger(engine, schema="ledger_2").schema == "ledger_2"


# ------------------------------------------------------------------------------------- idempotency


@pytest.mark.services
@pytest.mark.parametrize("optimistic", [True, False], ids=["optimistic", "on-conflict"])
def test_the_same_batch_twice_changes_nothing(engine: sa.Engine, schema: str, optimistic: bool) -> None:
    ledger = Ledger(engine, schema=schema, optimistic_insert=optimistic)
    ledger.migrate()
    run_id = _run(ledger)
    batch = _random_fills(run_id, 40)
    assert ledger.record_fills(batch) == 40
    entries = sorted(_entries(ledger, run_id))
    positions, cash = ledger.positions(run_id), ledger.cash(run_id, INITIAL_CASH)
    assert ledger.record_fills(batch) == 0
    assert ledger.fill_count(run_id) == 40
    assert sorted(_entries(ledger, run_id)) == entries and len(entries) == 120
    assert (ledger.positions(run_id), ledger.cash(run_id, INITIAL_CASH)) == (positions, cash)
    assert ledger.entries_balanced(run_id)
    assert ledger.fills(run_id) == batch


@pytest.mark.services
@pytest.mark.parametrize("optimistic", [True, False], ids=["optimistic", "on-conflict"])
def test_partially_overlapping_batches_store_each_fill_once(engine: sa.Engine, schema: str, optimistic: bool) -> None:
    ledger = Ledger(engine, schema=schema, optimistic_insert=optimistic)
    ledger.migrate()
    run_id = _run(ledger)
    fills = _random_fills(run_id, 60, seed=3)
    assert ledger.record_fills(fills[:30]) == 30
    assert ledger.record_fills(fills[20:50]) == 20
    assert ledger.record_fills(fills[10:60]) == 10
    assert ledger.fill_count(run_id) == 60
    assert len(_entries(ledger, run_id)) == 180
    assert ledger.entries_balanced(run_id)
    assert ledger.fills(run_id) == fills
    positions, cash, _, _ = _replay(fills)
    assert ledger.positions(run_id) == positions
    assert ledger.cash(run_id, INITIAL_CASH) == cash


@pytest.mark.services
def test_duplicates_within_one_batch_are_stored_once(ledger: Ledger) -> None:
    run_id = _run(ledger)
    a, b, c = (_fill(run_id, n) for n in range(3))
    assert ledger.record_fills([a, b, a, c, b, a]) == 3
    assert ledger.fills(run_id) == [a, b, c]
    assert ledger.entries_balanced(run_id)


@pytest.mark.services
def test_a_different_fill_under_a_stored_key_is_refused(ledger: Ledger) -> None:
    run_id = _run(ledger)
    stored = _fill(run_id, 1)
    ledger.record_fills([stored])
    forged = _fill(run_id, 1, qty="0.6")  # same run id + fill id, other quantity
    with pytest.raises(FillConflictError, match=f"{run_id}:f-1"):
        ledger.record_fills([_fill(run_id, 2), forged])
    assert ledger.fills(run_id) == [stored]  # the whole batch was refused, the new fill too
    with pytest.raises(FillConflictError):
        ledger.record_fills([_fill(run_id, 3), _fill(run_id, 3, price="1")])  # conflicting within the batch
    assert ledger.fill_count(run_id) == 1 and ledger.entries_balanced(run_id)


# ---------------------------------------------------------------------------------------- balances


@pytest.mark.services
def test_positions_cash_costs_and_fees_equal_the_python_replay(ledger: Ledger) -> None:
    run_id = _run(ledger)
    fills = _random_fills(run_id, 500, seed=7)
    flat = [_fill(run_id, 1000, symbol="XRPUSDT", qty="2.5"), _fill(run_id, 1001, symbol="XRPUSDT", qty="-2.5")]
    for start in range(0, len(fills), 120):
        ledger.record_fills(fills[start : start + 120])
    ledger.record_fills(flat)
    positions, cash, costs, fees = _replay(fills + flat)
    assert ledger.positions(run_id) == positions
    assert ledger.positions(run_id)["XRPUSDT"] == 0  # a flat symbol stays, as zero
    assert ledger.cash(run_id, INITIAL_CASH) == cash
    assert ledger.position_costs(run_id) == costs
    assert ledger.fees(run_id) == fees
    assert all(isinstance(value, Decimal) for value in [*ledger.positions(run_id).values(), cash, fees])


@pytest.mark.services
def test_an_unknown_run_has_no_fills_and_its_initial_cash(ledger: Ledger) -> None:
    assert ledger.fills("nobody") == [] and ledger.fill_count("nobody") == 0
    assert ledger.positions("nobody") == {}
    assert ledger.cash("nobody", Decimal("12.5")) == Decimal("12.5")
    assert ledger.entries_balanced("nobody")


# ------------------------------------------------------------------------------------ double entry


@pytest.mark.services
def test_each_fill_writes_a_balanced_set_of_entries(ledger: Ledger) -> None:
    run_id = _run(ledger)
    fills = _random_fills(run_id, 50, seed=11)
    ledger.record_fills(fills)
    by_fill: dict[str, list[tuple]] = {}
    for fill_id, account, symbol, qty, amount in _entries(ledger, run_id):
        by_fill.setdefault(fill_id, []).append((account, symbol, qty, amount))
    assert set(by_fill) == {fill.fill_id for fill in fills}
    for fill in fills:
        legs = {account: (symbol, qty, amount) for account, symbol, qty, amount in by_fill[fill.fill_id]}
        assert len(by_fill[fill.fill_id]) == 3 and set(legs) == {POSITION, CASH, FEES}
        assert sum(amount for _, _, amount in legs.values()) == 0
        assert legs[POSITION] == (fill.symbol, fill.qty, -fill.cash_delta - fill.fee)
        assert legs[CASH] == (None, None, fill.cash_delta)
        assert legs[FEES] == (None, None, fill.fee)
    assert ledger.entries_balanced(run_id) and ledger.unbalanced_fills(run_id) == []


@pytest.mark.services
def test_entries_balanced_notices_every_kind_of_damage(ledger: Ledger) -> None:
    run_id = _run(ledger)
    ledger.record_fills([_fill(run_id, n) for n in range(6)])
    entries = ledger.tables.entries
    own = entries.c.run_id == run_id
    with ledger.engine.begin() as conn:
        conn.execute(
            sa.update(entries)
            .where(own, entries.c.fill_id == "f-0", entries.c.account == CASH)
            .values(amount=entries.c.amount + Decimal("0.00000001"))
        )  # out of balance
        conn.execute(sa.delete(entries).where(own, entries.c.fill_id == "f-1", entries.c.account == FEES))  # a leg lost
        conn.execute(sa.delete(entries).where(own, entries.c.fill_id == "f-2"))  # a fill without entries
        conn.execute(sa.insert(entries).values(run_id=run_id, fill_id="ghost", account=CASH, amount=0))  # no fill
        conn.execute(
            sa.update(entries)
            .where(own, entries.c.fill_id == "f-3", entries.c.account == POSITION)
            .values(qty=entries.c.qty * 2, amount=entries.c.amount)
        )  # balanced, wrong quantity
        conn.execute(sa.insert(entries).values(run_id=run_id, fill_id="f-4", account=CASH, amount=0))  # a leg twice
    assert not ledger.entries_balanced(run_id)
    assert ledger.unbalanced_fills(run_id) == ["f-0", "f-1", "f-2", "f-3", "f-4", "ghost"]
    assert ledger.unbalanced_fills(run_id, limit=2) == ["f-0", "f-1"]


# ----------------------------------------------------------------------------------------- numbers


@pytest.mark.services
def test_numeric_amounts_round_trip_exactly(ledger: Ledger) -> None:
    run_id = _run(ledger)
    float_sum = fill_from_values(run_id, "float", 0, 1, "ETHUSDT", 1, 0.1 + 0.2, 0.1 + 0.7, 0.000000015)
    assert float_sum.qty == Decimal("0.30000000")  # quantised at the boundary: no binary-float tail
    fills = [
        float_sum,
        _fill(run_id, 1, symbol="SOLUSDT", qty="0.1", price="0.1", fee="0.1"),
        _fill(run_id, 2, symbol="SOLUSDT", qty="0.2", price="0.2", fee="0.2"),
        _fill(run_id, 3, qty="0.00000001", price="0.00000001", fee="0"),  # notional far below 1e-8
        _fill(run_id, 4, qty="-1234567.12345678", price="9999.99999999", fee="0.00000001"),  # 27 digits: exact
        _fill(run_id, 5, qty="-0E-8", price="1E-8", fee="-0.5"),  # negative zero, exponent notation, a rebate
    ]
    assert ledger.record_fills(fills) == len(fills)
    back = ledger.fills(run_id)
    assert back == fills
    assert [str(fill.qty) for fill in back[1:3]] == ["0.10000000", "0.20000000"]  # NUMERIC(38, 8) scale
    assert ledger.positions(run_id)["SOLUSDT"] == Decimal("0.3")  # exactly, not 0.30000000000000004
    positions, cash, costs, fees = _replay(fills)
    assert ledger.positions(run_id) == positions
    assert ledger.cash(run_id, INITIAL_CASH) == cash
    assert ledger.position_costs(run_id) == costs and ledger.fees(run_id) == fees
    assert ledger.cash(run_id, Decimal("0.1")) + Decimal("0.2") == cash - INITIAL_CASH + Decimal("0.3")
    assert ledger.entries_balanced(run_id)


@pytest.mark.services
@pytest.mark.parametrize(
    ("field", "value"),
    [("qty", "0.123456789"), ("price", "1E-9"), ("fee", "NaN"), ("qty", "Infinity"), ("price", "-Infinity")],
)
def test_amounts_that_are_not_quantised_or_not_finite_are_refused(ledger: Ledger, field: str, value: str) -> None:
    run_id = _run(ledger)
    good = _fill(run_id, 1)
    bad = _fill(run_id, 2, **{field: value})
    with pytest.raises(InvalidFillError, match=f"{run_id}:f-2"):
        ledger.record_fills([good, bad])
    assert ledger.fill_count(run_id) == 0
    assert ledger.record_fills([good]) == 1  # the session's staging table was left empty


@pytest.mark.services
def test_identifiers_with_copy_special_characters_round_trip(ledger: Ledger) -> None:
    run_id = "run\twith\\odd\nchars\r-" + uuid.uuid4().hex[:6]
    ledger.start_run(run_id, "escapes")
    fills = [
        Fill(run_id, "fill\t1", 0, 0, "ÉTH/USDT", 1, Decimal("1"), Decimal("2"), Decimal("0")),
        Fill(run_id, "back\\slash\\N", 1, 1, "new\nline", 2, Decimal("-1"), Decimal("3"), Decimal("0.1")),
        Fill(run_id, "\\N", 2, 2, "plain", 3, Decimal("0.5"), Decimal("4"), Decimal("0")),
    ]
    assert ledger.record_fills(fills) == 3
    assert ledger.fills(run_id) == fills
    assert ledger.record_fills(fills) == 0
    assert ledger.entries_balanced(run_id)


# -------------------------------------------------------------------------------------- runs, order


@pytest.mark.services
def test_fills_of_a_run_never_started_are_refused(ledger: Ledger) -> None:
    run_id = _run(ledger)
    with pytest.raises(UnknownRunError, match="ghost-run"):
        ledger.record_fills([_fill(run_id, 1), _fill("ghost-run", 2)])
    assert ledger.fill_count(run_id) == 0


@pytest.mark.services
def test_start_run_again_is_fine_but_not_for_another_scenario(ledger: Ledger) -> None:
    run_id = _run(ledger)
    ledger.start_run(run_id, "test-scenario")
    assert ledger.run_status(run_id) == "running"
    with pytest.raises(LedgerError, match="other-scenario"):
        ledger.start_run(run_id, "other-scenario")
    ledger.finish_run(run_id)
    assert ledger.run_status(run_id) == "finished"
    assert ledger.run_status("nobody") is None


@pytest.mark.services
def test_fills_come_back_in_event_id_order(ledger: Ledger) -> None:
    run_id = _run(ledger)
    fills = [_fill(run_id, n, event_id=100 - n) for n in range(20)]
    random.Random(5).shuffle(fills)
    ledger.record_fills(fills[:10])
    ledger.record_fills(fills[10:])
    assert ledger.fills(run_id) == sorted(fills, key=lambda fill: fill.event_id)


@pytest.mark.services
def test_orders_are_stored_once(ledger: Ledger) -> None:
    run_id = _run(ledger)
    orders = [OrderRecord(run_id, n, "BTCUSDT", "buy" if n % 2 else "sell", Decimal("0.5"), n) for n in range(5)]
    assert ledger.record_orders(orders[:3]) == 3
    assert ledger.record_orders(orders) == 2
    assert ledger.record_orders([]) == 0
    with ledger.engine.connect() as conn:
        table = ledger.tables.orders
        stored = conn.execute(sa.select(table.c.order_id, table.c.qty).where(table.c.run_id == run_id)).all()
    assert sorted(stored) == [(n, Decimal("0.5")) for n in range(5)]


# ------------------------------------------------------------------------------------------- outages


def test_an_unreachable_database_names_the_masked_url() -> None:
    engine = postgres_engine("postgresql://stress:hunter2@127.0.0.1:1/ledger")
    ledger = Ledger(engine, schema="stress_ledger")
    calls = [
        ledger.migrate,
        lambda: ledger.start_run("r", "s"),
        lambda: ledger.record_fills([_fill("r", 1)]),
        lambda: ledger.positions("r"),
        lambda: ledger.cash("r", INITIAL_CASH),
        lambda: ledger.fills("r"),
        lambda: current_revision(engine),
    ]
    for call in calls:
        with pytest.raises(ServiceUnavailableError) as caught:
            call()
        message = str(caught.value)
        assert message.startswith("PostgreSQL at postgresql://stress:***@127.0.0.1:1/ledger is unreachable: ")
        assert "hunter2" not in message and "\n" not in message
    assert "hunter2" not in repr(ledger)
    engine.dispose()


@pytest.mark.services
def test_an_outage_mid_run_raises_unavailable_and_the_replay_completes(postgres_url: str, schema: str) -> None:
    host, port = sa.make_url(postgres_url).host, sa.make_url(postgres_url).port or 5432
    with FaultProxy(host, port) as proxy:
        engine = postgres_engine(proxy.url_for(postgres_url))
        try:
            ledger = Ledger(engine, schema=schema)
            ledger.migrate()
            run_id = _run(ledger)
            fills = _random_fills(run_id, 90, seed=2)
            assert ledger.record_fills(fills[:30]) == 30
            proxy.down()  # cuts the pooled connection and refuses new ones
            with pytest.raises(ServiceUnavailableError, match=r"^PostgreSQL at postgresql://"):
                ledger.record_fills(fills[30:60])
            with pytest.raises(ServiceUnavailableError):
                ledger.positions(run_id)
            proxy.up()
            assert ledger.record_fills(fills[:60]) == 30  # the buffered batch, replayed with the old one
            assert ledger.record_fills(fills[60:]) == 30
            assert ledger.fills(run_id) == fills and ledger.entries_balanced(run_id)
        finally:
            engine.dispose()


# ------------------------------------------------------------------------------------------ property

_amount = st.integers(-(10**12), 10**12).map(lambda units: Decimal(units).scaleb(-8))
_price = st.integers(1, 10**13).map(lambda units: Decimal(units).scaleb(-8))
_pool = st.lists(st.tuples(st.sampled_from(SYMBOLS), _amount, _price, _amount), min_size=1, max_size=25)


@pytest.mark.services
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pool=_pool, picks=st.lists(st.lists(st.integers(0, 24), max_size=12), min_size=1, max_size=6),
       optimistic=st.booleans())  # fmt: skip
def test_any_batches_with_duplicates_leave_the_set_of_distinct_fills(
    engine: sa.Engine, schema: str, pool: list[tuple], picks: list[list[int]], optimistic: bool
) -> None:
    ledger = Ledger(engine, schema=schema, optimistic_insert=optimistic)
    ledger.migrate()
    run_id = _run(ledger)
    fills = [
        Fill(run_id, f"p{i}", i, i, symbol, i, qty, price, fee) for i, (symbol, qty, price, fee) in enumerate(pool)
    ]
    batches = [[fills[i % len(fills)] for i in batch] for batch in picks]
    written = sum(ledger.record_fills(batch) for batch in batches)
    distinct = sorted({fill for batch in batches for fill in batch}, key=lambda fill: fill.event_id)
    assert written == len(distinct) == ledger.fill_count(run_id)
    assert ledger.fills(run_id) == distinct
    assert ledger.entries_balanced(run_id)
    positions, cash, costs, fees = _replay(distinct)
    assert ledger.positions(run_id) == positions
    assert ledger.cash(run_id, INITIAL_CASH) == cash
    assert ledger.position_costs(run_id) == costs and ledger.fees(run_id) == fees
    assert sum(ledger.record_fills(batch) for batch in batches) == 0  # all of it again: nothing new


# --------------------------------------------------------------------------------------------- bench


@pytest.mark.services
def test_ledger_bench_ingests_everything_and_cleans_up(engine: sa.Engine, schema: str) -> None:
    measurement = run_ledger_bench(engine, fills=6_000, batch=1_000, repeat=2, schema=schema)
    assert (measurement.items, measurement.unit, measurement.repeat) == (6_000, "fills", 2)
    assert 0 < measurement.seconds <= measurement.median_seconds
    assert isinstance(ledger_target_met(measurement), bool)  # the figure itself comes from the bench command
    assert schema not in sa.inspect(engine).get_schema_names()


def test_bench_fills_are_quantised_and_distinct() -> None:
    fills = bench_fills(1_000, "r")
    assert len({fill.idempotency_key for fill in fills}) == 1_000
    assert all(fill.qty == fill.qty.quantize(Decimal("1e-8")) and fill.qty != 0 for fill in fills)
    assert all(fill.price > 0 and fill.fee >= 0 for fill in fills)


def test_migrations_dir_ships_its_template_and_first_revision() -> None:
    from stress_pipeline.state.ledger_schema import MIGRATIONS_DIR

    assert (MIGRATIONS_DIR / "env.py").is_file() and (MIGRATIONS_DIR / "script.py.mako").is_file()
    versions = sorted(path.name for path in Path(MIGRATIONS_DIR, "versions").glob("*.py"))
    assert versions[0] == "0001_ledger_tables.py"


@pytest.mark.services
def test_marks_are_idempotent_by_run_and_time(engine: sa.Engine, schema: str) -> None:
    from stress_pipeline.state.records import Mark

    ledger = Ledger(engine, schema=schema)
    ledger.migrate()
    marks = [Mark("m1", ts, Decimal("100000.12345678") + ts) for ts in range(5)]
    assert ledger.record_marks(marks) == 5
    assert ledger.record_marks(marks[:2]) == 2  # written again: no new rows
    assert ledger.mark_count("m1") == 5
