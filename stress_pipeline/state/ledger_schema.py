"""The PostgreSQL ledger's schema (SQLAlchemy Core), the system of record, and how a database gets to it.

Tables, all in one PostgreSQL schema (``stress_ledger`` unless configured, so they never collide with
other users of a shared database; tests use a throwaway schema each):

* ``runs`` — one row per run: ``run_id``, ``scenario``, ``started_at``, ``status``.
* ``orders`` — the orders a run placed: ``side`` ``buy``/``sell`` and an unsigned ``qty``.
* ``fills`` — every execution, exactly as :class:`~stress_pipeline.state.records.Fill` carries it, with
  its ``cash_delta`` (computed once, in Python, by the records contract) next to it. The primary key
  ``(run_id, fill_id)`` is the idempotency key: a fill written twice is stored once.
* ``ledger_entries`` — double entry. Every fill writes three entries whose ``amount`` (quote currency,
  debit positive) sums to exactly zero:

  ========  =======================  =============================================================
  account   amount                   meaning
  ========  =======================  =============================================================
  position  ``-cash_delta - fee``    what the quantity cost: ``qty * price`` as ``cash_delta``
                                     rounds it, negative for a sale; the entry also carries the
                                     fill's ``symbol`` (the sub-account) and signed ``qty``
  cash      ``cash_delta``           what the fill paid (negative) or received, fee included
  fees      ``fee``                  the fee, an expense (negative for a rebate)
  ========  =======================  =============================================================

  So the balances fall out of the entries: a run's cash is its initial cash plus the sum of its
  ``cash`` entries (the very numbers the Redis hot state adds up), a position is the sum of ``qty``
  over the ``position`` entries of a symbol and its cost the sum of their amounts, the fees paid the
  sum of the ``fees`` entries. The position entry is the balancing figure, so a fill balances to the
  last 1e-8 whatever the rounding of ``cash_delta``.

* ``kill_switch_events`` — every trip and reset of a run's KILL_SWITCH (``action`` ``trip`` /
  ``reset``), when, by whom and why; a trip also names the symbol set, the scenario and the alert's
  dedup key, and carries the figures that breached (``details``).
* ``positions`` — a view: per run and symbol, ``qty`` and ``cost`` from the position entries; the
  cash balance is a query (:func:`account_balance`), as cash needs the run's initial cash added.

Amounts are ``NUMERIC(38, 8)``, never floats, and come back as ``Decimal``. Identifiers (run, fill and
symbol names) use the ``"C"`` collation: byte order, the same on every server, and the cheapest to
compare in the indexes the ingest path maintains.

Indexes are chosen for ingest speed, the hot path. ``fills`` has its primary key (it answers every
per-run read too). ``ledger_entries`` — three rows per fill — has no B-tree at all: entries are only
ever written in the transaction that inserts their fill, for the fills it inserts (see
:mod:`stress_pipeline.state.ledger`), so the fills key already makes them unique, and
:meth:`Ledger.entries_balanced` verifies it. Reads by run use a BRIN index on ``run_id``: entries are
appended run after run, so block ranges summarise well, at a fraction of a B-tree's cost per insert.

Versions. The schema is created and changed only by the Alembic migrations in ``migrations/`` (run
programmatically, no ``alembic.ini``): :func:`migrate` upgrades a database to the head revision,
creating the schema on an empty database, and does nothing on one already there. The Alembic version
table lives in the ledger schema itself, which is how a migration knows the schema it builds in
(``op.get_context().version_table_schema``). A new revision: change the tables here, then
``alembic.command.revision(alembic_config(conn, schema), message, autogenerate=True)`` on a migrated
database and review the script it writes.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.dialects.postgresql import JSONB

from stress_pipeline.services.connections import POSTGRES, _psycopg_cause
from stress_pipeline.services.errors import ServiceUnavailableError
from stress_pipeline.services.urls import to_libpq_url

DEFAULT_SCHEMA = "stress_ledger"
MIGRATIONS_DIR = Path(__file__).with_name("migrations")

POSITION, CASH, FEES = "position", "cash", "fees"
ACCOUNTS = (POSITION, CASH, FEES)
SIDES = ("buy", "sell")

#: Every amount and quantity: 30 digits before the point, 8 after, exact.
AMOUNT = sa.Numeric(38, 8, asdecimal=True)
#: Run, fill and symbol identifiers: byte-order text.
KEY = sa.Text(collation="C")

_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
# First key of the advisory lock that serialises migrations of one schema (the second is its hash).
_MIGRATION_LOCK = 0x53544C47  # "STLG"


class LedgerError(RuntimeError):
    """The ledger refused a request: bad input, or data that contradicts what it already holds."""


def check_schema_name(schema: str) -> str:
    """``schema`` if it is a plain lower-case PostgreSQL identifier, else :class:`ValueError`.

    Plain names need no quoting anywhere (psql, logs, other tools) and cannot smuggle SQL.
    """
    if not isinstance(schema, str) or not _SCHEMA_NAME.match(schema):
        raise ValueError(f"invalid ledger schema name {schema!r}: use lower-case letters, digits and _ (max 63)")
    return schema


@dataclass(frozen=True)
class LedgerTables:
    """The ledger's tables in one PostgreSQL schema."""

    schema: str
    metadata: sa.MetaData
    runs: sa.Table
    orders: sa.Table
    fills: sa.Table
    entries: sa.Table
    positions: sa.TableClause  # the view
    marks: sa.Table
    kill_switch_events: sa.Table


