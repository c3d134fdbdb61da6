"""A TCP fault proxy for the Redis and PostgreSQL connections of a run, modelled on Toxiproxy's toxics.

The state layer must survive what networks and servers do to it mid-run: refused and cut connections,
slow, stalled, throttled or fragmented links, resets. Toxiproxy is the usual tool but has no package
here, and an external server shared with other users must never be stopped for real, so the project
ships this proxy: the run connects to ``proxy.url_for(url)`` instead of ``url`` and faults are switched
on and off at runtime from synchronous code.

The proxy is an asyncio server on 127.0.0.1 running in a background thread with its own event loop.
This module is its control side (lifecycle, up/down, setting toxics from synchronous code); the data
path is :mod:`~stress_pipeline.faults.proxy_links` and the toxics :mod:`~stress_pipeline.faults.toxics`.
Each accepted client gets its own upstream connection and two one-way links: ``upstream`` (client to
server) and ``downstream`` (server to client), Toxiproxy's names. A link reads chunks as they arrive,
stamped with their arrival time, into a bounded queue (the bound is the backpressure), and a second
task applies the link's toxics to each chunk before writing it on:

* ``latency``: a chunk is delivered no earlier than arrival + ms ± jitter (order is kept, so a later
  chunk with a smaller jitter waits behind an earlier one).
* ``timeout``: data is dropped, as Toxiproxy's timeout toxic does, and the connection is closed ms
  after the toxic met it (installed, or the connection accepted, whichever is later); 0 never closes,
  the link stays stalled until the toxic is removed.
* ``reset_peer``: after ``after_ms`` the connection is closed with SO_LINGER 0, so the peer that link
  writes to gets a TCP RST (``downstream``: the client, ``upstream``: the server).
* ``bandwidth``: writes at most 100 ms worth of data at a time and paces them to kb_per_s (KB = 1000
  bytes, like Toxiproxy).
* ``slicer``: splits each chunk into pieces of average ± variation bytes with delay_us between them.
  TCP_NODELAY is set on both sockets so the pieces leave as separate segments.

``down()`` closes the listening socket (new connections are refused by the kernel) and cuts every
open connection; ``up()`` listens on the same port again. Toxics and up/down are settable from any
thread; a change wakes every waiting link, so removing a toxic takes effect at once. Only loopback
upstreams are accepted: this is a test tool, never a relay to other hosts.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ipaddress
import socket
import threading
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit, urlunsplit

from stress_pipeline.faults.proxy_links import Connection, ProxyState
from stress_pipeline.faults.toxics import (
    DIRECTIONS,
    DOWNSTREAM,
    REMOVED,
    TOXICS,
    UPSTREAM,
    Slicer,
    Stream,
    Toxics,
    check_direction,
    directions,
    non_negative,
)

HOST = "127.0.0.1"

#: Seconds allowed for the upstream connect, for a call into the proxy thread, and to rebind on up().
CONNECT_TIMEOUT = 5.0
CALL_TIMEOUT = 10.0
REBIND_TIMEOUT = 2.0

_DEFAULT_PORTS = {"postgresql": 5432, "postgres": 5432, "redis": 6379, "rediss": 6379}

_T = TypeVar("_T")


@dataclass(frozen=True)
class ProxyStats:
    """Counters since start: connections accepted, open, failed to reach upstream, cut by a toxic."""

    accepted: int
    active: int
    upstream_failures: int
    timed_out: int
    reset: int
    bytes_upstream: int
    bytes_downstream: int
    dropped_bytes: int


class FaultProxy:
    """A TCP proxy from 127.0.0.1:<port> to a loopback ``upstream_host:upstream_port`` with toxics.

    Use as a context manager, or ``start()`` / ``stop()``. ``listen_port=0`` picks a free port; the
    port is kept across ``down()`` / ``up()`` and a ``stop()`` / ``start()``, so URLs stay valid.
    ``seed`` fixes the jitter and slicer draws (the same for the same sequence of chunks read).
    """

    def __init__(self, upstream_host: str, upstream_port: int, listen_port: int = 0, *, seed: int | None = None):
        _require_loopback(upstream_host, upstream_port)
        self.upstream_host = upstream_host
        self.upstream_port = int(upstream_port)
        self._port: int | None = listen_port or None
        self._lock = threading.RLock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._enabled = True
        self._closing = False
        self._state = ProxyState(seed)
        self._connections: set[Connection] = set()

    # ------------------------------------------------------------------------------------ lifecycle

    def start(self) -> FaultProxy:
        """Start the proxy thread and listen; returns self. Starting a started proxy does nothing."""
        with self._lock:
            if self._thread is not None:
                return self
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=_run_loop, args=(loop,), name=f"fault-proxy-{self.upstream_port}")
            thread.daemon = True  # a proxy somebody forgot to stop must not keep the interpreter alive
            self._loop, self._thread = loop, thread
            self._enabled, self._closing = True, False
            thread.start()
            try:
                self._call(self._open())
            except BaseException:
                self.stop()
                raise
        return self

    def stop(self) -> None:
        """Close the listener and every connection, then end the thread. Safe to call twice."""
        with self._lock:
            loop, thread = self._loop, self._thread
            if loop is None or thread is None:
                return
            try:
                if loop.is_running():
                    self._call(self._close_all())
            finally:
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(loop.stop)
                thread.join(CALL_TIMEOUT)
                self._loop = self._thread = None
                self._server = None

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._thread is not None

    @property
    def port(self) -> int:
        """The port the proxy listens on (known once started)."""
        if self._port is None:
            raise RuntimeError("the proxy has no port yet: start it first")
        return self._port

    @property
    def is_down(self) -> bool:
        return not self._enabled

    def url_for(self, original_url: str) -> str:
        """``original_url`` (postgresql:// or redis://, pointing at the upstream) through the proxy.

        Raises ValueError for a URL of another server: rewriting it would silently send the run to the
        proxy's upstream instead.
        """
        parts = urlsplit(original_url)
        scheme = parts.scheme.lower()
        base = scheme.split("+", 1)[0]
        if base not in _DEFAULT_PORTS:
            raise ValueError(f"not a postgresql:// or redis:// URL: {scheme}://...")
        host = parts.hostname or ""
        port = parts.port or _DEFAULT_PORTS[base]
        if port != self.upstream_port or not _is_loopback(host, port):
            raise ValueError(
                f"the URL points at {host}:{port}, the proxy forwards to {self.upstream_host}:{self.upstream_port}"
            )
        userinfo, at, _ = parts.netloc.rpartition("@")
        netloc = f"{userinfo}{at}{HOST}:{self.port}"
        return urlunsplit(parts._replace(netloc=netloc))

    def stats(self) -> ProxyStats:
        counts = dict(self._state.counts)
        return ProxyStats(
            accepted=counts["accepted"],
            active=len(self._connections),
            upstream_failures=counts["upstream_failures"],
            timed_out=counts["timed_out"],
            reset=counts["reset"],
            bytes_upstream=counts[UPSTREAM],
            bytes_downstream=counts[DOWNSTREAM],
            dropped_bytes=counts["dropped"],
        )

    def toxics(self, direction: Literal["upstream", "downstream"]) -> Toxics:
        """The toxics in force on one direction."""
        return self._state.toxics[check_direction(direction)]

    # ---------------------------------------------------------------------------------- up and down

    def down(self) -> None:
        """Refuse new connections (the listening socket is closed) and cut the open ones."""
        with self._lock:
            self._call(self._go_down())

    def up(self) -> None:
        """Listen again on the same port after :meth:`down`."""
        with self._lock:
            self._call(self._go_up())

    # --------------------------------------------------------------------------------------- toxics

    def latency(self, ms: float, jitter_ms: float = 0.0, *, stream: Stream = "both") -> None:
        """Delay every chunk by ``ms`` ± ``jitter_ms`` (0 removes the toxic)."""
        non_negative(ms=ms, jitter_ms=jitter_ms)
        self._set(stream, latency_ms=float(ms), jitter_ms=float(jitter_ms))

    def timeout(self, ms: float, *, stream: Stream = "both") -> None:
        """Drop data and close the connection after ``ms``; 0 holds it open until the toxic is removed."""
        non_negative(ms=ms)
        self._set(stream, timeout_ms=float(ms), timeout_since=time.monotonic())

    def reset_peer(self, after_ms: float = 0.0, *, stream: Stream = "both") -> None:
        """Close connections with a TCP RST ``after_ms`` after the toxic meets them."""
        non_negative(after_ms=after_ms)
        self._set(stream, reset_after_ms=float(after_ms), reset_since=time.monotonic())

    def bandwidth(self, kb_per_s: float, *, stream: Stream = "both") -> None:
        """Limit throughput to ``kb_per_s`` (1 KB = 1000 bytes)."""
        if not kb_per_s > 0:
            raise ValueError(f"kb_per_s must be > 0, got {kb_per_s!r}")
        self._set(stream, bandwidth_kb_per_s=float(kb_per_s))

    def slicer(self, average_bytes: int, variation: int = 0, delay_us: float = 0.0, *, stream: Stream = "both") -> None:
        """Split data into pieces of ``average_bytes`` ± ``variation`` with ``delay_us`` between them."""
        if int(average_bytes) < 1:
            raise ValueError(f"average_bytes must be >= 1, got {average_bytes!r}")
        non_negative(variation=variation, delay_us=delay_us)
        self._set(stream, slicer=Slicer(int(average_bytes), int(variation), float(delay_us)))

    def remove(self, toxic: str, *, stream: Stream = "both") -> None:
        """Remove one toxic (a name from ``TOXICS``)."""
        if toxic not in REMOVED:
            raise ValueError(f"unknown toxic {toxic!r}; expected one of {', '.join(TOXICS)}")
        self._set(stream, **REMOVED[toxic])

    def clear(self, *, stream: Stream = "both") -> None:
        """Remove every toxic (up/down is left as it is)."""
        with self._lock:
            for direction in directions(stream):
                self._state.toxics[direction] = Toxics()
        self._wake()

    # ------------------------------------------------------------------------ thread-side machinery

    def _set(self, stream: Stream, **changes: Any) -> None:
        with self._lock:
            for direction in directions(stream):
                self._state.toxics[direction] = dataclasses.replace(self._state.toxics[direction], **changes)
        self._wake()

    def _wake(self) -> None:
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop closed in the meantime
                loop.call_soon_threadsafe(self._state.notify)

    def _call(self, coro: Coroutine[Any, Any, _T]) -> _T:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None or not thread.is_alive():
            coro.close()
            raise RuntimeError("the proxy is not running: start it first")
        if threading.current_thread() is thread:
            coro.close()
            raise RuntimeError("FaultProxy methods are called from other threads, not from its own loop")
        return asyncio.run_coroutine_threadsafe(coro, loop).result(CALL_TIMEOUT)

    async def _open(self) -> None:
        self._state.open()
        await self._listen()

    async def _listen(self) -> None:
        deadline = time.monotonic() + REBIND_TIMEOUT
        while True:
            try:
                self._server = await asyncio.start_server(self._on_client, HOST, self._port or 0, reuse_address=True)
                break
            except OSError:
                # After down() the port is free for a moment; another socket may hold it briefly.
                if not self._port or time.monotonic() >= deadline:
                    raise
                await asyncio.sleep(0.05)
        self._port = self._server.sockets[0].getsockname()[1]

    async def _close_listener(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(server.wait_closed(), 2.0)

    async def _go_down(self) -> None:
        self._enabled = False
        server, self._server = self._server, None
        if server is not None:
            server.close()  # stop accepting before cutting, so nothing new slips in
        for conn in list(self._connections):
            conn.close()
        if server is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(server.wait_closed(), 2.0)

    async def _go_up(self) -> None:
        if self._enabled:
            return
        await self._listen()
        self._enabled = True

    async def _close_all(self) -> None:
        self._closing = True
        self._enabled = False
        await self._close_listener()
        for conn in list(self._connections):
            conn.close()
        current = asyncio.current_task()
        tasks = [task for task in asyncio.all_tasks() if task is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.sleep(0)  # let aborted transports close their sockets

    async def _on_client(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        """The task of one accepted client. It is the top of its task and ends normally even when the
        proxy stops and cancels it: asyncio 3.11's stream callback logs an error for a cancelled one."""
        self._state.counts["accepted"] += 1
        try:
            await self._serve_client(client_reader, client_writer)
        except asyncio.CancelledError:
            client_writer.transport.abort()

    async def _serve_client(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        if not self._enabled or self._closing:
            client_writer.transport.abort()
            return
        try:
            upstream_reader, upstream_writer = await asyncio.wait_for(
                asyncio.open_connection(self.upstream_host, self.upstream_port), CONNECT_TIMEOUT
            )
        except (OSError, TimeoutError):
            self._state.counts["upstream_failures"] += 1
            client_writer.transport.abort()
            return
        conn = Connection(self._state, client_reader, client_writer, upstream_reader, upstream_writer)
        if not self._enabled or self._closing:  # went down while connecting upstream
            conn.close()
            return
        self._connections.add(conn)
        try:
            await conn.run()
        finally:
            self._connections.discard(conn)


# ------------------------------------------------------------------------------------------- helpers


def _run_loop(loop: asyncio.AbstractEventLoop) -> None:
    asyncio.set_event_loop(loop)
    try:
        loop.run_forever()
    finally:
        loop.close()


def _is_loopback(host: str, port: int) -> bool:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(info[4][0]).is_loopback for info in infos)


def _require_loopback(host: str, port: int) -> None:
    if not _is_loopback(host, port):
        raise ValueError(f"the fault proxy only forwards to loopback addresses, not {host!r}")


__all__ = ["DIRECTIONS", "HOST", "TOXICS", "FaultProxy", "ProxyStats", "Slicer", "Stream", "Toxics"]
