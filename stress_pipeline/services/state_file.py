"""Where the embedded servers keep their files, and the state file that records which ones run.

Many independent processes start, stop and look up the same servers, so they must agree on every path
and on one record of what runs. This module is that agreement: the layout of the services dir, the
records written to the state file, the atomic writes readers can rely on without locking, and the
lock that serialises every start and stop.

Layout under ``Settings.services_dir`` (0700, like every dir here; every file 0600)::

    services.json          URL (without password), pid, port, data dir and log of each running server
    services.lock          flock()ed around every start and stop: concurrent processes get one server
    secrets/               <server>.password: the generated password of each server
    postgres/data/         PGDATA, created by initdb on the first start
    postgres/postgres.log  server log (appended to on every start)
    redis/                 Redis working dir: redis.conf (rewritten on every start), redis.pid, redis.log
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stress_pipeline.services.credentials import PRIVATE_FILE_MODE, private_dir, read_password, write_private
from stress_pipeline.services.urls import mask_url, with_password, without_password
from stress_pipeline.settings import Settings

POSTGRES = "postgres"
REDIS = "redis"
SERVICE_NAMES = (POSTGRES, REDIS)
DISPLAY_NAMES = {POSTGRES: "PostgreSQL", REDIS: "Redis"}

#: Seconds a process waits for another one to finish starting or stopping the servers.
LOCK_TIMEOUT = 120.0

_STATE_VERSION = 1


def check_name(name: str) -> str:
    if name not in SERVICE_NAMES:
        raise ValueError(f"unknown service {name!r}; expected one of {', '.join(SERVICE_NAMES)}")
    return name


@dataclass(frozen=True)
class ServerRecord:
    """One running embedded server, as written to the state file.

    ``url`` carries the server's password in memory; the state file holds it without (the password is
    read back from ``secrets/`` by :func:`read_state_file`).
    """

    name: str
    url: str
    pid: int
    port: int
    data_dir: str
    log_file: str
    started_at: str

    def __repr__(self) -> str:  # ``url`` carries the password: never shown whole
        fields = {**dataclasses.asdict(self), "url": mask_url(self.url)}
        return f"ServerRecord({', '.join(f'{key}={value!r}' for key, value in fields.items())})"

    @classmethod
    def from_json(cls, raw: Any) -> ServerRecord | None:
        """Parse a state file entry; ``None`` when it is missing or malformed."""
        if not isinstance(raw, dict):
            return None
        try:
            return cls(**{field.name: raw[field.name] for field in dataclasses.fields(cls)})
        except (KeyError, TypeError):
            return None


@dataclass(frozen=True)
class ServiceState:
    """Contents of the state file: the record of each embedded server that is running."""

    postgres: ServerRecord | None = None
    redis: ServerRecord | None = None

    def get(self, name: str) -> ServerRecord | None:
        return getattr(self, check_name(name))

    def with_record(self, name: str, record: ServerRecord | None) -> ServiceState:
        return dataclasses.replace(self, **{check_name(name): record})

    def to_json(self) -> dict[str, Any]:
        servers = {
            name: {**dataclasses.asdict(rec), "url": without_password(rec.url)}
            for name in SERVICE_NAMES
            if (rec := self.get(name))
        }
        return {"version": _STATE_VERSION, "servers": servers}

    @classmethod
    def from_json(cls, raw: Any) -> ServiceState:
        servers = raw.get("servers") if isinstance(raw, dict) else None
        if not isinstance(servers, dict):
            return cls()
        return cls(**{name: ServerRecord.from_json(servers.get(name)) for name in SERVICE_NAMES})


@dataclass(frozen=True)
class ServiceLayout:
    """Paths of the embedded servers under one services dir."""

    root: Path

    @classmethod
    def from_settings(cls, settings: Settings) -> ServiceLayout:
        return cls(Path(os.path.realpath(settings.services_dir)))

    @property
    def state_file(self) -> Path:
        return self.root / "services.json"

    @property
    def lock_file(self) -> Path:
        return self.root / "services.lock"

    @property
    def secrets_dir(self) -> Path:
        return self.root / "secrets"

    @property
    def postgres_dir(self) -> Path:
        return self.root / "postgres"

    @property
    def pgdata(self) -> Path:
        return self.postgres_dir / "data"

    @property
    def postgres_log(self) -> Path:
        return self.postgres_dir / "postgres.log"

    @property
    def redis_dir(self) -> Path:
        return self.root / "redis"

    @property
    def redis_conf(self) -> Path:
        return self.redis_dir / "redis.conf"

    @property
    def redis_pidfile(self) -> Path:
        return self.redis_dir / "redis.pid"

    @property
    def redis_log(self) -> Path:
        return self.redis_dir / "redis.log"


@contextlib.contextmanager
def locked(layout: ServiceLayout, timeout: float = LOCK_TIMEOUT) -> Iterator[None]:
    """Hold an exclusive flock on the lock file.

    flock is released by the kernel when the holder dies, so a crashed process never leaves the lock
    behind; the descriptor is close-on-exec so the daemons started under it do not inherit it.
    """
    private_dir(layout.root)
    fd = os.open(layout.lock_file, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, PRIVATE_FILE_MODE)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise TimeoutError(
                        f"another process has held {layout.lock_file} for more than {timeout:.0f} s "
                        "while starting or stopping the embedded servers"
                    ) from None
                time.sleep(0.02)
        yield
    finally:
        os.close(fd)


def read_state_file(layout: ServiceLayout) -> ServiceState:
    try:
        raw = json.loads(layout.state_file.read_text())
    except FileNotFoundError:
        return ServiceState()
    except (OSError, ValueError):
        # A damaged state file is not fatal: the servers' own pid files are checked on every start.
        return ServiceState()
    state = ServiceState.from_json(raw)
    for name in SERVICE_NAMES:
        record = state.get(name)
        password = read_password(layout.secrets_dir, name) if record else None
        if record is not None and password is not None:
            state = state.with_record(name, dataclasses.replace(record, url=with_password(record.url, password)))
    return state


def write_state_file(layout: ServiceLayout, state: ServiceState) -> None:
    """Replace the state file atomically (0600), so readers without the lock never see half of it."""
    write_private(layout.state_file, json.dumps(state.to_json(), indent=2) + "\n")
