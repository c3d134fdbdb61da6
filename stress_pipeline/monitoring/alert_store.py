"""What the embedded alert receiver records in PostgreSQL, and PagerDuty's incident rules applied to it.

Two tables in their own schema (``stress_monitoring`` unless configured; tests use throwaway ones),
created by the Alembic migrations in ``migrations/`` with their own version table
``monitoring_alembic_version`` (the ledger's migrations are a separate history):

* ``alert_incidents`` — one row per incident: the routing key's fingerprint (never the key), the
  ``dedup_key``, ``status`` ``triggered`` / ``acknowledged`` / ``resolved``, when it opened, changed
  and resolved, how many triggers it folded in. A partial unique index allows at most one open
  (not resolved) incident per fingerprint and dedup key: a second open incident for one event is
  impossible, not merely unlikely.
* ``alert_deliveries`` — one row per accepted event, with the receiver's clock (``received_at``),
  the sender's alert id (the ``X-Stress-Alert-Id`` header, to count redeliveries), the action, the
  dedup key, what it did (``outcome``: new_incident, deduplicated, acknowledged, resolved, dropped),
  the incident it touched, and the body without its routing key.

The rules are PagerDuty's (Events API v2, "Alert De-Duplication"): a trigger on an open incident with
the same routing key and dedup key is folded into it; after it is resolved, a trigger opens a new one;
acknowledge and resolve apply to the open incident and are dropped when there is none. Each event is
recorded in one transaction under an advisory lock per (routing key, dedup key), so concurrent
requests for one event are applied one after the other.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.dialects.postgresql import JSONB

from stress_pipeline.monitoring.alerts import ACKNOWLEDGE, RESOLVE, TRIGGER, routing_key_fingerprint
from stress_pipeline.state.ledger_schema import check_schema_name, postgres_errors

DEFAULT_SCHEMA = "stress_monitoring"
VERSION_TABLE = "monitoring_alembic_version"
MIGRATIONS_DIR = Path(__file__).with_name("migrations")
TRIGGERED, ACKNOWLEDGED, RESOLVED = "triggered", "acknowledged", "resolved"
NEW_INCIDENT, DEDUPLICATED, DROPPED = "new_incident", "deduplicated", "dropped"
KEY = sa.Text(collation="C")

# First key of the advisory locks: migrations ("STMN"), and one event's incident ("STMI").
_MIGRATION_LOCK = 0x53544D4E
_INCIDENT_LOCK = 0x53544D49


@dataclass(frozen=True)
class AlertTables:
    schema: str
    metadata: sa.MetaData
    incidents: sa.Table
    deliveries: sa.Table


@dataclass(frozen=True)
class Recorded:
    """What one accepted event did: its dedup key (generated for a trigger without one), the outcome
    and the incident it touched (None when dropped)."""

    dedup_key: str
    outcome: str
    incident_id: int | None


@functools.cache
def alert_tables(schema: str = DEFAULT_SCHEMA) -> AlertTables:
    """The Core tables of the receiver in ``schema`` (the same objects on every call)."""
    schema = check_schema_name(schema)
    metadata = sa.MetaData(schema=schema)
    incidents = sa.Table(
        "alert_incidents", metadata,
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
        sa.Index("alert_incidents_one_open", "routing_key_hash", "dedup_key", unique=True,
                 postgresql_where=sa.text("status <> 'resolved'")),
        sa.Index("alert_incidents_dedup_key", "dedup_key"),
    )  # fmt: skip
    deliveries = sa.Table(
        "alert_deliveries", metadata,
        sa.Column("delivery_id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("alert_id", KEY),
        sa.Column("routing_key_hash", KEY, nullable=False),
        sa.Column("event_action", sa.Text, nullable=False),
        sa.Column("dedup_key", KEY, nullable=False),
        sa.Column("outcome", sa.Text, nullable=False),
        sa.Column("incident_id", sa.BigInteger),
        sa.Column("body", JSONB, nullable=False),
        sa.Index("alert_deliveries_alert_id", "alert_id"),
        sa.Index("alert_deliveries_dedup_key", "dedup_key"),
    )  # fmt: skip
    return AlertTables(schema, metadata, incidents, deliveries)


def record_event(engine: sa.Engine, tables: AlertTables, body: Mapping[str, Any], alert_id: str = "") -> Recorded:
    """Apply one valid event to the incidents and record its delivery, in one transaction."""
    fingerprint = routing_key_fingerprint(str(body["routing_key"]))
    action = str(body["event_action"])
    key = str(body.get("dedup_key") or uuid.uuid4().hex)  # PagerDuty generates one for a bare trigger
    stored = {name: value for name, value in body.items() if name != "routing_key"}
    incidents = tables.incidents
    with postgres_errors(engine), engine.begin() as conn:
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:lock, hashtext(:event))"),
                     {"lock": _INCIDENT_LOCK, "event": f"{fingerprint}/{key}"})  # fmt: skip
        now = conn.execute(sa.select(sa.func.clock_timestamp())).scalar_one()
        is_open = (
            (incidents.c.routing_key_hash == fingerprint)
            & (incidents.c.dedup_key == key)
            & (incidents.c.status != RESOLVED)
        )
        incident_id = conn.execute(sa.select(incidents.c.incident_id).where(is_open)).scalar()
        outcome = DROPPED
        if action == TRIGGER and incident_id is None:
            payload = body.get("payload") or {}
            incident_id = conn.execute(
                incidents.insert().values(
                    routing_key_hash=fingerprint, dedup_key=key, status=TRIGGERED, opened_at=now, updated_at=now,
                    triggers=1, severity=payload.get("severity", ""), summary=payload.get("summary", ""),
                    source=payload.get("source", ""),
                ).returning(incidents.c.incident_id)
            ).scalar_one()  # fmt: skip
            outcome = NEW_INCIDENT
        elif incident_id is not None:
            changes: dict[str, Any] = {"updated_at": now}
            if action == TRIGGER:
                changes["triggers"] = incidents.c.triggers + 1
                outcome = DEDUPLICATED
            elif action == ACKNOWLEDGE:
                changes["status"], outcome = ACKNOWLEDGED, ACKNOWLEDGED
            elif action == RESOLVE:
                changes.update(status=RESOLVED, resolved_at=now)
                outcome = RESOLVED
            conn.execute(incidents.update().where(incidents.c.incident_id == incident_id).values(**changes))
        conn.execute(
            tables.deliveries.insert().values(
                received_at=now, alert_id=alert_id or None, routing_key_hash=fingerprint, event_action=action,
                dedup_key=key, outcome=outcome, incident_id=incident_id if outcome != DROPPED else None,
                body=stored,
            )
        )  # fmt: skip
    return Recorded(key, outcome, incident_id if outcome != DROPPED else None)


def deliveries_of(engine: sa.Engine, tables: AlertTables, alert_ids: Sequence[str]) -> list[dict[str, Any]]:
    """Every recorded delivery of the given alert ids (a redelivered alert appears more than once)."""
    table = tables.deliveries
    query = sa.select(table).where(table.c.alert_id.in_(list(alert_ids))).order_by(table.c.delivery_id)
    with postgres_errors(engine), engine.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(query)]


def incidents_of(engine: sa.Engine, tables: AlertTables, dedup_keys: Sequence[str]) -> list[dict[str, Any]]:
    """Every incident ever opened for the given dedup keys, oldest first."""
    table = tables.incidents
    query = sa.select(table).where(table.c.dedup_key.in_(list(dedup_keys))).order_by(table.c.incident_id)
    with postgres_errors(engine), engine.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(query)]


# ------------------------------------------------------------------------------------- migrations


def alembic_config(connection: sa.Connection, schema: str = DEFAULT_SCHEMA) -> Config:
    """An Alembic config for the monitoring migrations on ``connection`` (no ``alembic.ini``)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    config.attributes["connection"] = connection
    config.attributes["schema"] = check_schema_name(schema)
    return config


