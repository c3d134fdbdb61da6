"""Alembic environment of the alert receiver's tables.

Run only through :func:`stress_pipeline.monitoring.alert_store.migrate`, which hands over an open
connection (inside the upgrade's transaction and advisory lock) and the schema. The version table is
``monitoring_alembic_version``, apart from the ledger's, so the two sets of migrations never meet even
when they share a schema.
"""

from __future__ import annotations

from alembic import context

from stress_pipeline.monitoring.alert_store import VERSION_TABLE, alert_tables

config = context.config
connection = config.attributes.get("connection")
schema = config.attributes.get("schema")
if context.is_offline_mode() or connection is None or schema is None:
    raise RuntimeError("the monitoring migrations run through stress_pipeline.monitoring.alert_store.migrate(engine)")


def _include_name(name: str | None, type_: str, parent_names: dict[str, str | None]) -> bool:
    """Autogenerate looks at the monitoring schema only, never at other users' schemas."""
    return name == schema if type_ == "schema" else True


context.configure(
    connection=connection,
    target_metadata=alert_tables(schema).metadata,
    version_table=VERSION_TABLE,
    version_table_schema=schema,  # the migrations read their target schema from here
    include_schemas=True,
    include_name=_include_name,
)
with context.begin_transaction():
    context.run_migrations()
