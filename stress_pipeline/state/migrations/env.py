"""Alembic environment of the ledger migrations.

Run only through :func:`stress_pipeline.state.ledger_schema.migrate` (or ``alembic_config`` for a new
revision), which hands over an open connection, already inside the transaction and advisory lock of
the upgrade, and the ledger schema. There is no ``alembic.ini`` and no offline (SQL script) mode: the
ledger is always migrated against the live database it serves.
"""

from __future__ import annotations

from alembic import context

from stress_pipeline.state.ledger_schema import ledger_tables

config = context.config
connection = config.attributes.get("connection")
schema = config.attributes.get("schema")
if context.is_offline_mode() or connection is None or schema is None:
    raise RuntimeError("the ledger migrations run through stress_pipeline.state.ledger_schema.migrate(engine)")


def _include_name(name: str | None, type_: str, parent_names: dict[str, str | None]) -> bool:
    """Autogenerate looks at the ledger schema only, never at other users' schemas."""
    return name == schema if type_ == "schema" else True


context.configure(
    connection=connection,
    target_metadata=ledger_tables(schema).metadata,
    version_table_schema=schema,  # the migrations read their target schema from here
    include_schemas=True,
    include_name=_include_name,
)
with context.begin_transaction():
    context.run_migrations()