def head_revision() -> str:
    head = ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()
    if head is None:  # pragma: no cover - the package ships its migrations
        raise RuntimeError(f"no monitoring migrations found in {MIGRATIONS_DIR}")
    return head


def current_revision(engine: sa.Engine, schema: str = DEFAULT_SCHEMA) -> str | None:
    """The revision the receiver's schema is at (None: never migrated)."""
    schema = check_schema_name(schema)
    with postgres_errors(engine), engine.connect() as conn:
        opts = {"version_table": VERSION_TABLE, "version_table_schema": schema}
        return MigrationContext.configure(conn, opts=opts).get_current_revision()


def migrate(engine: sa.Engine, schema: str = DEFAULT_SCHEMA) -> str:
    """Upgrade the receiver's tables in ``schema`` to the head revision (idempotent, one process at a
    time under an advisory lock, in one transaction); returns the head revision."""
    schema = check_schema_name(schema)
    with postgres_errors(engine), engine.begin() as conn:
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:lock, hashtext(:schema))"),
                     {"lock": _MIGRATION_LOCK, "schema": schema})  # fmt: skip
        exists = conn.execute(sa.text("SELECT 1 FROM pg_namespace WHERE nspname = :s"), {"s": schema}).first()
        if exists is None:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        command.upgrade(alembic_config(conn, schema), "head")
    return head_revision()
