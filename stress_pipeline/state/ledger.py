"""The PostgreSQL ledger: a run's fills and their double entries, written in batches, read back exactly.

Write path. :meth:`Ledger.record_fills` writes one batch in one transaction:

1. the batch's runs are looked up and share-locked (a fill of a run never started is refused: a
   foreign key would check every row, this checks each run once per batch);
2. the fills are sent with ``COPY`` (text format) straight into ``fills``, then their three entries
   each (:func:`entry_lines`, the one place the legs are written) straight into ``ledger_entries``,
   inside a savepoint.

Speed. Where the time of an ingest goes (1M fills, 2 cores): ``INSERT ... SELECT`` stores rows one at
a time, with a write-ahead-log record each, while ``COPY`` stores them in pages (multi-insert); the
entries are three rows a fill, so inserting them from a staging table was half of the whole ingest.
``COPY`` straight into the tables took the server's share from about 10 s to 6 s; the Python side
(``cash_delta`` and the text) runs while the server stores the previous chunk. In the live system
almost every batch is all new, so this is the path taken first.

Step 2 stops, and the savepoint is rolled back, when a chunk holds an amount that is not finite or
has more than 8 decimals (``NUMERIC(38, 8)`` would round it silently), an identifier that needs
escaping, or when the server refuses a row (a fill already stored: a replay, an overlapping batch, a
duplicate within the batch). The batch then takes the staged path, which handles everything:

3. the fills are COPYed, escaped, into a temporary table of the session, emptied at every commit;
4. the staged amounts are checked once, in SQL: finite, at most 8 decimals (the quantisation of the
   records contract); a bad one raises :class:`InvalidFillError` naming the fills;
5. ``INSERT INTO fills ... SELECT ... FROM stage ON CONFLICT (run_id, fill_id) DO NOTHING RETURNING``
   the keys of the new fills; when fills were skipped, each must be the one already stored (a
   different fill under the same key raises :class:`FillConflictError` and nothing is written);
6. the entries of exactly the new fills, by ``COPY``.

Both paths write exactly the same rows: no fill without its entries, no entries twice, and the same
batch written again changes nothing and returns 0. ``optimistic_insert=False`` always takes the
staged path (the bench measures both).

Errors: a server that cannot be reached, or drops the connection, raises
:class:`~stress_pipeline.services.errors.ServiceUnavailableError` naming the masked URL (the writer
buffers the batch and retries; a batch interrupted anywhere was rolled back, and writing it again is
safe). Bad input raises :class:`LedgerError` subclasses.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from decimal import Decimal, localcontext
from operator import attrgetter

import psycopg
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert

from stress_pipeline.services.urls import mask_url, to_libpq_url
from stress_pipeline.state.ledger_schema import (
    CASH,
    DEFAULT_SCHEMA,
    FEES,
    POSITION,
    LedgerError,
    LedgerTables,
    account_balance,
    ledger_tables,
    migrate,
    postgres_errors,
)
from stress_pipeline.state.records import EXACT, Fill, Mark, money

STAGE = "stress_ledger_stage"
COPY_CHUNK = 1_000  # fills per COPY write: small enough for Python and the server to overlap
_STAGE_READY = "stress_ledger_stage_ready"  # marks a DBAPI connection whose session has the table
_COPY_COLUMNS = "run_id, fill_id, event_id, ts_ns, symbol, order_id, qty, price, fee, cash_delta"
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_FILL_TABS = _COPY_COLUMNS.count(",")
_FILL_FIELDS = attrgetter("run_id", "fill_id", "event_id", "ts_ns", "symbol", "order_id", "qty", "price", "fee")
_FILL_LINE = "\t".join(["%s"] * (_FILL_TABS + 1)) + "\n"  # the fields, then cash_delta
_ENTRY_FIELDS = attrgetter("run_id", "fill_id", "symbol", "qty", "fee")
_ENTRY_LINES = (
    f"%s\t%s\t{POSITION}\t%s\t%s\t%s\n"
    f"%s\t%s\t{CASH}\t\\N\t\\N\t%s\n"
    f"%s\t%s\t{FEES}\t\\N\t\\N\t%s\n"
)
_NAN = Decimal("NaN")
_SCALE_8 = Decimal("1e-8")  # the scale of every NUMERIC(38, 8) column
_SHOWN = 5  # keys quoted in an error message


class UnknownRunError(LedgerError):
    """Fills arrived for a run that was never started (:meth:`Ledger.start_run`)."""


class InvalidFillError(LedgerError):
    """A fill's amounts are not finite or carry more than 8 decimals."""


