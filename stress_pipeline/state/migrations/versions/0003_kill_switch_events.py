"""Kill switch events: every trip and reset of a run's KILL_SWITCH, when, by whom and why.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06

The hourly lite stress trips the switch on a breach (actor ``lite_stress``, the symbol set, the
scenario, the alert's dedup key and the breaching figures in ``details``); an operator resets it with
``stress-pipeline killswitch reset --by WHO --reason WHY``. Append-only.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

KEY = sa.Text(collation="C")


def upgrade() -> None:
    schema = op.get_context().version_table_schema
    op.create_table(
        "kill_switch_events",
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
        schema=schema,
    )
    op.create_index("kill_switch_events_run", "kill_switch_events", ["namespace", "run_id", "event_id"], schema=schema)


def downgrade() -> None:
    op.drop_table("kill_switch_events", schema=op.get_context().version_table_schema)
