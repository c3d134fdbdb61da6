"""The disk buffer: updates a writer could not deliver yet, kept on disk so a crash or an outage loses none.

An update is a fill or a mark (heartbeat with equity, see ``records.Mark``); a mark line carries
``"mark"`` where a fill line carries ``"fill"``.

When Redis or PostgreSQL is down the writer appends the pending fills here and flushes them once the
server is back. The file (``pending.jsonl`` in the directory the caller passes, by convention
``STRESS_HOME/buffers/<run_id>/<target>``) is append-only, one JSON line per fill::

    {"crc32":"1c291ca3","fill":{"event_id":7,"fee":"0.00100000",...}}

``crc32`` covers exactly the bytes of the ``fill`` object as written, so a line is verified without
re-serialising it. Decimals are stored as their exact strings and ints as JSON ints: a fill reads
back equal, digit for digit, to the one appended.

Crash safety. Each :meth:`DiskBuffer.append` writes its whole batch with one ``O_APPEND`` write and
``fsync``s before returning (and the directory when the file is new), so a returned append survives
power loss. A crash inside an append can leave a torn last line; :meth:`DiskBuffer.read` ignores it
and reports it (a warning, :meth:`DiskBuffer.scan`, ``stats().torn_lines``) — that fill's append
never returned, so nobody relied on it. The next append cuts the torn tail off before writing, so
new lines never glue onto a fragment. A damaged line *followed by good ones* is no crash artefact:
reading raises :class:`DiskBufferCorruptError` rather than silently dropping a fill.

:meth:`DiskBuffer.truncate` (after a successful flush) writes what remains to a temporary file,
fsyncs it and renames it over the buffer, so a crash leaves either the old or the new file.
One process writes a buffer; others may read it.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from stress_pipeline.state.records import Fill, Mark

FILE_NAME = "pending.jsonl"
_PREFIX = b'{"crc32":"'
_CRC_LEN = 8
_MIDDLE = b'","fill":'
_MARK_MIDDLE = b'","mark":'
_SUFFIX = b"}"
_DECIMAL_FIELDS = ("qty", "price", "fee")
_INT_FIELDS = ("event_id", "ts_ns", "order_id")
_STR_FIELDS = ("run_id", "fill_id", "symbol")

log = logging.getLogger(__name__)


class DiskBufferCorruptError(RuntimeError):
    """A damaged line sits before intact ones: not a torn tail, so no fill may be guessed away."""


@dataclass(frozen=True)
class BufferScan:
    """What is in the file: the intact fills, and the torn tail that was ignored."""

    fills: list[Fill | Mark]  # the intact records, in append order
    valid_bytes: int  # length of the intact prefix
    torn_lines: int
    torn_bytes: int


@dataclass(frozen=True)
class BufferStats:
    appended: int  # fills appended through this object
    appended_bytes: int
    fsyncs: int  # file and directory fsyncs made by this object
    records: int  # intact fills in the file now
    file_bytes: int
    torn_lines: int  # torn lines seen by reads or cut off before an append, through this object


def encode_fill(record: Fill | Mark) -> bytes:
    """One buffer line, newline included."""
    if isinstance(record, Mark):
        body: dict[str, object] = {"run_id": record.run_id, "ts_ns": record.ts_ns, "equity": str(record.equity)}
        middle = _MARK_MIDDLE
    else:
        body = {name: getattr(record, name) for name in _STR_FIELDS + _INT_FIELDS}
        body.update({name: str(getattr(record, name)) for name in _DECIMAL_FIELDS})
        middle = _MIDDLE
    data = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    return b"%s%08x%s%s%s\n" % (_PREFIX, zlib.crc32(data), middle, data, _SUFFIX)


def decode_fill(line: bytes) -> Fill | Mark | None:
    """The fill or mark of one line (without its newline), or None when the line is damaged."""
    head = len(_PREFIX) + _CRC_LEN + len(_MIDDLE)
    if len(line) <= head or not line.startswith(_PREFIX) or not line.endswith(_SUFFIX):
        return None
    middle = line[len(_PREFIX) + _CRC_LEN : head]
    if middle not in (_MIDDLE, _MARK_MIDDLE):
        return None
    data = line[head : -len(_SUFFIX)]
    try:
        if int(line[len(_PREFIX) : len(_PREFIX) + _CRC_LEN], 16) != zlib.crc32(data):
            return None
        body = json.loads(data)
        if middle == _MARK_MIDDLE:
            return Mark(
                run_id=_typed(body["run_id"], str), ts_ns=_typed(body["ts_ns"], int),
                equity=Decimal(_typed(body["equity"], str)),
            )  # fmt: skip
        return Fill(
            **{name: _typed(body[name], str) for name in _STR_FIELDS},
            **{name: _typed(body[name], int) for name in _INT_FIELDS},
            **{name: Decimal(_typed(body[name], str)) for name in _DECIMAL_FIELDS},
        )
    except (ValueError, KeyError, TypeError, ArithmeticError):
        return None


class DiskBuffer:
    """An append-only, fsynced file of pending fills in ``path`` (a directory, created if missing)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.directory = Path(path)
        self.file = self.directory / FILE_NAME
        self._lock = threading.RLock()  # truncate scans under the lock
        self._count: int | None = None  # intact records, known after the first scan
        self._tail_checked = False  # a torn tail is cut off once, before this object's first append
        self._appended = 0
        self._appended_bytes = 0
        self._fsyncs = 0
        self._torn_lines = 0

    def append(self, records: Sequence[Fill | Mark]) -> None:
        """Append ``records`` in order and fsync; when this returns they are on disk."""
        data = b"".join(encode_fill(record) for record in records)
        if not data:
            return
        with self._lock:
            self.directory.mkdir(parents=True, exist_ok=True)
            if not self._tail_checked:
                self._cut_torn_tail()
            created = not self.file.exists()
            fd = os.open(self.file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                self._tail_checked = False  # a failed write may leave a fragment
                _write_all(fd, data)
                self._fsync(fd)
                self._tail_checked = True
            finally:
                os.close(fd)
            if created:
                self._fsync_directory()
            self._appended += len(records)
            self._appended_bytes += len(data)
            self._count = (self._count or 0) + len(records)

    def read(self) -> list[Fill | Mark]:
        """The intact fills in append order; a torn last line is ignored and reported."""
        return self.scan().fills

    def scan(self) -> BufferScan:
        """Read the whole file: intact fills, and what torn tail was ignored (logged as a warning)."""
        with self._lock:
            try:
                content = self.file.read_bytes()
            except FileNotFoundError:
                content = b""
            result = _scan(content, self.file)
            if result.torn_lines:
                self._torn_lines += result.torn_lines
                log.warning(
                    "disk buffer %s: ignored %d torn line(s), %d byte(s), after %d intact fill(s)",
                    self.file, result.torn_lines, result.torn_bytes, len(result.fills),
                )  # fmt: skip
            self._count = len(result.fills)
            return result

    def truncate(self, count: int | None = None) -> None:
        """Drop the flushed fills: all of them, or the first ``count`` (keeping any appended since)."""
        with self._lock:
            kept: list[Fill | Mark] = []
            if count is not None:
                fills = self.scan().fills
                if not 0 <= count <= len(fills):
                    raise ValueError(f"cannot drop {count} fill(s) from a buffer of {len(fills)}")
                kept = fills[count:]
            if not kept and not self.file.exists():
                self._count = 0
                return
            self.directory.mkdir(parents=True, exist_ok=True)
            temporary = self.directory / f".{FILE_NAME}.tmp"
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                _write_all(fd, b"".join(encode_fill(fill) for fill in kept))
                self._fsync(fd)
            finally:
                os.close(fd)
            os.replace(temporary, self.file)
            self._fsync_directory()
            self._count = len(kept)
            self._tail_checked = True

    def __len__(self) -> int:
        if self._count is None:
            self.scan()
        return self._count or 0

    def stats(self) -> BufferStats:
        try:
            size = self.file.stat().st_size
        except FileNotFoundError:
            size = 0
        return BufferStats(
            appended=self._appended, appended_bytes=self._appended_bytes, fsyncs=self._fsyncs, records=len(self),
            file_bytes=size, torn_lines=self._torn_lines,
        )  # fmt: skip

    # ------------------------------------------------------------------------------------- internals

    def _cut_torn_tail(self) -> None:
        result = self.scan()
        if result.torn_bytes:
            os.truncate(self.file, result.valid_bytes)
            fd = os.open(self.file, os.O_WRONLY)
            try:
                self._fsync(fd)
            finally:
                os.close(fd)
            log.warning("disk buffer %s: cut off a torn tail of %d byte(s)", self.file, result.torn_bytes)
        self._tail_checked = True

    def _fsync(self, fd: int) -> None:
        os.fsync(fd)
        self._fsyncs += 1

    def _fsync_directory(self) -> None:
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            self._fsync(fd)
        finally:
            os.close(fd)


def _scan(content: bytes, file: Path) -> BufferScan:
    fills: list[Fill | Mark] = []
    valid_bytes = 0
    damaged: list[int] = []  # offsets of damaged lines since the last intact one
    offset = 0
    while offset < len(content):
        end = content.find(b"\n", offset)
        complete = end != -1
        stop = end if complete else len(content)
        fill = decode_fill(content[offset:stop]) if complete else None
        if fill is None:
            damaged.append(offset)
        elif damaged:
            raise DiskBufferCorruptError(
                f"disk buffer {file}: damaged line at byte {damaged[0]} is followed by intact fills"
            )
        else:
            fills.append(fill)
            valid_bytes = end + 1
        offset = stop + 1
    return BufferScan(fills, valid_bytes, len(damaged), len(content) - valid_bytes)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _typed(value: object, kind: type) -> object:
    if type(value) is not kind:
        raise TypeError(f"expected {kind.__name__}, got {value!r}")
    return value
