"""Alert receiver tables: incidents (at most one open per routing key and dedup key) and deliveries.

Revision ID: m0001
Revises:
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "m0001"
down_revision = None
branch_labels = None
depends_on = None

KEY = sa.Text(collation="C")


def upgrade() -> None:
    schema = op.get_context().version_table_schema
    op.create_table(
        "alert_incidents",
        sa.Column("incident_id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("routing_key_hash", KEY, nullable=False),
        sa.Column("dedup_key", KEY, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True)),
        sa.Column("triggers", sa.Integer, nullable=False),
        sa.Column("severity", sa.Text, nullable=False),
        sa.Column("summary", sa.Text, nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.CheckConstraint("status IN ('triggered', 'acknowledged', 'resolved')", name="alert_incidents_status"),
        schema=schema,
    )
    op.create_index(
        "alert_incidents_one_open", "alert_incidents", ["routing_key_hash", "dedup_key"], unique=True,
        schema=schema, postgresql_where=sa.text("status <> 'resolved'"),
    )  # fmt: skip
    op.create_index("alert_incidents_dedup_key", "alert_incidents", ["dedup_key"], schema=schema)
    op.create_table(
        "alert_deliveries",
        sa.Column("delivery_id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("alert_id", KEY),
        sa.Column("routing_key_hash", KEY, nullable=False),
        sa.Column("event_action", sa.Text, nullable=False),
        sa.Column("dedup_key", KEY, nullable=False),
        sa.Column("outcome", sa.Text, nullable=False),
        sa.Column("incident_id", sa.BigInteger),
        sa.Column("body", JSONB, nullable=False),
        schema=schema,
    )
    op.create_index("alert_deliveries_alert_id", "alert_deliveries", ["alert_id"], schema=schema)
    op.create_index("alert_deliveries_dedup_key", "alert_deliveries", ["dedup_key"], schema=schema)


def downgrade() -> None:
    schema = op.get_context().version_table_schema
    op.drop_table("alert_deliveries", schema=schema)
    op.drop_table("alert_incidents", schema=schema)
