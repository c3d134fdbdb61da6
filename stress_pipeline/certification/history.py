"""The certification history in PostgreSQL: every certification, its gates, and the streak of passes.

Two tables in their own schema (``stress_certification`` unless configured; tests use throwaway ones),
created by the Alembic migrations in ``migrations/`` with their own version table
``certification_alembic_version`` (the ledger's and the monitoring's migrations are other histories):

* ``certifications`` — one row per certification: the daily partition, when it was recorded, GO or
  NO-GO with the reasons, whether the core suite passed, the streak and ``certified``, the code
  version (``git describe`` of the checkout, else the package version) and the fingerprint of the
  input tables.
* ``certification_gates`` — the certification's table (gates, checklist items, overall row), one row
  each, in order: what :class:`~stress_pipeline.certification.decide.Certification` reads back.

The core suite is seed 001's: its four production readiness gates (safety, latency, recovery,
integrity) and every stress scenario passing. The streak counts consecutive certifications whose core
suite passed; any failure resets it to 0, and a system is "certified" only at 100 consecutive passes.
A record is appended under an advisory lock, in one transaction with its gates, so two concurrent
certifications never read the same previous streak.
"""

from __future__ import annotations

import functools
import json
import subprocess
from dataclasses import dataclass
from datetime import datetime
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.dialects.postgresql import JSONB

from stress_pipeline.certification.decide import TABLE_COLUMNS, Certification
from stress_pipeline.certification.gates import PASS
from stress_pipeline.state.ledger_schema import check_schema_name, postgres_errors

DEFAULT_SCHEMA = "stress_certification"
VERSION_TABLE = "certification_alembic_version"
MIGRATIONS_DIR = Path(__file__).with_name("migrations")
#: Seed 001: "100 consecutive passes of the core scenario suite".
REQUIRED_STREAK = 100
CORE_GATES = (
    "hard_limit_breaches", "decision_latency_p99_ms", "recovery_mean_s", "integrity_delta_usd",
    "stress_scenarios_passed_pct",
)  # fmt: skip
# First key of the advisory locks: migrations ("STCM") and appending a certification ("STCR").
_MIGRATION_LOCK = 0x5354434D
_RECORD_LOCK = 0x53544352


@dataclass(frozen=True)
class HistoryTables:
    schema: str
    metadata: sa.MetaData
    certifications: sa.Table
    gates: sa.Table


@dataclass(frozen=True)
class Recorded:
    """One stored certification: its id, the streak after it and whether that makes the system certified."""

    certification_id: int
    partition: str
    recorded_at: datetime
    verdict: str
    core_passed: bool
    streak: int
    certified: bool
    code_version: str
    data_fingerprint: str
    reasons: list[str]

    def summary(self) -> str:
        state = "certified" if self.certified else f"not certified ({self.streak} of {REQUIRED_STREAK} passes)"
        return f"#{self.certification_id} {self.partition} {self.verdict}; core suite streak {self.streak}: {state}"


@functools.cache
def history_tables(schema: str = DEFAULT_SCHEMA) -> HistoryTables:
    """The Core tables of the history in ``schema`` (the same objects on every call)."""
    schema = check_schema_name(schema)
    md = sa.MetaData(schema=schema)
    certifications = sa.Table(
        "certifications", md,
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
        sa.Index("certifications_partition", "partition"),
    )  # fmt: skip
    gates = sa.Table(
        "certification_gates", md,
        sa.Column("certification_id", sa.BigInteger,
                  sa.ForeignKey(certifications.c.certification_id, ondelete="CASCADE"), nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        *(sa.Column(name, sa.Float) if name in ("threshold", "value") else sa.Column(name, sa.Text, nullable=False)
          for name in TABLE_COLUMNS),
        sa.PrimaryKeyConstraint("certification_id", "position"),
    )  # fmt: skip
    return HistoryTables(schema, md, certifications, gates)


def core_passed(certification: Certification) -> bool:
    """Whether every gate of the core suite passed (a missing core gate is not a pass)."""
    verdicts = {gate.gate: gate.verdict for gate in certification.gates}
    return all(verdicts.get(name) == PASS for name in CORE_GATES)


def record(
    engine: sa.Engine, certification: Certification, *, partition: str, code_version: str, data_fingerprint: str,
    run_id: str = "", schema: str = DEFAULT_SCHEMA, required: int = REQUIRED_STREAK,
) -> Recorded:  # fmt: skip
    """Append ``certification`` with its gates; the streak is the previous one plus 1, or 0 on a core failure."""
    tables = history_tables(schema)
    passed = core_passed(certification)
    rows = certification.table()
    with postgres_errors(engine), engine.begin() as conn:
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:lock, hashtext(:schema))"),
                     {"lock": _RECORD_LOCK, "schema": tables.schema})  # fmt: skip
        c = tables.certifications.c
        previous = conn.execute(sa.select(c.streak).order_by(c.certification_id.desc()).limit(1)).scalar()
        streak = (int(previous or 0) + 1) if passed else 0
        stored = conn.execute(
            tables.certifications.insert()
            .values(partition=partition, verdict=certification.verdict, core_passed=passed, streak=streak,
                    certified=streak >= required, code_version=code_version, data_fingerprint=data_fingerprint,
                    run_id=run_id, reasons=list(certification.reasons))
            .returning(*tables.certifications.c)
        ).one()  # fmt: skip
        conn.execute(tables.gates.insert(), [
            {"certification_id": stored.certification_id, "position": i, **_cells(row)}
            for i, row in enumerate(rows.to_dict("records"))
        ])  # fmt: skip
    return _recorded(stored)