class FillConflictError(LedgerError):
    """A fill arrived under a stored fill's key (run id + fill id) with different values."""


@dataclass(frozen=True)
class OrderRecord:
    """An order as the ledger keeps it: ``qty`` unsigned, ``side`` ``buy`` or ``sell``."""

    run_id: str
    order_id: int
    symbol: str
    side: str
    qty: Decimal
    created_ts_ns: int


class Ledger:
    """The ledger of every run in one PostgreSQL schema. Thread-safe as far as ``engine`` is."""

    def __init__(self, engine: sa.Engine, schema: str = DEFAULT_SCHEMA, *, optimistic_insert: bool = True) -> None:
        self.engine = engine
        self.tables: LedgerTables = ledger_tables(schema)
        self.schema = self.tables.schema
        self.optimistic_insert = optimistic_insert
        self._sql = _IngestSql(self.tables)

    def __repr__(self) -> str:
        url = mask_url(to_libpq_url(self.engine.url.render_as_string(hide_password=False)))
        return f"Ledger({url}, schema={self.schema!r})"

    def migrate(self) -> str:
        """Bring the schema to the newest migration (creating it if needed); returns the revision."""
        return migrate(self.engine, self.schema)

    # ------------------------------------------------------------------------------------ runs

    def start_run(self, run_id: str, scenario: str) -> None:
        """Register a run; starting it again (a restarted writer) is fine, under another scenario is not."""
        runs = self.tables.runs
        insert = pg_insert(runs).values(run_id=run_id, scenario=scenario).on_conflict_do_nothing()
        with self._begin() as conn:
            if conn.execute(insert.returning(runs.c.run_id)).first() is not None:
                return
            stored = conn.execute(sa.select(runs.c.scenario).where(runs.c.run_id == run_id)).scalar_one()
        if stored != scenario:
            raise LedgerError(f"run {run_id!r} was started for scenario {stored!r}, not {scenario!r}")

    def record_marks(self, marks: Sequence[Mark]) -> int:
        """Heartbeats with equity; writing one twice keeps the last value (idempotent by run and time)."""
        if not marks:
            return 0
        table = self.tables.marks
        rows = [{"run_id": m.run_id, "ts_ns": m.ts_ns, "equity": m.equity} for m in marks]
        statement = pg_insert(table)
        statement = statement.on_conflict_do_update(
            index_elements=[table.c.run_id, table.c.ts_ns], set_={"equity": statement.excluded.equity}
        )
        with self._begin() as conn:
            conn.execute(statement, rows)
        return len(rows)

    def mark_count(self, run_id: str) -> int:
        table = self.tables.marks
        with self._connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).where(table.c.run_id == run_id)).scalar_one())

    def finish_run(self, run_id: str, status: str = "finished") -> None:
        runs = self.tables.runs
        with self._begin() as conn:
            conn.execute(sa.update(runs).where(runs.c.run_id == run_id).values(status=status))

    def run_status(self, run_id: str) -> str | None:
        runs = self.tables.runs
        with self._connect() as conn:
            return conn.execute(sa.select(runs.c.status).where(runs.c.run_id == run_id)).scalar_one_or_none()

    # ---------------------------------------------------------------------------------- writes

    def record_orders(self, orders: Iterable[OrderRecord]) -> int:
        """Store orders, idempotently by (run id, order id); returns how many were new."""
        rows = [asdict(order) for order in orders]
        if not rows:
            return 0
        table = self.tables.orders
        insert = pg_insert(table).on_conflict_do_nothing().returning(table.c.order_id)
        with self._begin() as conn:
            return len(conn.execute(insert, rows).all())

    def record_fills(self, fills: Sequence[Fill]) -> int:
        """Write a batch of fills and their entries in one transaction; returns how many were new."""
        if not fills:
            return 0
        run_ids = sorted({fill.run_id for fill in fills})
        created = False
        with self._connect() as conn:
            with conn.begin():
                self._lock_runs(conn, run_ids)
                new = self._copy_direct(conn, fills) if self.optimistic_insert else None
                if new is None:
                    conn.execute(sa.text("SET LOCAL jit = off"))  # JIT-compiling a batch statement never pays off
                    deltas = _staged_cash_deltas(fills)
                    created = self._stage(conn, fills, deltas)
                    self._check_staged(conn)
                    new = self._insert_staged(conn, fills, deltas)
            if created:
                conn.info[_STAGE_READY] = True  # only once the CREATE TABLE is committed
        return new

    # ----------------------------------------------------------------------------------- reads

    def fills(self, run_id: str) -> list[Fill]:
        """The run's fills in event-id order, exactly as written."""
        table = self.tables.fills
        query = (
            sa.select(table.c.run_id, table.c.fill_id, table.c.event_id, table.c.ts_ns, table.c.symbol,
                      table.c.order_id, table.c.qty, table.c.price, table.c.fee)
            .where(table.c.run_id == run_id)
            .order_by(table.c.event_id, table.c.fill_id)
        )  # fmt: skip
        with self._connect() as conn:
            return [Fill(*row) for row in conn.execute(query)]

    def fill_count(self, run_id: str) -> int:
        table = self.tables.fills
        with self._connect() as conn:
            return conn.execute(sa.select(sa.func.count()).where(table.c.run_id == run_id)).scalar_one()

    def positions(self, run_id: str) -> dict[str, Decimal]:
        """Signed quantity per symbol the run traded (flat ones included, as zero), from the entries."""
        return {symbol: qty for symbol, qty, _ in self._position_rows(run_id)}

    def position_costs(self, run_id: str) -> dict[str, Decimal]:
        """Net cost per symbol: cash paid for what was bought less cash received for what was sold."""
        return {symbol: cost for symbol, _, cost in self._position_rows(run_id)}

    def cash(self, run_id: str, initial_cash: Decimal) -> Decimal:
        """The run's cash: ``initial_cash`` plus its cash entries (every fill's ``cash_delta``)."""
        return EXACT.add(money(initial_cash), self._balance(run_id, CASH))

    def fees(self, run_id: str) -> Decimal:
        """The fees the run paid: the balance of its fee account."""
        return self._balance(run_id, FEES)

    def unbalanced_fills(self, run_id: str, limit: int = 100) -> list[str]:
        """Fill ids whose entries are missing, duplicated, out of balance or disagree with the fill.

        Each fill must have exactly one position, one cash and one fee entry summing to zero, with
        the fill's symbol and quantity on the position entry, its ``cash_delta`` on the cash entry and
        its fee on the fee entry; entries without a fill are reported too.
        """
        with self._connect() as conn:
            rows = conn.execute(self._sql.unbalanced, {"run_id": run_id, "limit": limit})
            return [fill_id for (fill_id,) in rows]

    def entries_balanced(self, run_id: str) -> bool:
        """True when every fill of the run has its complete, balanced set of entries and nothing else."""
        return not self.unbalanced_fills(run_id, limit=1)

    # ------------------------------------------------------------------------------- internals

    @contextmanager
    def _begin(self) -> Iterator[sa.Connection]:
        """A transaction whose connection failures surface as ServiceUnavailableError."""
        with postgres_errors(self.engine), self.engine.begin() as conn:
            yield conn

    @contextmanager
    def _connect(self) -> Iterator[sa.Connection]:
        with postgres_errors(self.engine), self.engine.connect() as conn:
            yield conn

    def _position_rows(self, run_id: str) -> list[tuple[str, Decimal, Decimal]]:
        view = self.tables.positions
        query = sa.select(view.c.symbol, view.c.qty, view.c.cost).where(view.c.run_id == run_id)
        with self._connect() as conn:
            return [tuple(row) for row in conn.execute(query.order_by(view.c.symbol))]

    def _balance(self, run_id: str, account: str) -> Decimal:
        with self._connect() as conn:
            return Decimal(conn.execute(account_balance(self.tables, run_id, account)).scalar_one())

    def _lock_runs(self, conn: sa.Connection, run_ids: list[str]) -> None:
        runs = self.tables.runs
        query = sa.select(runs.c.run_id).where(runs.c.run_id.in_(run_ids)).with_for_update(key_share=True)
        missing = set(run_ids) - set(conn.execute(query).scalars())
        if missing:
            raise UnknownRunError(f"fills for runs never started: {', '.join(sorted(missing)[:_SHOWN])}")

    def _stage(self, conn: sa.Connection, fills: Sequence[Fill], deltas: Sequence[Decimal]) -> bool:
        """COPY the batch into the session's staging table; True if the table was created now."""
        create = _STAGE_READY not in conn.info
        if create:
            conn.execute(self._sql.create_stage)
        texts = (
            fill_lines(fills[start : start + COPY_CHUNK], deltas[start : start + COPY_CHUNK], escape=True)
            for start in range(0, len(fills), COPY_CHUNK)
        )
        self._copy(conn, self._sql.copy_stage, texts)
        return create

    def _copy(self, conn: sa.Connection, statement: str, texts: Iterable[str]) -> None:
        """One ``COPY ... FROM STDIN``, sending ``texts`` as they come: the server parses and stores one
        while Python formats the next."""
        raw = conn.connection.driver_connection
        try:
            with raw.cursor() as cursor, cursor.copy(statement) as copy:
                for text in texts:
                    copy.write(text)
        except psycopg.Error:
            if raw.closed or raw.broken:
                conn.invalidate()  # SQLAlchemy did not see the driver call fail: drop the dead connection
            raise

    def _check_staged(self, conn: sa.Connection) -> None:
        bad = conn.execute(self._sql.bad_amounts, {"limit": _SHOWN}).scalars().all()
        if bad:
            raise InvalidFillError(
                f"fills with non-finite amounts or more than 8 decimals (quantise them with "
                f"stress_pipeline.state.records): {', '.join(bad)}"
            )

    def _copy_direct(self, conn: sa.Connection, fills: Sequence[Fill]) -> int | None:
        """COPY the batch straight into ``fills`` and ``ledger_entries``, inside a savepoint; the number
        written, or None when the batch must take the staged path (nothing of it is left behind then).

        The text goes in chunks, so the server parses and stores one while Python formats the next.
        A chunk with an amount the columns would not store as given (:func:`_storable`) or an
        identifier to escape stops the direct path before the server sees it; a fill already stored
        stops it at the fills key.
        """
        chunks = [fills[start : start + COPY_CHUNK] for start in range(0, len(fills), COPY_CHUNK)]
        deltas: list[list[Decimal]] = []

        def fill_texts() -> Iterator[str]:
            for chunk in chunks:
                if not _storable(chunk):
                    raise _NotPlain
                deltas.append(_cash_deltas(chunk))
                yield _plain_fill_lines(chunk, deltas[-1])

        try:
            with conn.begin_nested():
                self._copy(conn, self._sql.copy_fills, fill_texts())
                self._copy(conn, self._sql.copy_entries, map(entry_lines, chunks, deltas))
        except _NotPlain:
            return None
        except (psycopg.errors.IntegrityError, psycopg.errors.DataError):
            return None  # a stored fill (or a value the server refuses): the staged path sorts it out
        return len(fills)

    def _insert_staged(self, conn: sa.Connection, fills: Sequence[Fill], deltas: Sequence[Decimal]) -> int:
        """The staged batch's new fills, then their entries; a skipped fill must equal the stored one."""
        new_keys = {(run_id, fill_id) for run_id, fill_id in conn.execute(self._sql.insert_idempotent)}
        if len(new_keys) != len(fills):  # some were skipped: each must be the very fill already stored
            conflicts = conn.execute(self._sql.conflicts, {"limit": _SHOWN}).all()
            if conflicts:
                keys = ", ".join(f"{run_id}:{fill_id}" for run_id, fill_id in conflicts)
                raise FillConflictError(f"fills already stored with other values under the same key: {keys}")
        new_fills, new_deltas = [], []
        for fill, delta in zip(fills, deltas, strict=True):  # once each: a fill held twice was inserted once
            key = (fill.run_id, fill.fill_id)
            if key in new_keys:
                new_keys.discard(key)
                new_fills.append(fill)
                new_deltas.append(delta)
        if new_fills:
            texts = (
                entry_lines(new_fills[start : start + COPY_CHUNK], new_deltas[start : start + COPY_CHUNK], escape=True)
                for start in range(0, len(new_fills), COPY_CHUNK)
            )
            self._copy(conn, self._sql.copy_entries, texts)
        return len(new_fills)


