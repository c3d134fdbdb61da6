"""The disk buffer: updates a writer could not deliver yet, kept on disk so a crash or an outage loses none.

An update is a fill or a mark (heartbeat with equity, see ``records.Mark``); a mark line carries
``"mark"`` where a fill line carries ``"fill"``.

When Redis or PostgreSQL is down the writer appends the pending fills here and flushes them once the
server is back. The file (``pending.jsonl`` in the directory the caller passes, by convention
``STRESS_HOME/buffers/<run_id>/<target>``) is append-only, one JSON line per record::

    {"crc32":"1c291ca3","seq":7,"fill":{"event_id":7,"fee":"0.00100000",...}}

``crc32`` (8 lower-case hex digits) covers exactly the bytes between ``"crc32":"...",`` and the
closing brace (``"seq":7,"fill":{...}``), so a line is verified without re-serialising it and a
flipped byte is caught even where the JSON would still parse. ``seq`` numbers the records of the file
consecutively, so a line lost or repeated inside the file is caught too. Decimals are stored as their
exact strings and ints as JSON ints: a fill reads back equal, digit for digit, to the one appended.

Durability rule: an entry whose :meth:`DiskBuffer.append` returned is never dropped.

* Each append writes its whole batch with one ``O_APPEND`` write and ``fsync``s before returning (and
  the directory when the file is new), so a returned append survives a crash or power loss.
* A crash inside an append can only leave a final line *without its newline*: that is the one torn
  tail there is. Reads ignore and report it (a warning, ``BufferScan.torn_lines``); its append never
  returned, so nobody relied on it. The next append cuts it off first, so new lines never glue onto a
  fragment.
* Damage anywhere else — a terminated line that fails its checksum or its sequence number (the last
  complete line included), a torn-looking tail that starts with an intact record followed by anything
  but its newline (a damaged terminator, perhaps with the start of a later append glued on), or
  a file shorter than what this object acknowledged — raises :class:`DiskBufferCorruptError` naming
  the file, the line number and the byte offset. Nothing is guessed away.

Cost. The file is scanned once, when an object first needs its size (opening); from then on the
record count, the byte length and the next sequence number are kept in memory and an append costs
one write and one fsync whatever the buffer holds. Reads stream the file in chunks
(:meth:`DiskBuffer.batches`), so flushing a large buffer never holds it whole in memory. A size cap
(``max_bytes``) makes an append that would pass it raise :class:`DiskBufferFullError`, naming the file.

:meth:`DiskBuffer.truncate` (after a successful flush) empties the file, or keeps the records appended
since by copying them (streamed) to a temporary file that is fsynced and renamed over the buffer, so
a crash leaves either the old or the new file. One process writes a buffer; others may read it.
Files are created 0600 and directories 0700: fills are private.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from stress_pipeline.paths import private_dir
from stress_pipeline.state.records import Fill, Mark

FILE_NAME = "pending.jsonl"
#: Bytes read at a time by the streaming reads.
CHUNK_BYTES = 1 << 20
#: No record line is longer (a fill line is a few hundred bytes): a longer unterminated run is damage.
MAX_LINE_BYTES = 1 << 20
_PREFIX = b'{"crc32":"'
_CRC_LEN = 8
_AFTER_CRC = b'",'
_HEAD = len(_PREFIX) + _CRC_LEN + len(_AFTER_CRC)
_SUFFIX = b"}"
_DECIMAL_FIELDS = ("qty", "price", "fee")
_INT_FIELDS = ("event_id", "ts_ns", "order_id")
_STR_FIELDS = ("run_id", "fill_id", "symbol")

log = logging.getLogger(__name__)


class DiskBufferError(RuntimeError):
    """The disk buffer refused an operation; the message names the file."""


class DiskBufferCorruptError(DiskBufferError):
    """Damage that is no torn tail: a record may have been lost, so nothing is replayed silently."""

    def __init__(self, file: Path, line: int, offset: int, reason: str) -> None:
        self.file, self.line, self.offset = file, line, offset
        super().__init__(f"disk buffer {file}: line {line} (byte {offset}) {reason}")


class DiskBufferFullError(DiskBufferError):
    """An append would pass the buffer's size cap (the server has been away for too long)."""


@dataclass(frozen=True)
class BufferScan:
    """What is in the file: the intact records, and the torn tail that was ignored."""

    fills: list[Fill | Mark]  # the intact records, in append order
    valid_bytes: int  # length of the intact prefix
    torn_lines: int  # 0 or 1: only a final line without its newline is a torn tail
    torn_bytes: int


