"""The ledger: runs, orders, fills, double-entry ledger entries and the positions view.

Revision ID: 0001
Revises:
Create Date: 2026-11-21

Written out in full rather than from ``ledger_schema``: a migration is a frozen record of what it did,
while the Core tables follow the latest revision. The tests compare the two after upgrading.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

AMOUNT = sa.Numeric(38, 8)
KEY = sa.Text(collation="C")


def upgrade() -> None:
    schema = op.get_context().version_table_schema
    op.create_table(
        "runs",
        sa.Column("run_id", KEY, primary_key=True),
        sa.Column("scenario", sa.Text, nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("status", sa.Text, nullable=False, server_default="running"),
        schema=schema,
    )
    op.create_table(
        "orders",
        sa.Column("run_id", KEY, primary_key=True),
        sa.Column("order_id", sa.BigInteger, primary_key=True),
        sa.Column("symbol", KEY, nullable=False),
        sa.Column("side", sa.Text, nullable=False),
        sa.Column("qty", AMOUNT, nullable=False),
        sa.Column("created_ts_ns", sa.BigInteger, nullable=False),
        sa.CheckConstraint("side IN ('buy', 'sell')", name="orders_side"),
        sa.CheckConstraint("qty > 0", name="orders_qty_positive"),
        schema=schema,
    )
    op.create_table(
        "fills",
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
        schema=schema,
    )
    op.create_table(
        "ledger_entries",
        sa.Column("run_id", KEY, nullable=False),
        sa.Column("fill_id", KEY, nullable=False),
        sa.Column("account", sa.Text, nullable=False),
        sa.Column("symbol", KEY),
        sa.Column("qty", AMOUNT),
        sa.Column("amount", AMOUNT, nullable=False),
        sa.CheckConstraint("account IN ('position', 'cash', 'fees')", name="ledger_entries_account"),
        schema=schema,
    )
    op.create_index(
        "ledger_entries_run_brin", "ledger_entries", ["run_id"], schema=schema,
        postgresql_using="brin", postgresql_with={"autosummarize": "on"},
    )  # fmt: skip
    op.execute(
        f'CREATE VIEW "{schema}".positions AS '
        f"SELECT run_id, symbol, sum(qty) AS qty, sum(amount) AS cost "
        f"FROM \"{schema}\".ledger_entries WHERE account = 'position' GROUP BY run_id, symbol"
    )


def downgrade() -> None:
    schema = op.get_context().version_table_schema
    op.execute(f'DROP VIEW "{schema}".positions')
    op.drop_index("ledger_entries_run_brin", table_name="ledger_entries", schema=schema)
    for table in ("ledger_entries", "fills", "orders", "runs"):
        op.drop_table(table, schema=schema)