# ----------------------------------------------------------------------------------------- COPY text


def fill_lines(fills: Sequence[Fill], deltas: Sequence[Decimal], *, escape: bool = False) -> str:
    """``COPY`` text of ``fills`` with their ``cash_delta``, one line each; with ``escape``, identifiers
    that need it are escaped (see :func:`_escape_identifiers`).

    Amounts go as ``str(Decimal)``, which PostgreSQL's numeric input reads exactly, exponent notation
    (``5E-8``) included. ``%`` formatting of the fields fetched by one ``attrgetter`` is the cheapest
    way to build the text in Python (a quarter faster than an f-string of ten attribute lookups).
    """
    if escape:
        fills = _escape_identifiers(fills)
    return "".join([_FILL_LINE % (*_FILL_FIELDS(fill), delta) for fill, delta in zip(fills, deltas, strict=True)])


def entry_lines(fills: Sequence[Fill], deltas: Sequence[Decimal], *, escape: bool = False) -> str:
    """``COPY`` text of the fills' double entries, three lines a fill, summing to zero (the schema's
    rule, see :mod:`~stress_pipeline.state.ledger_schema`): ``position`` with the fill's symbol and
    quantity and amount ``-cash_delta - fee``, ``cash`` with ``cash_delta``, ``fees`` with ``fee``."""
    if escape:
        fills = _escape_identifiers(fills)
    lines = []
    with localcontext(EXACT):
        for (run_id, fill_id, symbol, qty, fee), delta in zip(map(_ENTRY_FIELDS, fills), deltas, strict=True):
            lines.append(_ENTRY_LINES % (run_id, fill_id, symbol, qty, -delta - fee, run_id, fill_id, delta,
                                         run_id, fill_id, fee))  # fmt: skip
    return "".join(lines)


