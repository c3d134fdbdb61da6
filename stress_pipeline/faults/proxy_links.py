"""The data path of the fault proxy: per accepted client, a connection of two one-way links.

A :class:`Link` reads chunks as they arrive, stamped with their arrival time, into a bounded queue (the
bound is the backpressure), and a second task applies the direction's toxics to each chunk before
writing it on. A :class:`Connection` runs both links and a supervisor for the timer toxics (timeout,
reset_peer), which end the whole connection. Everything here runs in the proxy thread's event loop and
shares one :class:`ProxyState` with the proxy: the toxics in force, the counters, the random draws and
the wake-up on a change.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
import time
from dataclasses import dataclass

from stress_pipeline.faults.toxics import BANDWIDTH_SLICE_S, DIRECTIONS, DOWNSTREAM, UPSTREAM, Toxics

#: Bytes read from a socket at a time, and chunks queued per link before reading pauses.
READ_SIZE = 64 * 1024
QUEUE_CHUNKS = 64
#: The proxy's counters (bytes per direction under the direction's name).
COUNTERS = ("accepted", "upstream_failures", "timed_out", "reset", UPSTREAM, DOWNSTREAM, "dropped")


class ProxyState:
    """What a proxy shares with its connections. ``toxics`` is replaced per direction by the proxy
    (under its lock) and read by the links; a change is announced with :meth:`notify`, run in the
    proxy's loop, which wakes every task sleeping in :meth:`wait_change`."""

    def __init__(self, seed: int | None = None) -> None:
        self.toxics: dict[str, Toxics] = {direction: Toxics() for direction in DIRECTIONS}
        self.counts = dict.fromkeys(COUNTERS, 0)
        self.rng = random.Random(seed)  # jitter and slicer draws
        self._changed: asyncio.Event | None = None

    def open(self) -> None:
        """Bind to the running loop (the proxy thread's), before any connection is served."""
        self._changed = asyncio.Event()

    def notify(self) -> None:
        """Wake every task waiting in :meth:`wait_change` (runs in the proxy thread)."""
        if self._changed is not None:
            changed, self._changed = self._changed, asyncio.Event()
            changed.set()

    async def wait_change(self, timeout: float | None) -> None:
        """Sleep ``timeout`` seconds (None: forever), or less if a toxic changes meanwhile."""
        if timeout is not None and timeout <= 0:
            return
        assert self._changed is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), timeout)


@dataclass(frozen=True)
class _Chunk:
    arrived: float
    jitter_draw: float
    data: bytes


class Connection:
    """One client connection and its upstream connection: two links and a supervisor for the timer
    toxics (timeout, reset_peer), which end the whole connection."""

    def __init__(
        self,
        state: ProxyState,
        client_reader: asyncio.StreamReader,
        client_writer: asyncio.StreamWriter,
        upstream_reader: asyncio.StreamReader,
        upstream_writer: asyncio.StreamWriter,
    ):
        self.state = state
        self.accepted = time.monotonic()
        self.closed = False
        # Each direction writes to one peer: upstream to the server, downstream to the client.
        self.writers = {UPSTREAM: upstream_writer, DOWNSTREAM: client_writer}
        self.links = [
            Link(self, UPSTREAM, client_reader, upstream_writer),
            Link(self, DOWNSTREAM, upstream_reader, client_writer),
        ]
        self._finished: set[str] = set()
        self._done = asyncio.Event()
        for writer in self.writers.values():
            _set_nodelay(writer)

    async def run(self) -> None:
        tasks = [asyncio.create_task(self._supervise())]
        for link in self.links:
            tasks += [asyncio.create_task(link.read()), asyncio.create_task(link.write())]
        try:
            await self._done.wait()
        finally:
            self.close()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def link_finished(self, direction: str) -> None:
        """A link passed its peer's EOF on; once both have, the connection ends normally."""
        self._finished.add(direction)
        if len(self._finished) == len(DIRECTIONS):
            self.close(graceful=True)

    def close(self, *, reset: frozenset[str] | set[str] = frozenset(), graceful: bool = False) -> None:
        """End both sockets; the peers of the directions in ``reset`` get a TCP RST."""
        if self.closed:
            return
        self.closed = True
        for direction, writer in self.writers.items():
            if direction in reset:
                _set_linger_zero(writer)
                writer.transport.abort()
            elif graceful:
                writer.close()
            else:
                writer.transport.abort()
        self._done.set()

    async def _supervise(self) -> None:
        """Close the connection when a timeout or reset_peer toxic's timer runs out."""
        while not self.closed:
            timers: list[tuple[float, str, str]] = []
            for direction in DIRECTIONS:
                toxics = self.state.toxics[direction]
                if toxics.timeout_ms:  # 0 stalls without closing
                    start = max(toxics.timeout_since, self.accepted)
                    timers.append((start + toxics.timeout_ms / 1000.0, "timed_out", direction))
                if toxics.reset_after_ms is not None:
                    start = max(toxics.reset_since, self.accepted)
                    timers.append((start + toxics.reset_after_ms / 1000.0, "reset", direction))
            now = time.monotonic()
            due = [(kind, direction) for at, kind, direction in timers if at <= now]
            if due:
                resets = {direction for kind, direction in due if kind == "reset"}
                self.state.counts["reset" if resets else "timed_out"] += 1
                self.close(reset=resets)
                return
            wake = min((at for at, _, _ in timers), default=None)
            await self.state.wait_change(None if wake is None else wake - now)


