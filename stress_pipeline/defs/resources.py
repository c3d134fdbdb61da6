"""Resources for the ledger database (PostgreSQL) and the hot-state store (Redis).

With no URL configured they resolve to the embedded servers under $STRESS_HOME, started once and
shared by every process of a run. Nothing is resolved at import time.
"""

from __future__ import annotations

import dagster as dg
import redis
import sqlalchemy as sa
from pydantic import PrivateAttr

from stress_pipeline.services import check_postgres, check_redis, postgres_engine, redis_client, resolve_service_urls
from stress_pipeline.settings import get_settings


class PostgresResource(dg.ConfigurableResource):
    """A SQLAlchemy engine (psycopg 3) on STRESS_POSTGRES_URL, or on the embedded PostgreSQL."""

    url: str | None = None
    _engine: sa.Engine | None = PrivateAttr(default=None)

    def resolved_url(self) -> str:
        return self.url or resolve_service_urls(get_settings()).postgres_url

    def get_engine(self) -> sa.Engine:
        if self._engine is None:
            url = self.resolved_url()
            check_postgres(url)
            self._engine = postgres_engine(url)
        return self._engine


class RedisResource(dg.ConfigurableResource):
    """A Redis client on STRESS_REDIS_URL, or on the embedded Redis."""

    url: str | None = None

    def resolved_url(self) -> str:
        return self.url or resolve_service_urls(get_settings()).redis_url

    def get_client(self) -> redis.Redis:
        url = self.resolved_url()
        check_redis(url)
        return redis_client(url)


def default_resources() -> dict[str, object]:
    """The resources every code location of the project binds."""
    from stress_pipeline.defs.io_manager import ParquetIOManager

    return {
        "parquet_io_manager": ParquetIOManager(),
        "postgres": PostgresResource(),
        "redis": RedisResource(),
    }