class _NotPlain(Exception):
    """A chunk the direct path does not send: see :meth:`Ledger._copy_direct`."""


def _storable(fills: Sequence[Fill]) -> bool:
    """Whether every amount is finite with at most 8 decimals, so ``NUMERIC(38, 8)`` stores it as given.

    Amounts quantised by the records contract have exponent -8 exactly, which ``same_quantum`` proves
    at C speed; only a batch holding other amounts (hand-built, or bad) pays for the exact test.
    """
    amounts = [amount for fill in fills for amount in (fill.qty, fill.price, fill.fee)]
    if all(map(_SCALE_8.same_quantum, amounts)):
        return True
    return all(amount.is_finite() and amount.as_tuple().exponent >= -8 for amount in amounts)


def _plain_fill_lines(fills: Sequence[Fill], deltas: Sequence[Decimal]) -> str:
    """:func:`fill_lines` of a chunk whose identifiers need no escaping, else :class:`_NotPlain`: the
    text holds exactly the separators it was built with and no backslash or carriage return (counted
    on the whole text at C speed)."""
    text = fill_lines(fills, deltas)
    lines = len(fills)
    if text.count("\t") != _FILL_TABS * lines or text.count("\n") != lines or "\\" in text or "\r" in text:
        raise _NotPlain
    return text