@dataclass(frozen=True)
class BufferStats:
    appended: int  # records appended through this object
    appended_bytes: int
    fsyncs: int  # file and directory fsyncs made by this object
    records: int  # intact records in the file now
    file_bytes: int
    torn_lines: int  # torn tails seen by reads or cut off before an append, through this object


def encode_fill(record: Fill | Mark, seq: int = 0) -> bytes:
    """One buffer line, newline included; ``seq`` is the record's number in its file."""
    if isinstance(record, Mark):
        body: dict[str, object] = {"run_id": record.run_id, "ts_ns": record.ts_ns, "equity": str(record.equity)}
        kind = b"mark"
    else:
        body = {name: getattr(record, name) for name in _STR_FIELDS + _INT_FIELDS}
        body.update({name: str(getattr(record, name)) for name in _DECIMAL_FIELDS})
        kind = b"fill"
    data = b'"seq":%d,"%s":%s' % (seq, kind, json.dumps(body, sort_keys=True, separators=(",", ":")).encode())
    return b"%s%08x%s%s%s\n" % (_PREFIX, zlib.crc32(data), _AFTER_CRC, data, _SUFFIX)


def decode_fill(line: bytes) -> Fill | Mark | None:
    """The fill or mark of one line (without its newline), or None when the line is damaged."""
    decoded = _decode(line)
    return None if isinstance(decoded, str) else decoded[1]


