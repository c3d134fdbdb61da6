"""Server outages: take away the PostgreSQL or Redis server a run uses, bring it back, time both.

Reconciliation can only prove that nothing is lost across an outage if the outage is real, so an
embedded server (this STRESS_HOME's own) is really stopped: its processes are killed (``how="kill"``:
SIGKILL, a crash; PostgreSQL replays its WAL on the next start) or shut down cleanly (``how="stop"``:
PostgreSQL fast shutdown, Redis SIGTERM), and ``end()`` starts it again through
:func:`stress_pipeline.services.embedded.start`. The server's record stays in the state file while it
is down, so that start reuses its data dir and its port and the run's URL stays valid (the embedded
Redis keeps no snapshot: it comes back empty, as a crashed cache does). An external server
(STRESS_POSTGRES_URL / STRESS_REDIS_URL) is shared and never touched: the run must connect through a
:class:`~stress_pipeline.faults.proxy.FaultProxy`, and the outage is ``proxy.down()`` / ``proxy.up()``.

The timings say how fast the fault took hold and, more usefully, how long the run had to wait for
the server to answer again on the URL it actually uses (through the proxy, when it has one).
"""

from __future__ import annotations

import contextlib
import signal
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from stress_pipeline.faults.proxy import FaultProxy
from stress_pipeline.services import embedded
from stress_pipeline.services.connections import check_postgres, check_redis
from stress_pipeline.services.errors import ServiceUnavailableError
from stress_pipeline.services.processes import processes_in, runs_in, send_signal, terminate, wait_gone
from stress_pipeline.services.server_use import outage_use
from stress_pipeline.services.state_file import ServerRecord, ServiceLayout, locked
from stress_pipeline.services.urls import mask_url
from stress_pipeline.settings import Settings

Target = Literal["postgres", "redis"]
How = Literal["kill", "stop"]

#: Seconds allowed for the server to go away, and (by default) to answer again after end().
DOWN_TIMEOUT = 30.0
RECOVERY_TIMEOUT = embedded.START_TIMEOUT
_POLL_S = 0.02
#: The clean shutdown signal of each server: PostgreSQL's "fast" mode, Redis's normal shutdown.
_STOP_SIGNALS = {embedded.POSTGRES: signal.SIGINT, embedded.REDIS: signal.SIGTERM}
_CHECKS = {embedded.POSTGRES: check_postgres, embedded.REDIS: check_redis}


class OutageError(RuntimeError):
    """An outage could not be begun or ended as asked."""


@dataclass(frozen=True)
class OutageTimings:
    """Seconds from ``begin()`` until the server refused connections, from ``end()`` until it answered
    again on the run's URL, and from ``begin()`` to that answer (``None`` until measured)."""

    down_s: float | None = None
    recovery_s: float | None = None
    outage_s: float | None = None