def latest(engine: sa.Engine, *, partition: str | None = None, schema: str = DEFAULT_SCHEMA) -> Recorded | None:
    """The newest stored certification (of ``partition`` when given), or None."""
    tables = history_tables(schema)
    c = tables.certifications.c
    query = sa.select(tables.certifications).order_by(c.certification_id.desc()).limit(1)
    if partition is not None:
        query = query.where(c.partition == partition)
    with postgres_errors(engine), engine.connect() as conn:
        row = conn.execute(query).first()
    return None if row is None else _recorded(row)


def gates_of(engine: sa.Engine, certification_id: int, *, schema: str = DEFAULT_SCHEMA) -> Certification:
    """The stored certification ``certification_id`` as it was judged."""
    tables = history_tables(schema)
    g = tables.gates.c
    query = sa.select(*(g[name] for name in TABLE_COLUMNS)).where(g.certification_id == certification_id)
    with postgres_errors(engine), engine.connect() as conn:
        rows = conn.execute(query.order_by(g.position)).all()
    if not rows:
        raise LookupError(f"certification history: no certification #{certification_id}")
    table = pd.DataFrame([tuple(r) for r in rows], columns=list(TABLE_COLUMNS))
    for column in ("threshold", "value"):
        table[column] = pd.to_numeric(table[column]).astype(np.float64)
    return Certification.from_table(table)


def history(engine: sa.Engine, *, limit: int = 1000, schema: str = DEFAULT_SCHEMA) -> list[Recorded]:
    """The newest ``limit`` certifications, oldest first."""
    tables = history_tables(schema)
    c = tables.certifications.c
    query = sa.select(tables.certifications).order_by(c.certification_id.desc()).limit(limit)
    with postgres_errors(engine), engine.connect() as conn:
        rows = conn.execute(query).all()
    return [_recorded(row) for row in reversed(rows)]


def streak_from_history(core_results: list[bool]) -> int:
    """Consecutive core passes at the end of ``core_results`` (oldest first): the streak's definition."""
    streak = 0
    for passed in core_results:
        streak = streak + 1 if passed else 0
    return streak


def code_version(package_dir: Path | None = None) -> str:
    """``git describe --always --dirty`` of the checkout holding the package, else the package version."""
    where = package_dir or Path(__file__).resolve().parents[2]
    try:
        out = subprocess.run(["git", "-C", str(where), "describe", "--always", "--dirty", "--tags"],
                             capture_output=True, text=True, timeout=10, check=True)  # fmt: skip
        if out.stdout.strip():
            return f"git {out.stdout.strip()}"
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        return f"package {metadata.version('stress-pipeline')}"
    except metadata.PackageNotFoundError:
        return "unknown"


def _cells(row: dict[str, object]) -> dict[str, object]:
    out = {}
    for name in TABLE_COLUMNS:
        value = row[name]
        if name in ("threshold", "value"):
            out[name] = None if value is None or not np.isfinite(float(value)) else float(value)
        else:
            out[name] = str(value)
    return out


def _recorded(row: sa.Row) -> Recorded:
    m = row._mapping
    reasons = m["reasons"] if isinstance(m["reasons"], list) else json.loads(m["reasons"])
    return Recorded(
        certification_id=int(m["certification_id"]), partition=m["partition"], recorded_at=m["recorded_at"],
        verdict=m["verdict"], core_passed=bool(m["core_passed"]), streak=int(m["streak"]),
        certified=bool(m["certified"]), code_version=m["code_version"], data_fingerprint=m["data_fingerprint"],
        reasons=list(reasons),
    )  # fmt: skip


# ------------------------------------------------------------------------------------- migrations


def alembic_config(connection: sa.Connection, schema: str = DEFAULT_SCHEMA) -> Config:
    """An Alembic config for the history migrations on ``connection`` (no ``alembic.ini``)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    config.attributes["connection"] = connection
    config.attributes["schema"] = check_schema_name(schema)
    return config


def head_revision() -> str:
    head = ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()
    if head is None:  # pragma: no cover - the package ships its migrations
        raise RuntimeError(f"no certification migrations found in {MIGRATIONS_DIR}")
    return head


def current_revision(engine: sa.Engine, schema: str = DEFAULT_SCHEMA) -> str | None:
    """The revision the history's schema is at (None: never migrated)."""
    schema = check_schema_name(schema)
    with postgres_errors(engine), engine.connect() as conn:
        opts = {"version_table": VERSION_TABLE, "version_table_schema": schema}
        return MigrationContext.configure(conn, opts=opts).get_current_revision()


def migrate(engine: sa.Engine, schema: str = DEFAULT_SCHEMA) -> str:
    """Upgrade the history in ``schema`` to the head revision (idempotent, one process at a time under an
    advisory lock, in one transaction); returns the head revision."""
    schema = check_schema_name(schema)
    with postgres_errors(engine), engine.begin() as conn:
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:lock, hashtext(:schema))"),
                     {"lock": _MIGRATION_LOCK, "schema": schema})  # fmt: skip
        exists = conn.execute(sa.text("SELECT 1 FROM pg_namespace WHERE nspname = :s"), {"s": schema}).first()
        if exists is None:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        command.upgrade(alembic_config(conn, schema), "head")
    return head_revision()
