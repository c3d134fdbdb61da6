"""Alembic environment of the certification history.

Run only through :func:`stress_pipeline.certification.history.migrate`, which hands over an open
connection (inside the upgrade's transaction and advisory lock) and the schema. The version table is
``certification_alembic_version``, apart from the ledger's and the monitoring's, so the histories of
migrations never meet even when they share a schema.
"""

from __future__ import annotations

from alembic import context

from stress_pipeline.certification.history import VERSION_TABLE, history_tables

config = context.config
connection = config.attributes.get("connection")
schema = config.attributes.get("schema")
if context.is_offline_mode() or connection is None or schema is None:
    raise RuntimeError("the certification migrations run through stress_pipeline.certification.history.migrate()")


def _include_name(name: str | None, type_: str, parent_names: dict[str, str | None]) -> bool:
    """Autogenerate looks at the history's schema only, never at other users' schemas."""
    return name == schema if type_ == "schema" else True


context.configure(
    connection=connection,
    target_metadata=history_tables(schema).metadata,
    version_table=VERSION_TABLE,
    version_table_schema=schema,  # the migrations read their target schema from here
    include_schemas=True,
    include_name=_include_name,
)
with context.begin_transaction():
    context.run_migrations()
