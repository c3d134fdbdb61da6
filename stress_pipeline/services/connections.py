"""Connection factories and health checks for PostgreSQL and Redis.

Every part of the project connects the same way: SQLAlchemy on the psycopg 3 driver for PostgreSQL,
redis-py for Redis, with short connect timeouts so that a wrong or dead URL fails within seconds
instead of hanging a run worker. The ``check_*`` functions turn any failure into a one-line
:class:`~stress_pipeline.services.errors.ServiceUnavailableError` with the password masked.
"""

from __future__ import annotations

import math
import re
from typing import Any

import psycopg
import redis
import sqlalchemy
from redis.backoff import NoBackoff
from redis.retry import Retry

from stress_pipeline.services.errors import ServiceUnavailableError
from stress_pipeline.services.urls import to_libpq_url, to_sqlalchemy_url

POSTGRES = "PostgreSQL"
REDIS = "Redis"

#: Seconds to wait for a TCP connection (and, for PostgreSQL, the login handshake) before failing.
CONNECT_TIMEOUT = 5


def postgres_engine(url: str, **kwargs: Any) -> sqlalchemy.Engine:
    """A SQLAlchemy engine for ``url`` on the psycopg 3 driver.

    ``pool_pre_ping`` is on so that pooled connections survive a server restart (the embedded server
    is restarted on the same port after a crash). ``kwargs`` go to :func:`sqlalchemy.create_engine`;
    ``connect_args`` are merged with the default connect timeout.
    """
    connect_args = {"connect_timeout": CONNECT_TIMEOUT, **kwargs.pop("connect_args", {})}
    kwargs.setdefault("pool_pre_ping", True)
    return sqlalchemy.create_engine(to_sqlalchemy_url(url), connect_args=connect_args, **kwargs)


def redis_client(url: str, **kwargs: Any) -> redis.Redis:
    """A redis-py client for ``url`` (``redis://`` or ``rediss://``) with a short connect timeout.

    ``kwargs`` go to :meth:`redis.Redis.from_url` (e.g. ``decode_responses=True``).
    """
    kwargs.setdefault("socket_connect_timeout", CONNECT_TIMEOUT)
    kwargs.setdefault("health_check_interval", 30)
    return redis.Redis.from_url(url, **kwargs)


def check_postgres(url: str, timeout: float = 3.0) -> None:
    """Connect to ``url`` and run ``SELECT 1``; raise ServiceUnavailableError on any failure."""
    try:
        conninfo = to_libpq_url(url)
        # libpq counts whole seconds and treats anything below 2 as 2.
        with psycopg.connect(conninfo, connect_timeout=max(2, math.ceil(timeout)), autocommit=True) as conn:
            conn.execute("SELECT 1").fetchone()
    except Exception as err:
        raise ServiceUnavailableError(POSTGRES, url, _psycopg_cause(err)) from None


def check_redis(url: str, timeout: float = 3.0) -> None:
    """Connect to ``url`` and send ``PING``; raise ServiceUnavailableError on any failure."""
    try:
        client = redis.Redis.from_url(
            url,
            socket_connect_timeout=timeout,
            socket_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
        )
        try:
            if not client.ping():
                raise RuntimeError("PING was not answered with PONG")
        finally:
            client.close()
    except Exception as err:
        raise ServiceUnavailableError(REDIS, url, _redis_cause(err)) from None


def _psycopg_cause(err: Exception) -> str:
    """``connection to server at "h", port 1 failed: Connection refused\\n\\tIs the server...`` → short."""
    first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    _, sep, tail = first.rpartition("failed: ")
    text = tail if sep else first
    text = re.sub(r"^(FATAL|ERROR):\s+", "", text)
    return _lower_first(text)


def _redis_cause(err: Exception) -> str:
    """``Error 111 connecting to 127.0.0.1:1. Connection refused.`` → ``connection refused``."""
    text = str(err).strip() or type(err).__name__
    match = re.match(r"^Error -?\d+ connecting to \S+?\.\s+(.*?)\.?$", text, re.DOTALL)
    if match:
        text = match[1]
    return _lower_first(text)


def _lower_first(text: str) -> str:
    if len(text) > 1 and text[0].isupper() and text[1].islower():
        return text[0].lower() + text[1:]
    return text
