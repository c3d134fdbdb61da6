"""Marks: the account's heartbeat with its mark-to-market equity, one row per sim time.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21

A live system records its liveness and equity in its database too; during a PostgreSQL outage these
writes are buffered on disk like fills. Idempotent by (run_id, ts_ns).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

AMOUNT = sa.Numeric(38, 8)
KEY = sa.Text(collation="C")


def upgrade() -> None:
    schema = op.get_context().version_table_schema
    op.create_table(
        "marks",
        sa.Column("run_id", KEY, nullable=False),
        sa.Column("ts_ns", sa.BigInteger, nullable=False),
        sa.Column("equity", AMOUNT, nullable=False),
        sa.PrimaryKeyConstraint("run_id", "ts_ns", name="marks_pkey"),
        schema=schema,
    )


def downgrade() -> None:
    op.drop_table("marks", schema=op.get_context().version_table_schema)