class ServerOutage:
    """One outage of one server; ``begin()`` takes it away, ``end()`` brings it back (idempotent).

    Also a context manager: the server is back when the block is left, whatever happened in it.
    """

    def __init__(
        self,
        target: Target,
        settings: Settings,
        proxy: FaultProxy | None = None,
        *,
        how: How = "kill",
        recovery_timeout: float = RECOVERY_TIMEOUT,
    ):
        self.target = embedded.check_name(target)
        if how not in ("kill", "stop"):
            raise ValueError(f"how must be 'kill' or 'stop', got {how!r}")
        self.settings = settings
        self.proxy = proxy
        self.how = how
        self.recovery_timeout = recovery_timeout
        self.external_url = settings.postgres_url if self.target == embedded.POSTGRES else settings.redis_url
        if self.external_url is not None:
            if proxy is None:
                raise OutageError(
                    f"{embedded.DISPLAY_NAMES[self.target]} at {mask_url(self.external_url)} is external and is "
                    "never stopped: connect the run through a FaultProxy and pass it as proxy="
                )
            proxy.url_for(self.external_url)  # raises if the proxy forwards to another server
        self.timings = OutageTimings()
        self._record: ServerRecord | None = None
        self._use = contextlib.ExitStack()
        self._began: float | None = None

    @property
    def method(self) -> str:
        """``"proxy"`` for an external server, else how the embedded process is stopped."""
        return "proxy" if self.external_url is not None else self.how

    @property
    def active(self) -> bool:
        return self._began is not None

    @property
    def url(self) -> str:
        """The URL the run uses for this server: through the proxy when there is one."""
        server_url = self.external_url or self._embedded_record(require_running=False).url
        return self.proxy.url_for(server_url) if self.proxy is not None else server_url

    def begin(self) -> OutageTimings:
        """Take the server away; returns once it refuses connections. Marked as begun before anything
        is touched, so ``end()`` can bring the server back even if this fails half-way."""
        if self._began is not None:
            raise OutageError(f"the {self.target} outage has already begun")
        _ = self.url  # raises, before anything is stopped, if the proxy forwards to another server
        began = time.monotonic()
        if self.external_url is not None:
            assert self.proxy is not None
            self._began = began
            self.proxy.down()
            _wait_refused(embedded.HOST, self.proxy.port, began + DOWN_TIMEOUT)
        else:
            record = self._embedded_record(require_running=True)
            # Exclusive use first: another run using the server makes this wait (bounded), then fail.
            self._use = contextlib.ExitStack()
            self._use.enter_context(outage_use(self.settings, self.target))
            self._record, self._began = record, began
            self._stop_embedded(record)
            _wait_refused(urlsplit(record.url).hostname or embedded.HOST, record.port, began + DOWN_TIMEOUT)
        self.timings = OutageTimings(down_s=time.monotonic() - began)
        return self.timings

    def end(self) -> OutageTimings:
        """Bring the server back; returns once it answers on the run's URL (a no-op if not begun)."""
        if self._began is None:
            return self.timings
        ended = time.monotonic()
        if self.external_url is not None:
            assert self.proxy is not None
            self.proxy.up()
        else:
            with self._use:  # the exclusive use ends with the outage, whatever the restart does
                self._restart_embedded()
        _wait_answers(self.target, self.url, ended + self.recovery_timeout)
        done = time.monotonic()
        self.timings = OutageTimings(self.timings.down_s, done - ended, done - self._began)
        self._began = None
        return self.timings

    def __enter__(self) -> ServerOutage:
        self.begin()
        return self

    def __exit__(self, *exc: object) -> None:
        self.end()

    # ------------------------------------------------------------------------------------- embedded

    def _embedded_record(self, *, require_running: bool) -> ServerRecord:
        record = self._record or embedded.read_state(self.settings).get(self.target)
        name = embedded.DISPLAY_NAMES[self.target]
        if record is None:
            raise OutageError(f"embedded {name} was never started under {self.settings.services_dir}")
        if require_running and not runs_in(record.pid, Path(record.data_dir)):
            raise OutageError(f"embedded {name} (pid {record.pid}) is not running")
        return record

    def _stop_embedded(self, record: ServerRecord) -> None:
        """Stop the server's processes, leaving its record in the state file for the restart.

        Under the services lock, so no other process starts the server while it is half-way down.
        """
        data_dir = Path(record.data_dir)
        with locked(ServiceLayout.from_settings(self.settings)):
            if self.how == "kill":
                pids = [record.pid, *(pid for pid in processes_in(data_dir) if pid != record.pid)]
                for pid in pids:
                    send_signal(pid, signal.SIGKILL)
                left = wait_gone(pids, DOWN_TIMEOUT)
            else:
                terminate(record.pid, data_dir, timeout=DOWN_TIMEOUT, sig=_STOP_SIGNALS[self.target])
                left = wait_gone(processes_in(data_dir), DOWN_TIMEOUT)
        if left:
            raise OutageError(f"embedded {embedded.DISPLAY_NAMES[self.target]}: pids {left} did not exit")

    def _restart_embedded(self) -> None:
        assert self._record is not None
        before = self._record
        after = embedded.start(self.settings, [self.target], timeout=self.recovery_timeout).get(self.target)
        if after is None or after.port != before.port:
            port = after.port if after else None
            raise OutageError(
                f"embedded {embedded.DISPLAY_NAMES[self.target]} came back on port {port}, not {before.port} "
                "(somebody took the port while it was down): the run's URL no longer reaches it"
            )
        self._record = None


def outage(
    target: Target,
    settings: Settings,
    proxy: FaultProxy | None = None,
    *,
    how: How = "kill",
    recovery_timeout: float = RECOVERY_TIMEOUT,
) -> ServerOutage:
    """An outage of the run's PostgreSQL or Redis: the real process for an embedded server, the
    proxy for an external one. Nothing happens until ``begin()``."""
    return ServerOutage(target, settings, proxy, how=how, recovery_timeout=recovery_timeout)


def _wait_refused(host: str, port: int, deadline: float) -> None:
    """Wait until nothing accepts TCP connections on host:port any more."""
    while True:
        try:
            with socket.create_connection((host, port), timeout=1.0):
                pass
        except OSError:
            return
        if time.monotonic() >= deadline:
            raise OutageError(f"{host}:{port} still accepts connections")
        time.sleep(_POLL_S)


def _wait_answers(target: str, url: str, deadline: float) -> None:
    """Poll the server's health check on ``url`` until it passes."""
    check = _CHECKS[target]
    while True:
        try:
            check(url, 2.0)
            return
        except ServiceUnavailableError as err:
            if time.monotonic() >= deadline:
                raise OutageError(f"{err} (still, after the outage ended)") from None
        time.sleep(_POLL_S)


__all__ = ["OutageError", "OutageTimings", "ServerOutage", "Target", "outage"]