def _escape_identifiers(fills: Sequence[Fill]) -> Sequence[Fill]:
    """``fills``, or copies whose identifiers are escaped for COPY when one holds a tab, newline,
    carriage return or backslash (rare: only such a batch pays for the copies)."""
    text = "".join([f"{f.run_id}{f.fill_id}{f.symbol}" for f in fills])
    if "\t" in text or "\n" in text or "\r" in text or "\\" in text:
        return [_escaped(fill) for fill in fills]
    return fills


def _escaped(fill: Fill) -> Fill:
    return replace(
        fill, run_id=fill.run_id.translate(_COPY_ESCAPES), fill_id=fill.fill_id.translate(_COPY_ESCAPES),
        symbol=fill.symbol.translate(_COPY_ESCAPES),
    )  # fmt: skip


def _cash_deltas(fills: Sequence[Fill]) -> list[Decimal]:
    return [fill.cash_delta for fill in fills]


def _staged_cash_deltas(fills: Sequence[Fill]) -> list[Decimal]:
    """The fills' ``cash_delta`` as the staging table takes them: a NaN amount gives a NaN one, spelt
    the way PostgreSQL reads it (it has no -NaN), for the amount check to name; an infinite amount
    cannot be quantised and is refused here."""
    try:
        return [_NAN if delta.is_nan() else delta for delta in _cash_deltas(fills)]
    except ArithmeticError:
        raise InvalidFillError(f"fills with non-finite amounts: {', '.join(_uncomputable(fills))}") from None