class DiskBuffer:
    """An append-only, fsynced file of pending records in ``path`` (a directory, created if missing).

    ``max_bytes`` caps the file: an append that would pass it raises :class:`DiskBufferFullError`.
    """

    def __init__(self, path: str | os.PathLike[str], *, max_bytes: int | None = None) -> None:
        if max_bytes is not None and max_bytes <= 0:
            raise ValueError(f"max_bytes must be positive, got {max_bytes}")
        self.directory = Path(path)
        self.file = self.directory / FILE_NAME
        self.max_bytes = max_bytes
        self._lock = threading.RLock()
        self._opened = False  # the file was scanned once: the fields below describe it
        self._torn_bytes = 0  # a torn tail seen by the last scan, cut off before the next append
        self._count = 0  # intact records in the file, all acknowledged (their append returned)
        self._bytes = 0  # length of the intact records
        self._next_seq = 0
        self._appended = 0
        self._appended_bytes = 0
        self._fsyncs = 0
        self._torn_lines = 0

    # ------------------------------------------------------------------------------------- writes

    def append(self, records: Sequence[Fill | Mark]) -> None:
        """Append ``records`` in order and fsync; when this returns they are on disk (never dropped)."""
        if not records:
            return
        with self._lock:
            self._open(cut_torn_tail=True)
            data = b"".join(encode_fill(record, self._next_seq + i) for i, record in enumerate(records))
            if self.max_bytes is not None and self._bytes + len(data) > self.max_bytes:
                raise DiskBufferFullError(
                    f"disk buffer {self.file} holds {self._bytes} bytes ({self._count} records); appending "
                    f"{len(records)} more ({len(data)} bytes) would pass its cap of {self.max_bytes} bytes"
                )
            private_dir(self.directory)
            created = not self.file.exists()
            fd = os.open(self.file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                self._opened = False  # a failed write may leave a fragment: rescan before the next append
                _write_all(fd, data)
                self._fsync(fd)
                self._opened = True
            finally:
                os.close(fd)
            if created:
                self._fsync_directory()
            self._appended += len(records)
            self._appended_bytes += len(data)
            self._count += len(records)
            self._bytes += len(data)
            self._next_seq += len(records)

    def truncate(self, count: int | None = None) -> None:
        """Drop the flushed records: all of them, or the first ``count`` (keeping any appended since)."""
        with self._lock:
            self._open()
            if count is None:
                count = self._count
            if not 0 <= count <= self._count:
                raise ValueError(f"cannot drop {count} record(s) from a buffer of {self._count}")
            if not self.file.exists():
                return
            if count == self._count:
                fd = os.open(self.file, os.O_WRONLY | os.O_TRUNC)
                try:
                    self._fsync(fd)
                finally:
                    os.close(fd)
                self._count = self._bytes = 0
                return
            start = self._offset_of(count)
            temporary = self.directory / f".{FILE_NAME}.tmp"
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                with open(self.file, "rb") as source:
                    source.seek(start)
                    remaining = self._bytes - start
                    while remaining > 0:
                        block = source.read(min(CHUNK_BYTES, remaining))
                        if not block:
                            raise self._corrupt(self._count + 1, self._bytes - remaining, "is missing: file shrank")
                        _write_all(fd, block)
                        remaining -= len(block)
                self._fsync(fd)
            finally:
                os.close(fd)
            os.replace(temporary, self.file)
            self._fsync_directory()
            self._count -= count
            self._bytes -= start

    # -------------------------------------------------------------------------------------- reads

    def read(self) -> list[Fill | Mark]:
        """The intact records in append order; a torn last line is ignored and reported."""
        return self.scan().fills

    def scan(self) -> BufferScan:
        """Read the whole file: intact records, and what torn tail was ignored (logged as a warning)."""
        fills: list[Fill | Mark] = []
        with self._lock:
            result = self._walk(fills.append)
        return BufferScan(fills, *result)

    def batches(self, size: int) -> Iterator[list[Fill | Mark]]:
        """The intact records in append order, ``size`` at a time, read from the file in chunks.

        Raises :class:`DiskBufferCorruptError` on damage, possibly after earlier batches were handed
        out (each of them intact: sending them is never wrong, as every write is idempotent)."""
        if size < 1:
            raise ValueError(f"batch size must be at least 1, got {size}")
        self._open()
        acknowledged, seen = self._count, 0
        batch: list[Fill | Mark] = []
        for _, _, record, _ in self._records():
            seen += 1
            batch.append(record)
            if len(batch) >= size:
                yield batch
                batch = []
        if batch:
            yield batch
        if seen < acknowledged:
            raise self._corrupt(seen + 1, 0, f"is missing: the file holds {seen} intact record(s), "
                                f"{acknowledged} were acknowledged")  # fmt: skip

    def __len__(self) -> int:
        with self._lock:
            self._open()
            return self._count

    def stats(self) -> BufferStats:
        try:
            size = self.file.stat().st_size
        except FileNotFoundError:
            size = 0
        return BufferStats(
            appended=self._appended, appended_bytes=self._appended_bytes, fsyncs=self._fsyncs, records=len(self),
            file_bytes=size, torn_lines=self._torn_lines,
        )  # fmt: skip

    # ---------------------------------------------------------------------------------- internals

    def _open(self, *, cut_torn_tail: bool = False) -> None:
        """Scan the file once (streaming) for its count, length and next sequence number; before an
        append, cut a torn tail off."""
        if not self._opened:
            self._walk(None, check_acknowledged=False)
        if cut_torn_tail and self._torn_bytes:
            os.truncate(self.file, self._bytes)
            fd = os.open(self.file, os.O_WRONLY)
            try:
                self._fsync(fd)
            finally:
                os.close(fd)
            log.warning("disk buffer %s: cut off a torn tail of %d byte(s)", self.file, self._torn_bytes)
            self._torn_bytes = 0

    def _walk(self, sink, *, check_acknowledged: bool = True) -> tuple[int, int, int]:
        """Stream every record to ``sink``; update the in-memory description; returns
        (valid bytes, torn lines, torn bytes). Raises if fewer records are there than were acknowledged."""
        count, end, last_seq = 0, 0, None
        tail: tuple[int, int] | None = None  # (line, byte length) of a torn tail
        for item in self._records(with_tail=True):
            if item[2] is None:
                tail = (item[0], item[1])
                continue
            count, end, last_seq = item[0], item[1], item[3]
            if sink is not None:
                sink(item[2])
        if check_acknowledged and self._opened and count < self._count:
            raise self._corrupt(
                count + 1, end,
                f"is missing: the file holds {count} intact record(s) ({end} bytes), "
                f"{self._count} ({self._bytes} bytes) were acknowledged",
            )  # fmt: skip
        torn_bytes = tail[1] if tail else 0
        if tail:
            self._torn_lines += 1
            log.warning(
                "disk buffer %s: ignored a torn last line (line %d, byte %d, %d byte(s)) after %d intact record(s)",
                self.file, tail[0], end, torn_bytes, count,
            )  # fmt: skip
        self._count, self._bytes, self._torn_bytes, self._opened = count, end, torn_bytes, True
        self._next_seq = max(self._next_seq, last_seq + 1 if last_seq is not None else 0)
        return end, int(tail is not None), torn_bytes

    def _records(self, *, with_tail: bool = False) -> Iterator:
        """(line number, end offset, record, seq) per intact record; with ``with_tail``, a torn tail
        as (line number, its byte length, None, None). Raises on any other damage."""
        expected: int | None = None
        for number, offset, line, terminated in _lines(self.file):
            decoded = _decode(line)
            if not terminated:
                if _holds_a_record(line):
                    raise self._corrupt(number, offset, "is an intact record whose newline is damaged")
                if with_tail:
                    yield number, len(line), None, None
                return
            if isinstance(decoded, str):
                raise self._corrupt(number, offset, f"is damaged ({decoded})")
            seq, record = decoded
            if expected is not None and seq != expected:
                raise self._corrupt(number, offset, f"has sequence number {seq}, expected {expected}: "
                                    "a record is missing or repeated")  # fmt: skip
            expected = seq + 1
            yield number, offset + len(line) + 1, record, seq

    def _offset_of(self, count: int) -> int:
        """The byte offset where record ``count`` (0-based) starts."""
        if count == 0:
            return 0
        for number, end, _, _ in self._records():
            if number == count:
                return end
        raise self._corrupt(count, 0, f"is missing: the file holds fewer than the {self._count} acknowledged")

    def _corrupt(self, line: int, offset: int, reason: str) -> DiskBufferCorruptError:
        return DiskBufferCorruptError(self.file, line, offset, reason)

    def _fsync(self, fd: int) -> None:
        os.fsync(fd)
        self._fsyncs += 1

    def _fsync_directory(self) -> None:
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            self._fsync(fd)
        finally:
            os.close(fd)


def _lines(file: Path) -> Iterator[tuple[int, int, bytes, bool]]:
    """(line number from 1, byte offset, line without newline, terminated) of ``file``, read in chunks."""
    try:
        source = open(file, "rb")  # noqa: SIM115 - closed below, also when the caller stops early
    except FileNotFoundError:
        return
    with source:
        carry, offset, number = b"", 0, 0
        while block := source.read(CHUNK_BYTES):
            data = carry + block
            position = 0
            while (end := data.find(b"\n", position)) != -1:
                number += 1
                yield number, offset + position, data[position:end], True
                position = end + 1
            offset += position
            carry = data[position:]
            if len(carry) > MAX_LINE_BYTES:
                raise DiskBufferCorruptError(
                    file, number + 1, offset, f"runs over {MAX_LINE_BYTES} bytes without a newline"
                )
        if carry:
            yield number + 1, offset, carry, False


def _decode(line: bytes) -> tuple[int, Fill | Mark] | str:
    """(seq, record) of one line without its newline, or the reason it is damaged."""
    if len(line) <= _HEAD + len(_SUFFIX) or not line.startswith(_PREFIX) or not line.endswith(_SUFFIX):
        return "not a record line"
    if line[_HEAD - len(_AFTER_CRC) : _HEAD] != _AFTER_CRC:
        return "not a record line"
    data = line[_HEAD : -len(_SUFFIX)]
    if line[len(_PREFIX) : _HEAD - len(_AFTER_CRC)] != b"%08x" % zlib.crc32(data):
        return "checksum mismatch"
    try:
        parsed = json.loads(b"{" + data + b"}")
        seq = _typed(parsed.pop("seq"), int)
        ((kind, body),) = parsed.items()
        if kind == "mark":
            return seq, Mark(
                run_id=_typed(body["run_id"], str), ts_ns=_typed(body["ts_ns"], int),
                equity=Decimal(_typed(body["equity"], str)),
            )  # fmt: skip
        if kind != "fill":
            return f"unknown record kind {kind!r}"
        return seq, Fill(
            **{name: _typed(body[name], str) for name in _STR_FIELDS},
            **{name: _typed(body[name], int) for name in _INT_FIELDS},
            **{name: Decimal(_typed(body[name], str)) for name in _DECIMAL_FIELDS},
        )
    except (ValueError, KeyError, TypeError, ArithmeticError) as err:
        return f"unreadable record: {err}"


def _holds_a_record(line: bytes) -> bool:
    """Whether an unterminated last line starts with a whole record followed by more bytes.

    A write cut short leaves a prefix of one record line: at most the whole record without its
    newline. A whole record followed by anything else is an acknowledged line whose newline was
    damaged (perhaps with the torn start of a later append glued on), never a crash artefact."""
    end = line.find(_SUFFIX)
    while end != -1 and end + 1 < len(line):
        if not isinstance(_decode(line[: end + 1]), str):
            return True
        end = line.find(_SUFFIX, end + 1)
    return False


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _typed(value: object, kind: type) -> object:
    if type(value) is not kind:
        raise TypeError(f"expected {kind.__name__}, got {value!r}")
    return value