class Link:
    """One direction of a connection: a reader task queues chunks, a writer task applies the toxics."""

    def __init__(self, conn: Connection, direction: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.conn = conn
        self.state = conn.state
        self.direction = direction
        self.reader = reader
        self.writer = writer
        self.queue: asyncio.Queue[_Chunk | None] = asyncio.Queue(QUEUE_CHUNKS)
        self.paced_until = 0.0

    async def read(self) -> None:
        try:
            while data := await self.reader.read(READ_SIZE):
                await self.queue.put(_Chunk(time.monotonic(), self.state.rng.uniform(-1.0, 1.0), data))
        except OSError:  # the peer reset the connection: cut the other side too
            self.conn.close()
            return
        await self.queue.put(None)

    async def write(self) -> None:
        try:
            while (chunk := await self.queue.get()) is not None:
                await self._forward(chunk)
            if self.writer.can_write_eof():
                self.writer.write_eof()
        except OSError:
            self.conn.close()
            return
        self.conn.link_finished(self.direction)

    def _toxics(self) -> Toxics:
        return self.state.toxics[self.direction]

    def _drop(self, size: int) -> None:
        self.state.counts["dropped"] += size

    async def _forward(self, chunk: _Chunk) -> None:
        # Latency: wait until arrival + delay; re-evaluated when a toxic changes.
        while True:
            toxics = self._toxics()
            if toxics.timeout_ms is not None:
                self._drop(len(chunk.data))
                return
            wait = chunk.arrived + toxics.delay_s(chunk.jitter_draw) - time.monotonic()
            if wait <= 0:
                break
            await self.state.wait_change(wait)
        data = chunk.data
        while data:
            toxics = self._toxics()
            if toxics.timeout_ms is not None:
                self._drop(len(data))
                return
            size = len(data)
            if toxics.slicer is not None:
                slicer = toxics.slicer
                size = max(1, slicer.average_bytes + self.state.rng.randint(-slicer.variation, slicer.variation))
            if toxics.bandwidth_kb_per_s is not None:
                size = min(size, max(1, int(toxics.bandwidth_kb_per_s * 1000 * BANDWIDTH_SLICE_S)))
            piece, data = data[:size], data[size:]
            self.writer.write(piece)
            await self.writer.drain()
            self.state.counts[self.direction] += len(piece)
            if toxics.bandwidth_kb_per_s is not None:
                await self._pace(len(piece), toxics.bandwidth_kb_per_s)
            if toxics.slicer is not None and toxics.slicer.delay_us and data:
                await asyncio.sleep(toxics.slicer.delay_us / 1e6)

    async def _pace(self, size: int, kb_per_s: float) -> None:
        """Hold the link until ``size`` bytes at ``kb_per_s`` have had their time; no credit builds up
        while the link is idle, so a burst never exceeds one slice."""
        self.paced_until = max(self.paced_until, time.monotonic()) + size / (kb_per_s * 1000.0)
        while self._toxics().bandwidth_kb_per_s is not None:
            wait = self.paced_until - time.monotonic()
            if wait <= 0:
                return
            await self.state.wait_change(wait)
        self.paced_until = 0.0


def _set_nodelay(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _set_linger_zero(writer: asyncio.StreamWriter) -> None:
    """SO_LINGER on with a 0 s timeout: close() then discards unsent data and sends RST, not FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


__all__ = ["COUNTERS", "Connection", "Link", "ProxyState"]
