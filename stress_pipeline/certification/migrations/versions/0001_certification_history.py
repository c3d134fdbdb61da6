"""Certification history: one row per certification (verdict, streak, code version, data fingerprint)
and one row per gate or checklist item of it.

Revision ID: c0001
Revises:
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "c0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    schema = op.get_context().version_table_schema
    op.create_table(
        "certifications",
        sa.Column("certification_id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("partition", sa.Text, nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("verdict", sa.Text, nullable=False),
        sa.Column("core_passed", sa.Boolean, nullable=False),
        sa.Column("streak", sa.Integer, nullable=False),
        sa.Column("certified", sa.Boolean, nullable=False),
        sa.Column("code_version", sa.Text, nullable=False),
        sa.Column("data_fingerprint", sa.Text, nullable=False),
        sa.Column("run_id", sa.Text, nullable=False, server_default=""),
        sa.Column("reasons", JSONB, nullable=False),
        sa.CheckConstraint("verdict IN ('GO', 'NO-GO')", name="certifications_verdict"),
        sa.CheckConstraint("streak >= 0", name="certifications_streak"),
        schema=schema,
    )
    op.create_index("certifications_partition", "certifications", ["partition"], schema=schema)
    op.create_table(
        "certification_gates",
        sa.Column("certification_id", sa.BigInteger, nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("section", sa.Text, nullable=False),
        sa.Column("gate", sa.Text, nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("comparison", sa.Text, nullable=False),
        sa.Column("threshold", sa.Float),
        sa.Column("value", sa.Float),
        sa.Column("unit", sa.Text, nullable=False),
        sa.Column("verdict", sa.Text, nullable=False),
        sa.Column("action", sa.Text, nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("certification_id", "position"),
        sa.ForeignKeyConstraint(
            ["certification_id"], [f"{schema}.certifications.certification_id"], ondelete="CASCADE"
        ),
        schema=schema,
    )


def downgrade() -> None:
    schema = op.get_context().version_table_schema
    op.drop_table("certification_gates", schema=schema)
    op.drop_table("certifications", schema=schema)
