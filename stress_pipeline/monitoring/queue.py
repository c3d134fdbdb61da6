"""The durable alert queue: alerts that were raised but not yet delivered, kept on disk in order.

An alert raised while the path to PagerDuty is slow or down must not be lost when the process dies,
and must go out once, in the order it was raised, when the path is back. So every alert is appended
to ``alerts.jsonl`` in the directory the caller passes (by convention ``STRESS_HOME/alerts/<name>``)
and fsynced before :meth:`AlertQueue.put` returns; delivery appends an acknowledgement line for it.
The file is append-only between compactions; one JSON object per line, framed with a CRC of its
bytes::

    {"crc32":"5e1f09aa","rec":{"seq":7,"id":"9f...","at":1765000000.25,"event":{...}}}
    {"crc32":"0b7c1d42","rec":{"ack":7,"outcome":"delivered"}}

The events are stored without their routing key (the sender adds it when it posts), so the file holds
no credential; it is still created 0600 in a 0700 directory, since summaries name the system's parts.

Crash safety is the disk buffer's rule (:mod:`stress_pipeline.state.disk_buffer`), applied to
these records: an append that returned is on disk; a torn last line is an append that never
returned and is cut off when the queue opens; a damaged line followed by intact ones is corruption
and raises :class:`AlertQueueCorruptError` rather than losing an alert. (The disk buffer itself holds
typed fills and drops flushed ones by rewriting the file; alerts are acknowledged one by one, by
appending, so each delivery costs one small fsynced write.)

One process owns a queue at a time: an ``flock`` on ``alerts.lock``, released by the kernel when the
owner dies, so a new process can take over a killed one's queue at once. :meth:`AlertQueue.compact`
rewrites the file with only the pending alerts (temporary file, fsync, rename) when it has grown.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
import time
import uuid
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stress_pipeline.paths import private_dir

FILE_NAME = "alerts.jsonl"
LOCK_NAME = "alerts.lock"
DELIVERED, REJECTED = "delivered", "rejected"
OUTCOMES = (DELIVERED, REJECTED)
#: Acknowledged lines after which :meth:`AlertQueue.compact` is worth its rewrite.
COMPACT_AFTER = 256

_PREFIX = b'{"crc32":"'
_MIDDLE = b'","rec":'
_SUFFIX = b"}"
_CRC_LEN = 8

log = logging.getLogger(__name__)


class AlertQueueCorruptError(RuntimeError):
    """A damaged line sits before intact ones: not a torn tail, so no alert may be guessed away."""


class AlertQueueBusyError(RuntimeError):
    """Another live process owns this queue."""


@dataclass(frozen=True)
class QueuedAlert:
    """One alert in the queue: its position, a unique id, when it was raised and its event body."""

    seq: int
    alert_id: str
    enqueued_at: float  # time.time() when it was put
    event: Mapping[str, Any]  # the Events API v2 body without routing_key


class AlertQueue:
    """The pending alerts of one sender, durable in ``directory`` (created 0700 if missing)."""

    def __init__(self, directory: str | os.PathLike[str]):
        self.directory = Path(directory)
        self.file = self.directory / FILE_NAME
        private_dir(self.directory)
        self._mutex = threading.RLock()  # alerts are put by one thread and acknowledged by another
        self._lock_fd: int | None = _take_lock(self.directory / LOCK_NAME)
        try:
            self._pending: dict[int, QueuedAlert] = {}
            self._next_seq = 1
            self._acked_lines = 0
            self.torn_bytes = self._load()
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------------------------- public

    def put(self, event: Mapping[str, Any]) -> QueuedAlert:
        """Append ``event`` (a body without routing key) and fsync; once this returns it is on disk."""
        if "routing_key" in event:
            raise ValueError("the durable queue stores events without their routing key")
        with self._mutex:
            alert = QueuedAlert(self._next_seq, uuid.uuid4().hex, time.time(), dict(event))
            record = {"seq": alert.seq, "id": alert.alert_id, "at": alert.enqueued_at, "event": alert.event}
            self._append(encode_record(record))
            self._pending[alert.seq] = alert
            self._next_seq += 1
            return alert

    def ack(self, seq: int, outcome: str = DELIVERED) -> None:
        """Mark the pending alert ``seq`` done (``delivered``, or ``rejected`` for good) and fsync."""
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome {outcome!r}: expected one of {', '.join(OUTCOMES)}")
        with self._mutex:
            if seq not in self._pending:
                raise KeyError(f"alert {seq} is not pending in {self.file}")
            self._append(encode_record({"ack": seq, "outcome": outcome}))
            del self._pending[seq]
            self._acked_lines += 1

    def pending(self) -> list[QueuedAlert]:
        """The undelivered alerts, oldest first."""
        with self._mutex:
            return [self._pending[seq] for seq in sorted(self._pending)]

    def head(self) -> QueuedAlert | None:
        """The oldest undelivered alert (None when the queue is empty)."""
        with self._mutex:
            return self._pending[min(self._pending)] if self._pending else None

    def __len__(self) -> int:
        return len(self._pending)

    def compact(self, *, force: bool = False) -> bool:
        """Rewrite the file with only the pending alerts once enough were acknowledged; True if done."""
        with self._mutex:
            if not force and self._acked_lines < COMPACT_AFTER:
                return False
            self._rewrite()
            return True

    def close(self) -> None:
        """Release the queue to another process (what a crash does too)."""
        with self._mutex:
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None

    def __enter__(self) -> AlertQueue:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---------------------------------------------------------------------------------- internals

    def _rewrite(self) -> None:
        lines = [encode_record({"next": self._next_seq})]
        for alert in self.pending():
            lines.append(encode_record({"seq": alert.seq, "id": alert.alert_id, "at": alert.enqueued_at,
                                        "event": alert.event}))  # fmt: skip
        temporary = self.directory / f".{FILE_NAME}.tmp"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            _write_all(fd, b"".join(lines))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, self.file)
        _fsync_directory(self.directory)
        self._acked_lines = 0

    def _append(self, data: bytes) -> None:
        if self._lock_fd is None:
            raise RuntimeError(f"the alert queue {self.file} is closed")
        created = not self.file.exists()
        fd = os.open(self.file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        if created:
            _fsync_directory(self.directory)

    def _load(self) -> int:
        """Read the file into memory; cut a torn tail off. Returns the bytes cut."""
        try:
            content = self.file.read_bytes()
        except FileNotFoundError:
            return 0
        records, valid_bytes = scan_records(content, self.file)
        for record in records:
            if "next" in record:
                self._next_seq = max(self._next_seq, int(record["next"]))
            elif "ack" in record:
                self._pending.pop(int(record["ack"]), None)
                self._acked_lines += 1
            else:
                alert = QueuedAlert(int(record["seq"]), str(record["id"]), float(record["at"]), record["event"])
                self._pending[alert.seq] = alert
                self._next_seq = max(self._next_seq, alert.seq + 1)
        torn = len(content) - valid_bytes
        if torn:
            os.truncate(self.file, valid_bytes)
            fd = os.open(self.file, os.O_WRONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            log.warning("alert queue %s: cut off a torn tail of %d byte(s)", self.file, torn)
        return torn


def encode_record(record: Mapping[str, Any]) -> bytes:
    """One queue line, newline included."""
    data = json.dumps(record, sort_keys=True, separators=(",", ":")).encode()
    return b"%s%08x%s%s%s\n" % (_PREFIX, zlib.crc32(data), _MIDDLE, data, _SUFFIX)


def decode_record(line: bytes) -> dict[str, Any] | None:
    """The record of one line (without its newline), or None when the line is damaged."""
    head = len(_PREFIX) + _CRC_LEN + len(_MIDDLE)
    if len(line) <= head or not line.startswith(_PREFIX) or not line.endswith(_SUFFIX):
        return None
    if line[len(_PREFIX) + _CRC_LEN : head] != _MIDDLE:
        return None
    data = line[head : -len(_SUFFIX)]
    try:
        if int(line[len(_PREFIX) : len(_PREFIX) + _CRC_LEN], 16) != zlib.crc32(data):
            return None
        record = json.loads(data)
    except ValueError:
        return None
    return record if isinstance(record, dict) and _well_formed(record) else None


def scan_records(content: bytes, file: Path) -> tuple[list[dict[str, Any]], int]:
    """The intact records of ``content`` and the length of its intact prefix."""
    records: list[dict[str, Any]] = []
    valid_bytes, damaged_at, offset = 0, None, 0
    while offset < len(content):
        end = content.find(b"\n", offset)
        stop = end if end != -1 else len(content)
        record = decode_record(content[offset:stop]) if end != -1 else None
        if record is None:
            damaged_at = offset if damaged_at is None else damaged_at
        elif damaged_at is not None:
            raise AlertQueueCorruptError(f"alert queue {file}: damaged line at byte {damaged_at} before intact ones")
        else:
            records.append(record)
            valid_bytes = end + 1
        offset = stop + 1
    return records, valid_bytes


def _well_formed(record: dict[str, Any]) -> bool:
    if "next" in record:
        return isinstance(record["next"], int)
    if "ack" in record:
        return isinstance(record["ack"], int) and record.get("outcome") in OUTCOMES
    return (isinstance(record.get("seq"), int) and isinstance(record.get("id"), str)
            and isinstance(record.get("at"), (int, float)) and isinstance(record.get("event"), dict))  # fmt: skip


def _take_lock(path: Path) -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise AlertQueueBusyError(f"the alert queue in {path.parent} is owned by another live process") from None
    return fd


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