@functools.cache
def ledger_tables(schema: str = DEFAULT_SCHEMA) -> LedgerTables:
    """The Core tables of the ledger in ``schema`` (the same objects on every call)."""
    schema = check_schema_name(schema)
    metadata = sa.MetaData(schema=schema)
    runs = sa.Table(
        "runs", metadata,
        sa.Column("run_id", KEY, primary_key=True),
        sa.Column("scenario", sa.Text, nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("status", sa.Text, nullable=False, server_default="running"),
    )  # fmt: skip
    orders = sa.Table(
        "orders", metadata,
        sa.Column("run_id", KEY, primary_key=True),
        sa.Column("order_id", sa.BigInteger, primary_key=True),
        sa.Column("symbol", KEY, nullable=False),
        sa.Column("side", sa.Text, nullable=False),
        sa.Column("qty", AMOUNT, nullable=False),
        sa.Column("created_ts_ns", sa.BigInteger, nullable=False),
        sa.CheckConstraint("side IN ('buy', 'sell')", name="orders_side"),
        sa.CheckConstraint("qty > 0", name="orders_qty_positive"),
    )  # fmt: skip
    fills = sa.Table(
        "fills", metadata,
        sa.Column("run_id", KEY, nullable=False),
        sa.Column("fill_id", KEY, nullable=False),
        sa.Column("event_id", sa.BigInteger, nullable=False),
        sa.Column("ts_ns", sa.BigInteger, nullable=False),
        sa.Column("symbol", KEY, nullable=False),
        sa.Column("order_id", sa.BigInteger, nullable=False),
        sa.Column("qty", AMOUNT, nullable=False),
        sa.Column("price", AMOUNT, nullable=False),
        sa.Column("fee", AMOUNT, nullable=False),
        sa.Column("cash_delta", AMOUNT, nullable=False),
        sa.PrimaryKeyConstraint("run_id", "fill_id", name="fills_pkey"),
    )  # fmt: skip
    entries = sa.Table(
        "ledger_entries", metadata,
        sa.Column("run_id", KEY, nullable=False),
        sa.Column("fill_id", KEY, nullable=False),
        sa.Column("account", sa.Text, nullable=False),
        sa.Column("symbol", KEY),
        sa.Column("qty", AMOUNT),
        sa.Column("amount", AMOUNT, nullable=False),
        sa.CheckConstraint("account IN ('position', 'cash', 'fees')", name="ledger_entries_account"),
        sa.Index("ledger_entries_run_brin", "run_id", postgresql_using="brin",
                 postgresql_with={"autosummarize": "on"}),
    )  # fmt: skip
    marks = sa.Table(
        "marks", metadata,
        sa.Column("run_id", KEY, nullable=False),
        sa.Column("ts_ns", sa.BigInteger, nullable=False),
        sa.Column("equity", AMOUNT, nullable=False),
        sa.PrimaryKeyConstraint("run_id", "ts_ns", name="marks_pkey"),
    )  # fmt: skip
    kill_switch_events = sa.Table(
        "kill_switch_events", metadata,
        sa.Column("event_id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("namespace", KEY, nullable=False),
        sa.Column("run_id", KEY, nullable=False),
        sa.Column("action", sa.Text, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.Text, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("symbol_set", sa.Text),
        sa.Column("scenario", sa.Text),
        sa.Column("dedup_key", sa.Text),
        sa.Column("details", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.CheckConstraint("action IN ('trip', 'reset')", name="kill_switch_events_action"),
        sa.Index("kill_switch_events_run", "namespace", "run_id", "event_id"),
    )  # fmt: skip
    positions = sa.table(
        "positions",
        sa.column("run_id", KEY), sa.column("symbol", KEY), sa.column("qty", AMOUNT), sa.column("cost", AMOUNT),
        schema=schema,
    )  # fmt: skip
    return LedgerTables(schema, metadata, runs, orders, fills, entries, positions, marks, kill_switch_events)


def account_balance(tables: LedgerTables, run_id: str, account: str) -> sa.Select:
    """The balance of one of a run's accounts (all symbols): ``cash`` gives the cash balance query.

    A run's cash is its initial cash plus ``account_balance(tables, run_id, CASH)``; zero when the run
    has no entries yet.
    """
    entries = tables.entries
    total = sa.func.coalesce(sa.func.sum(entries.c.amount), 0)
    return sa.select(total).where(entries.c.run_id == run_id, entries.c.account == account)


# ----------------------------------------------------------------------------------------- errors


def unavailable(engine: sa.Engine, err: BaseException) -> ServiceUnavailableError:
    """The one-line error for a database that cannot be reached, naming its (masked) URL."""
    cause = getattr(err, "orig", None) or err
    url = to_libpq_url(engine.url.render_as_string(hide_password=False))  # as users write it, and check_postgres
    return ServiceUnavailableError(POSTGRES, url, _psycopg_cause(cause))


def is_unavailable(err: BaseException) -> bool:
    """Whether ``err`` means the server is gone or refuses work (as opposed to a bad statement)."""
    if isinstance(err, sa.exc.DBAPIError):
        return err.connection_invalidated or isinstance(err, (sa.exc.OperationalError, sa.exc.InterfaceError))
    return isinstance(err, (psycopg.OperationalError, psycopg.InterfaceError))


@contextmanager
def postgres_errors(engine: sa.Engine) -> Iterator[None]:
    """Turn "server unreachable" failures inside the block into :class:`ServiceUnavailableError`.

    Refused or cut connections, a server shutting down, a timed-out statement: the callers (the
    writer, the CLI) treat all of them the same way, as "PostgreSQL is down, retry later". Anything
    else (a constraint, a bad value) propagates unchanged.
    """
    try:
        yield
    except (sa.exc.DBAPIError, psycopg.Error) as err:
        if is_unavailable(err):
            raise unavailable(engine, err) from err
        raise


# ------------------------------------------------------------------------------------- migrations


def alembic_config(connection: sa.Connection, schema: str = DEFAULT_SCHEMA) -> Config:
    """An Alembic config for the ledger migrations on ``connection`` (no ``alembic.ini`` involved)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    config.attributes["connection"] = connection
    config.attributes["schema"] = check_schema_name(schema)
    return config


def head_revision() -> str:
    """The newest migration's revision id."""
    head = ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()
    if head is None:  # pragma: no cover - the package ships its migrations
        raise LedgerError(f"no ledger migrations found in {MIGRATIONS_DIR}")
    return head


def current_revision(engine: sa.Engine, schema: str = DEFAULT_SCHEMA) -> str | None:
    """The revision the database's ledger schema is at (``None``: never migrated)."""
    schema = check_schema_name(schema)
    with postgres_errors(engine), engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"version_table_schema": schema})
        return context.get_current_revision()


def migrate(engine: sa.Engine, schema: str = DEFAULT_SCHEMA) -> str:
    """Upgrade the ledger in ``schema`` to the head revision; returns it.

    Idempotent, and safe when several processes start at once: the whole upgrade runs in one
    transaction (PostgreSQL has transactional DDL) under an advisory lock per schema, so a second
    process waits, then finds the schema at head and does nothing.
    """
    schema = check_schema_name(schema)
    with postgres_errors(engine), engine.begin() as conn:
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:lock, hashtext(:schema))"),
                     {"lock": _MIGRATION_LOCK, "schema": schema})  # fmt: skip
        exists = conn.execute(sa.text("SELECT 1 FROM pg_namespace WHERE nspname = :s"), {"s": schema}).first()
        if exists is None:  # CREATE SCHEMA IF NOT EXISTS would still demand the CREATE privilege
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        command.upgrade(alembic_config(conn, schema), "head")
    return head_revision()