def _uncomputable(fills: Sequence[Fill]) -> list[str]:
    keys = []
    for fill in fills:
        try:
            fill.cash_delta  # noqa: B018 - evaluated for the error it may raise
        except ArithmeticError:
            keys.append(fill.idempotency_key)
    return keys[:_SHOWN]


class _IngestSql:
    """The ledger's hand-written statements for one schema, built once."""

    def __init__(self, tables: LedgerTables) -> None:
        schema = tables.schema
        fills, entries = f'"{schema}".{tables.fills.name}', f'"{schema}".{tables.entries.name}'
        stage = f"pg_temp.{STAGE}"
        self.create_stage = sa.text(
            f'CREATE TEMPORARY TABLE IF NOT EXISTS {STAGE} (run_id text COLLATE "C", fill_id text COLLATE "C", '
            f'event_id bigint, ts_ns bigint, symbol text COLLATE "C", order_id bigint, '
            f"qty numeric, price numeric, fee numeric, cash_delta numeric) ON COMMIT DELETE ROWS"
        )
        # scale() is NULL for NaN and infinities, so coalesce(..., true) flags those too.
        self.bad_amounts = sa.text(
            f"SELECT run_id || ':' || fill_id FROM {stage} WHERE coalesce(scale(qty) > 8 OR scale(price) > 8 "
            f"OR scale(fee) > 8 OR scale(cash_delta) > 8, true) LIMIT :limit"
        )
        self.copy_stage = f"COPY {stage} ({_COPY_COLUMNS}) FROM STDIN"
        self.copy_fills = f"COPY {fills} ({_COPY_COLUMNS}) FROM STDIN"
        self.copy_entries = f"COPY {entries} (run_id, fill_id, account, symbol, qty, amount) FROM STDIN"
        # The fills that are new; their entries follow by COPY.
        self.insert_idempotent = sa.text(
            f"INSERT INTO {fills} ({_COPY_COLUMNS}) SELECT {_COPY_COLUMNS} FROM {stage} "
            f"ON CONFLICT (run_id, fill_id) DO NOTHING RETURNING run_id, fill_id"
        )
        self.conflicts = sa.text(
            f"SELECT s.run_id, s.fill_id FROM {stage} s JOIN {fills} f USING (run_id, fill_id) "
            f"WHERE (s.event_id, s.ts_ns, s.symbol, s.order_id, s.qty, s.price, s.fee, s.cash_delta) "
            f"IS DISTINCT FROM (f.event_id, f.ts_ns, f.symbol, f.order_id, f.qty, f.price, f.fee, f.cash_delta) "
            f"ORDER BY 1, 2 LIMIT :limit"
        )
        self.unbalanced = sa.text(
            f"WITH e AS (SELECT fill_id, sum(amount) AS total, count(*) AS legs, "
            f"count(*) FILTER (WHERE account = '{POSITION}') AS n_position, "
            f"count(*) FILTER (WHERE account = '{CASH}') AS n_cash, "
            f"count(*) FILTER (WHERE account = '{FEES}') AS n_fees, "
            f"min(symbol) FILTER (WHERE account = '{POSITION}') AS symbol, "
            f"sum(qty) FILTER (WHERE account = '{POSITION}') AS qty, "
            f"sum(amount) FILTER (WHERE account = '{CASH}') AS cash, "
            f"sum(amount) FILTER (WHERE account = '{FEES}') AS fee "
            f"FROM {entries} WHERE run_id = :run_id GROUP BY fill_id), "
            f"f AS (SELECT fill_id, symbol, qty, fee, cash_delta FROM {fills} WHERE run_id = :run_id) "
            f"SELECT fill_id FROM f FULL JOIN e USING (fill_id) "
            f"WHERE e.fill_id IS NULL OR f.fill_id IS NULL OR e.total <> 0 OR e.legs <> 3 OR e.n_position <> 1 "
            f"OR e.n_cash <> 1 OR e.n_fees <> 1 OR e.symbol IS DISTINCT FROM f.symbol OR e.qty <> f.qty "
            f"OR e.cash <> f.cash_delta OR e.fee <> f.fee "
            f"ORDER BY fill_id LIMIT :limit"
        )


__all__ = [
    "FillConflictError",
    "InvalidFillError",
    "Ledger",
    "LedgerError",
    "OrderRecord",
    "UnknownRunError",
    "entry_lines",
    "fill_lines",
]
