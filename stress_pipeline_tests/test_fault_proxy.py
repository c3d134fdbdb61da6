"""The fault proxy against real servers: embedded Redis and PostgreSQL, and an echo server for bytes.

Timing assertions have generous margins: they check that a toxic adds at least its delay (or limits at
least to its rate), never how fast the machine is.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from stress_pipeline.faults import FaultProxy
from stress_pipeline.services import embedded
from stress_pipeline.services.embedded import ServiceState
from stress_pipeline.settings import get_settings

# ------------------------------------------------------------------------------------------ helpers


class EchoServer:
    """An asyncio echo server on 127.0.0.1 in its own thread: sends back every byte, then closes."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="echo-server", daemon=True)
        self.server: asyncio.Server | None = None

    def __enter__(self) -> EchoServer:
        self.thread.start()
        self.server = asyncio.run_coroutine_threadsafe(self._open(), self.loop).result(5)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._close(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()

    @property
    def port(self) -> int:
        assert self.server is not None
        return self.server.sockets[0].getsockname()[1]

    async def _open(self) -> asyncio.Server:
        return await asyncio.start_server(self._echo, "127.0.0.1", 0)

    async def _close(self) -> None:
        assert self.server is not None
        self.server.close()
        tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    @staticmethod
    async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
            writer.close()
        except (OSError, asyncio.CancelledError):
            writer.transport.abort()


def _echo_bytes(port: int, payload: bytes, timeout: float = 20.0) -> tuple[bytes, list[int], float]:
    """Send ``payload`` (from a second thread, so neither direction waits for the other), half-close,
    and read until EOF; returns the bytes, the size of each recv and the seconds until EOF."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)

    def send() -> None:
        sock.sendall(payload)
        sock.shutdown(socket.SHUT_WR)

    sender = threading.Thread(target=send)
    chunks: list[bytes] = []
    started = time.perf_counter()
    sender.start()
    try:
        while chunk := sock.recv(65536):
            chunks.append(chunk)
        elapsed = time.perf_counter() - started
    finally:
        sender.join(timeout)
        sock.close()
    return b"".join(chunks), [len(c) for c in chunks], elapsed


def _redis(url: str) -> redis.Redis:
    # No retries: each command shows exactly what the proxy did to it.
    return redis.Redis.from_url(url, retry=Retry(NoBackoff(), 0), socket_connect_timeout=2, socket_timeout=10)


def _ping_seconds(client: redis.Redis) -> float:
    started = time.perf_counter()
    assert client.ping() is True
    return time.perf_counter() - started


def _pg_connect(url: str) -> psycopg.Connection:
    return psycopg.connect(url, connect_timeout=2, autocommit=True)


def _processes_under(root: Path) -> list[int]:
    root_str = os.path.realpath(root)
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        with contextlib.suppress(OSError):
            cwd = os.readlink(entry / "cwd")
            if cwd == root_str or cwd.startswith(root_str + os.sep):
                found.append(int(entry.name))
    return found


# ----------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceState]:
    """Embedded PostgreSQL and Redis under a temporary STRESS_HOME, stopped (and swept) afterwards."""
    settings = get_settings({"STRESS_HOME": str(tmp_path_factory.mktemp("fault-proxy-home"))})
    try:
        yield embedded.start(settings)
    finally:
        try:
            embedded.stop(settings)
        finally:
            for pid in _processes_under(settings.services_dir):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def echo() -> Iterator[EchoServer]:
    with EchoServer() as server:
        yield server


@pytest.fixture
def redis_proxy(servers: ServiceState) -> Iterator[FaultProxy]:
    assert servers.redis is not None
    with FaultProxy("127.0.0.1", servers.redis.port, seed=1) as proxy:
        yield proxy


@pytest.fixture
def echo_proxy(echo: EchoServer) -> Iterator[FaultProxy]:
    with FaultProxy("127.0.0.1", echo.port, seed=1) as proxy:
        yield proxy


# ------------------------------------------------------------------------------------ plain proxying


def test_forwards_every_byte_unchanged(echo_proxy: FaultProxy) -> None:
    payload = os.urandom(1_000_000)
    received, _, _ = _echo_bytes(echo_proxy.port, payload)
    assert received == payload
    stats = echo_proxy.stats()
    assert stats.bytes_upstream == stats.bytes_downstream == len(payload)


def test_url_for_points_at_the_proxy_and_rejects_other_servers(redis_proxy: FaultProxy) -> None:
    port = redis_proxy.upstream_port
    assert redis_proxy.url_for(f"redis://:pw@127.0.0.1:{port}/3") == f"redis://:pw@127.0.0.1:{redis_proxy.port}/3"
    assert redis_proxy.url_for(f"redis://localhost:{port}/0") == f"redis://127.0.0.1:{redis_proxy.port}/0"
    pg = FaultProxy("127.0.0.1", 5432, listen_port=15432)  # not started: only the rewrite is under test
    assert pg.url_for("postgresql://u:p@ss@127.0.0.1/db?sslmode=disable") == (
        "postgresql://u:p@ss@127.0.0.1:15432/db?sslmode=disable"
    )
    with pytest.raises(ValueError, match="forwards to"):
        redis_proxy.url_for(f"redis://127.0.0.1:{port + 1}/0")
    with pytest.raises(ValueError, match="postgresql:// or redis://"):
        redis_proxy.url_for(f"http://127.0.0.1:{port}/")


def test_only_loopback_upstreams_and_valid_toxics_are_accepted() -> None:
    with pytest.raises(ValueError, match="loopback"):
        FaultProxy("10.1.2.3", 6379)
    proxy = FaultProxy("127.0.0.1", 6379)
    with pytest.raises(ValueError):
        proxy.latency(-1)
    with pytest.raises(ValueError):
        proxy.bandwidth(0)
    with pytest.raises(ValueError):
        proxy.slicer(0)
    with pytest.raises(ValueError, match="stream"):
        proxy.latency(10, stream="sideways")  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="not running"):
        proxy.down()


def test_stop_closes_the_port_and_ends_the_thread(echo: EchoServer) -> None:
    before = set(threading.enumerate())
    proxy = FaultProxy("127.0.0.1", echo.port).start()
    port = proxy.port
    held = socket.create_connection(("127.0.0.1", port), timeout=5)
    held.sendall(b"x")
    assert held.recv(1) == b"x"
    proxy.stop()
    proxy.stop()
    assert held.recv(1) == b""  # the open connection was cut
    held.close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2)
    assert set(threading.enumerate()) == before


# ------------------------------------------------------------------------------------------ down / up


@pytest.mark.services
def test_down_refuses_and_cuts_redis_then_up_restores(redis_proxy: FaultProxy, servers: ServiceState) -> None:
    client = _redis(redis_proxy.url_for(servers.redis.url))
    try:
        assert client.ping() is True
        redis_proxy.down()
        with pytest.raises(redis.ConnectionError):
            client.ping()  # the open connection was cut, and a new one is refused
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", redis_proxy.port), timeout=2)
        redis_proxy.up()
        assert client.ping() is True
    finally:
        client.close()


@pytest.mark.services
def test_down_refuses_and_cuts_postgres_then_up_restores(servers: ServiceState) -> None:
    with FaultProxy("127.0.0.1", servers.postgres.port) as proxy:
        url = proxy.url_for(servers.postgres.url)
        with _pg_connect(url) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
            proxy.down()
            with pytest.raises(psycopg.OperationalError):
                conn.execute("SELECT 1")
        with pytest.raises(psycopg.OperationalError, match="refused"):
            _pg_connect(url)
        proxy.up()
        with _pg_connect(url) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)


# --------------------------------------------------------------------------------------------- toxics


@pytest.mark.services
def test_latency_adds_at_least_the_delay_per_direction(redis_proxy: FaultProxy, servers: ServiceState) -> None:
    client = _redis(redis_proxy.url_for(servers.redis.url))
    try:
        baseline = min(_ping_seconds(client) for _ in range(3))
        redis_proxy.latency(100)  # both directions: the request and the reply wait 100 ms each
        assert 0.195 <= _ping_seconds(client) < 0.2 + baseline + 1.0
        redis_proxy.latency(100, stream="downstream")
        redis_proxy.remove("latency", stream="upstream")
        assert 0.095 <= _ping_seconds(client) < 0.1 + baseline + 1.0
        redis_proxy.latency(60, jitter_ms=40, stream="downstream")
        assert all(0.015 <= _ping_seconds(client) < 0.1 + baseline + 1.0 for _ in range(5))
        redis_proxy.clear()
        assert _ping_seconds(client) < 0.09
    finally:
        client.close()


@pytest.mark.services
def test_timeout_stalls_then_closes_the_redis_connection(redis_proxy: FaultProxy, servers: ServiceState) -> None:
    client = _redis(redis_proxy.url_for(servers.redis.url))
    try:
        assert client.ping() is True
        redis_proxy.timeout(300)
        started = time.perf_counter()
        with pytest.raises(redis.ConnectionError, match="closed"):
            client.ping()  # the request is dropped, then the connection closed
        assert 0.28 <= time.perf_counter() - started < 5.0
        assert redis_proxy.stats().timed_out == 1
        redis_proxy.clear()
        assert client.ping() is True
    finally:
        client.close()


def test_timeout_zero_holds_the_connection_until_removed(echo_proxy: FaultProxy) -> None:
    with socket.create_connection(("127.0.0.1", echo_proxy.port), timeout=5) as sock:
        sock.sendall(b"before")
        assert sock.recv(100) == b"before"
        echo_proxy.timeout(0)
        sock.sendall(b"lost")
        sock.settimeout(0.4)
        with pytest.raises(TimeoutError):
            sock.recv(100)  # stalled, not closed
        echo_proxy.remove("timeout")
        sock.settimeout(5)
        sock.sendall(b"after")
        assert sock.recv(100) == b"after"  # what was sent during the timeout is gone, like Toxiproxy's
    assert echo_proxy.stats().dropped_bytes == len(b"lost")


@pytest.mark.services
def test_reset_peer_gives_a_connection_reset(redis_proxy: FaultProxy, servers: ServiceState) -> None:
    client = _redis(redis_proxy.url_for(servers.redis.url))
    try:
        assert client.ping() is True
        redis_proxy.reset_peer()
        with pytest.raises(redis.ConnectionError, match=r"104|[Rr]eset"):
            client.ping()
    finally:
        client.close()


def test_reset_peer_after_a_delay(echo_proxy: FaultProxy) -> None:
    echo_proxy.reset_peer(after_ms=250, stream="downstream")
    with socket.create_connection(("127.0.0.1", echo_proxy.port), timeout=5) as sock:
        started = time.perf_counter()
        sock.sendall(b"ping")
        assert sock.recv(100) == b"ping"  # works until the timer runs out
        with pytest.raises(ConnectionResetError):
            sock.recv(100)
        assert time.perf_counter() - started >= 0.24
    assert echo_proxy.stats().reset == 1


def test_bandwidth_limits_throughput(echo_proxy: FaultProxy) -> None:
    payload = os.urandom(1_000_000)
    echo_proxy.bandwidth(2000, stream="downstream")  # 2 MB/s: the 1 MB reply needs ~0.5 s
    received, _, elapsed = _echo_bytes(echo_proxy.port, payload)
    assert received == payload
    rate = len(payload) / elapsed
    assert 0.4e6 <= rate <= 2.4e6, f"{rate / 1e6:.2f} MB/s"


def test_slicer_delivers_every_byte_in_many_chunks(echo_proxy: FaultProxy) -> None:
    payload = os.urandom(32_768)
    received, sizes, _ = _echo_bytes(echo_proxy.port, payload)
    assert received == payload and len(sizes) < 16  # unsliced: a few large reads
    echo_proxy.slicer(512, variation=128, delay_us=1000, stream="downstream")
    received, sizes, elapsed = _echo_bytes(echo_proxy.port, payload)
    assert received == payload
    assert len(sizes) >= 24 and max(sizes) <= 8 * 640
    assert elapsed >= 0.03  # ~64 pieces, 1 ms apart
