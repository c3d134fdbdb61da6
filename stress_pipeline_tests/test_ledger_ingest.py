"""The ledger's two write paths against a Decimal reference, on real servers.

The direct path (``COPY`` straight into the tables) and the staged one (staging table, ``ON CONFLICT``)
must store exactly the same rows, and balances exact to 1e-8 whatever the amounts: quantised ones and
ones written by hand (``2.5``), up to the 30 integer digits ``NUMERIC(38, 8)`` holds. The reference
computes every cash effect in a 200-digit context with the one quantisation, independently of
:mod:`stress_pipeline.state.records`. Runs on an embedded PostgreSQL and on STRESS_POSTGRES_URL.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from decimal import ROUND_HALF_EVEN, Context, Decimal, localcontext

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stress_pipeline.bench.state_ledger import bench_fills
from stress_pipeline.services import embedded, postgres_engine
from stress_pipeline.settings import get_settings
from stress_pipeline.state.ledger import Ledger, entry_lines, fill_lines
from stress_pipeline.state.ledger_schema import CASH, FEES, POSITION
from stress_pipeline.state.records import Fill

WIDE = Context(prec=200)
CASH0 = Decimal("1000000")
SYMBOLS = ("BTCUSDT", "ETHUSDT")


def _reference_cash_delta(fill: Fill) -> Decimal:
    with localcontext(WIDE):
        return (-(fill.qty * fill.price) - fill.fee).quantize(Decimal("1e-8"), rounding=ROUND_HALF_EVEN)


def _amount(max_units: int, *, positive: bool = False) -> st.SearchStrategy[Decimal]:
    """At most 8 decimals: quantised (exponent -8), or as a person writes it (``2.5``, ``3E+2``)."""
    units = st.integers(1 if positive else -max_units, max_units)
    return st.tuples(units, st.booleans()).map(
        lambda pair: Decimal(pair[0]).scaleb(-8).normalize(WIDE) if pair[1] else Decimal(pair[0]).scaleb(-8)
    )


# The notional stays below 1e29 so that every cash effect fits NUMERIC(38, 8) (30 integer digits).
_pool = st.lists(
    st.tuples(st.sampled_from(SYMBOLS), _amount(10**19), _amount(10**17, positive=True), _amount(10**12)),
    min_size=1, max_size=30,
)  # fmt: skip


@pytest.fixture(scope="module")
def embedded_postgres_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    settings_ = get_settings({"STRESS_HOME": str(tmp_path_factory.mktemp("ledger-ingest-home"))})
    try:
        yield embedded.start(settings_, [embedded.POSTGRES]).postgres.url
    finally:
        embedded.stop(settings_)


@pytest.fixture(params=["embedded", "external"])
def engine(request: pytest.FixtureRequest) -> Iterator[sa.Engine]:
    if request.param == "embedded":
        url = request.getfixturevalue("embedded_postgres_url")
    else:
        url = request.getfixturevalue("external_service_urls").postgres_url
    engine = postgres_engine(url)
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture
def ledgers(engine: sa.Engine) -> Iterator[tuple[Ledger, Ledger]]:
    """A direct-path ledger and a staged-path ledger, each in a schema of its own."""
    schemas = [f"ingest_test_{uuid.uuid4().hex[:12]}" for _ in range(2)]
    pair = (Ledger(engine, schema=schemas[0]), Ledger(engine, schema=schemas[1], optimistic_insert=False))
    for ledger in pair:
        ledger.migrate()
    try:
        yield pair
    finally:
        with engine.begin() as conn:
            for schema in schemas:
                conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))


def _rows(ledger: Ledger, run_id: str) -> tuple[list[tuple], list[tuple]]:
    fills, entries = ledger.tables.fills, ledger.tables.entries
    with ledger.engine.connect() as conn:
        stored = conn.execute(sa.select(fills).where(fills.c.run_id == run_id).order_by(fills.c.fill_id)).all()
        legs = conn.execute(
            sa.select(entries.c.fill_id, entries.c.account, entries.c.symbol, entries.c.qty, entries.c.amount)
            .where(entries.c.run_id == run_id)
            .order_by(entries.c.fill_id, entries.c.account)
        ).all()  # fmt: skip
    return [tuple(row) for row in stored], [tuple(row) for row in legs]


@pytest.mark.services
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pool=_pool, batches=st.lists(st.lists(st.integers(0, 29), min_size=1, max_size=12), min_size=1, max_size=4))
def test_both_paths_store_the_same_exact_rows_as_the_reference(
    ledgers: tuple[Ledger, Ledger], pool: list[tuple], batches: list[list[int]]
) -> None:
    run_id = f"run-{uuid.uuid4().hex[:10]}"
    fills = [Fill(run_id, f"h{i}", i, i, symbol, i, q, p, fee) for i, (symbol, q, p, fee) in enumerate(pool)]
    sent = [[fills[i % len(fills)] for i in batch] for batch in batches]  # overlapping, with repeats
    distinct = sorted({fill for batch in sent for fill in batch}, key=lambda fill: fill.event_id)

    with localcontext(WIDE):
        deltas = {fill.fill_id: _reference_cash_delta(fill) for fill in distinct}
        traded = {fill.symbol for fill in distinct}
        positions = {s: sum((f.qty for f in distinct if f.symbol == s), Decimal(0)) for s in traded}
        costs = {s: sum((-deltas[f.fill_id] - f.fee for f in distinct if f.symbol == s), Decimal(0)) for s in traded}
        cash = CASH0 + sum(deltas.values(), Decimal(0))
        fees = sum((f.fee for f in distinct), Decimal(0))
    expected_legs = sorted(
        [(f.fill_id, CASH, None, None, deltas[f.fill_id]) for f in distinct]
        + [(f.fill_id, FEES, None, None, f.fee) for f in distinct]
        + [(f.fill_id, POSITION, f.symbol, f.qty, -deltas[f.fill_id] - f.fee) for f in distinct]
    )  # fmt: skip

    stored_rows = []
    for ledger in ledgers:
        ledger.start_run(run_id, "exactness")
        assert sum(ledger.record_fills(batch) for batch in sent) == len(distinct)
        assert sum(ledger.record_fills(batch) for batch in sent) == 0  # all again: nothing new
        assert ledger.fills(run_id) == distinct
        assert ledger.positions(run_id) == positions and ledger.position_costs(run_id) == costs
        assert ledger.cash(run_id, CASH0) == cash and ledger.fees(run_id) == fees
        assert ledger.entries_balanced(run_id)
        stored, legs = _rows(ledger, run_id)
        assert legs == expected_legs
        assert [row[-1] for row in stored] == [deltas[row[1]] for row in stored]  # the cash_delta column
        stored_rows.append((stored, legs))
    assert stored_rows[0] == stored_rows[1]  # the two paths: the very same rows


@pytest.mark.services
def test_quantised_batches_take_the_direct_path_and_others_fall_back(ledgers: tuple[Ledger, Ledger]) -> None:
    direct, _ = ledgers
    run_id = f"run-{uuid.uuid4().hex[:10]}"
    direct.start_run(run_id, "paths")
    quantised = bench_fills(2_500, run_id)  # three COPY chunks
    statements: list[str] = []

    def record(conn, cursor, statement, *args) -> None:
        statements.append(statement)

    sa.event.listen(direct.engine, "before_cursor_execute", record)
    try:
        assert direct.record_fills(quantised) == 2_500
        assert not any("ON CONFLICT" in s for s in statements)  # straight into the tables
        statements.clear()
        assert direct.record_fills(quantised[:10] + bench_fills(2_510, run_id)[2_500:]) == 10
        assert any("ON CONFLICT" in s for s in statements)  # a replayed fill: the staged path
    finally:
        sa.event.remove(direct.engine, "before_cursor_execute", record)
    assert direct.fill_count(run_id) == 2_510 and direct.entries_balanced(run_id)


def test_copy_text_of_fills_and_entries() -> None:
    fill = Fill("run", "f1", 7, 9, "BTCUSDT", 3, Decimal("0.5"), Decimal("100.25"), Decimal("0E-8"))
    delta = fill.cash_delta
    assert fill_lines([fill], [delta]) == "run\tf1\t7\t9\tBTCUSDT\t3\t0.5\t100.25\t0E-8\t-50.12500000\n"
    assert entry_lines([fill], [delta]) == (
        "run\tf1\tposition\tBTCUSDT\t0.5\t50.12500000\n"
        "run\tf1\tcash\t\\N\t\\N\t-50.12500000\n"
        "run\tf1\tfees\t\\N\t\\N\t0E-8\n"
    )
    odd = Fill("r\tun", "f\\1", 7, 9, "new\nline", 3, Decimal("1"), Decimal("2"), Decimal("0"))
    assert fill_lines([odd], [odd.cash_delta], escape=True).startswith("r\\tun\tf\\\\1\t7\t9\tnew\\nline\t")
    assert entry_lines([odd], [odd.cash_delta], escape=True).count("\n") == 3


@pytest.mark.services
def test_cash_beyond_28_digits_is_exact(ledgers: tuple[Ledger, Ledger]) -> None:
    """Cash is initial cash plus the cash entries in the exact context, not Python's default 28 digits."""
    ledger, _ = ledgers
    run_id = f"run-{uuid.uuid4().hex[:10]}"
    ledger.start_run(run_id, "wide cash")
    qty, price, fee = Decimal("-99999999999.99997801"), Decimal("1000000000.00000003"), Decimal("0.00000001")
    fill = Fill(run_id, "w0", 1, 1, "BTCUSDT", 1, qty, price, fee)
    ledger.record_fills([fill])
    with localcontext(WIDE):
        expected = CASH0 + _reference_cash_delta(fill)
    assert ledger.cash(run_id, CASH0) == expected
    assert len(expected.as_tuple().digits) > 28  # the case the default context would round
