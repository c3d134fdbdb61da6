"""The embedded alert receiver as a service: started once per STRESS_HOME, shared, stopped on request.

When no PagerDuty endpoint is configured, alerts go to the project's own receiver
(:mod:`stress_pipeline.monitoring.receiver`), which records into the ledger database. Like the
embedded PostgreSQL and Redis it must outlive the process that started it (the CLI, a run worker,
a test), so it runs as its own process in a new session, and its URL and pid are written to
``services/alert_receiver/receiver.json`` for every later process to find. Layout::

    services/alert_receiver/receiver.json   url, pid, port, schema, database (masked), log, start time
    services/alert_receiver/services.lock   flock()ed around every start and stop (the embedded servers' lock)
    services/alert_receiver/receiver.log    the receiver's log (appended to on every start)

A recorded receiver counts as running only if its pid is alive, is our receiver (a Python process
running the receiver module with its working directory in this folder) and ``GET /health``
answers. A dead one is started again, on the same port when that port is still free, so a sender's
configured URL keeps working. The database URL reaches the child on its standard input, never on
its command line.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from stress_pipeline.monitoring.alert_store import DEFAULT_SCHEMA
from stress_pipeline.monitoring.delivery import Endpoint
from stress_pipeline.monitoring.receiver import ENQUEUE_PATH, HEALTH_PATH, HOST
from stress_pipeline.paths import StoragePaths, private_dir
from stress_pipeline.services.errors import ServiceStartError
from stress_pipeline.services.launch import free_port, log_since, log_size, now, tail
from stress_pipeline.services.processes import pid_alive, send_signal, wait_gone
from stress_pipeline.services.state_file import ServiceLayout, locked
from stress_pipeline.services.urls import mask_url

NAME = "Alert receiver"
#: The routing key alerts carry to the embedded receiver when none is configured: it only tells this
#: project's integration apart in the receiver's tables (which keep a digest of it, never the key).
LOCAL_ROUTING_KEY = "stress-pipeline-local-receiver00"
MODULE = "stress_pipeline.monitoring.receiver"
#: Seconds the receiver may take to migrate its tables and answer.
START_TIMEOUT = 30.0


@dataclass(frozen=True)
class ReceiverRecord:
    """The running receiver, as written to ``receiver.json``."""

    url: str  # the Events API v2 endpoint
    pid: int
    port: int
    schema: str
    database: str  # masked
    log_file: str
    started_at: str


def ensure_receiver(
    home: Path, database_url: str, *, schema: str = DEFAULT_SCHEMA, timeout: float = START_TIMEOUT
) -> ReceiverRecord:
    """The receiver of STRESS_HOME ``home`` recording into ``database_url``: reused when it runs and
    answers, otherwise started (again)."""
    folder = StoragePaths(Path(home)).alert_receiver
    with locked(ServiceLayout(folder)):
        previous = read_record(home)
        same = previous is not None and (previous.schema, previous.database) == (schema, mask_url(database_url))
        if same and is_receiver(previous.pid, folder) and answers(previous.url, timeout=2.0):
            return previous
        if previous and is_receiver(previous.pid, folder):
            _terminate(previous.pid)
        record = _start(folder, database_url, schema, previous.port if previous else None, timeout)
        _write_record(folder, record)
        return record


def alert_endpoint(
    home: Path, database_url: str, url: str | None = None, routing_key: str | None = None
) -> Endpoint:  # fmt: skip
    """Where alerts go: the configured Events API v2 ``url`` (a real PagerDuty URL works unchanged) with
    its ``routing_key``, or by default the embedded receiver of ``home`` (started if needed)."""
    if url:
        if not routing_key:
            raise ValueError(f"alert url {mask_url(url)!r} is configured without a routing key "
                             "(STRESS_ALERT_ROUTING_KEY)")  # fmt: skip
        return Endpoint(url, routing_key)
    return Endpoint(ensure_receiver(home, database_url).url, routing_key or LOCAL_ROUTING_KEY)


def stop_receiver(home: Path) -> bool:
    """Stop the receiver of ``home``; True if one was running."""
    folder = StoragePaths(Path(home)).alert_receiver
    if not folder.is_dir():
        return False
    with locked(ServiceLayout(folder)):
        record = read_record(home)
        running = record is not None and is_receiver(record.pid, folder)
        if running:
            _terminate(record.pid)
        (folder / "receiver.json").unlink(missing_ok=True)
    return running


def receiver_status(home: Path) -> dict[str, Any]:
    """One row in the shape of :func:`stress_pipeline.services.service_status`'s rows."""
    folder = StoragePaths(Path(home)).alert_receiver
    record = read_record(home)
    if record is None:
        return _row(None, None, False, f"not running (log in {folder / 'receiver.log'})")
    if not is_receiver(record.pid, folder):
        return _row(record.url, None, False, f"not running (recorded pid {record.pid} is gone)")
    if not answers(record.url, timeout=2.0):
        return _row(record.url, record.pid, False, f"pid {record.pid} does not answer {HEALTH_PATH}")
    return _row(record.url, record.pid, True, f"running since {record.started_at}, schema {record.schema}")


def read_record(home: Path) -> ReceiverRecord | None:
    """The recorded receiver of ``home`` (None when none was started, or the record is damaged)."""
    try:
        raw = json.loads((StoragePaths(Path(home)).alert_receiver / "receiver.json").read_text())
        return ReceiverRecord(**raw)
    except (OSError, ValueError, TypeError):
        return None


def answers(url: str, *, timeout: float) -> bool:
    """Whether the receiver behind the enqueue ``url`` answers ``GET /health`` with 200."""
    health = url.removesuffix(ENQUEUE_PATH) + HEALTH_PATH
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(health, timeout=timeout) as answer:
            return answer.status == 200
    except (urllib.error.URLError, OSError):
        return False


def is_receiver(pid: int, folder: Path) -> bool:
    """True if ``pid`` is a live receiver process working in ``folder`` (not a reused pid)."""
    if not pid_alive(pid):
        return False
    if not Path("/proc/self").exists():
        return True
    try:
        cwd = os.readlink(f"/proc/{pid}/cwd")
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return cwd == os.path.realpath(folder) and MODULE.encode() in command


#: How long a restart waits for the previous receiver's port to be released (a process killed a moment
#: ago may still be exiting) before it takes another port.
PORT_RELEASE_S = 3.0


def _start(folder: Path, database_url: str, schema: str, preferred: int | None, timeout: float) -> ReceiverRecord:
    private_dir(folder)
    log = folder / "receiver.log"
    offset = log_size(log)
    port = free_port(preferred)
    released = time.monotonic() + PORT_RELEASE_S
    while preferred and port != preferred and time.monotonic() < released:  # a killed one may still hold it
        time.sleep(0.05)
        port = free_port(preferred)
    config = {"database_url": database_url, "schema": schema, "host": HOST, "port": port}
    with open(log, "ab") as out:
        os.chmod(log, 0o600)
        child = subprocess.Popen(
            [sys.executable, "-m", MODULE], stdin=subprocess.PIPE, stdout=out, stderr=subprocess.STDOUT,
            cwd=folder, start_new_session=True, close_fds=True,
        )  # fmt: skip
    assert child.stdin is not None
    child.stdin.write(json.dumps(config).encode())
    child.stdin.close()
    url = f"http://{HOST}:{port}{ENQUEUE_PATH}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child.poll() is not None:
            cause = f"the receiver exited with code {child.returncode}"
            break
        if answers(url, timeout=1.0):
            return ReceiverRecord(url, child.pid, port, schema, mask_url(database_url), str(log), now())
        time.sleep(0.05)
    else:
        cause = f"the receiver did not answer {HEALTH_PATH} on port {port} within {timeout:.0f} s"
        _terminate(child.pid)
    raise ServiceStartError(NAME, cause, log_file=str(log), log_tail=tail(log_since(log, offset)))


def _terminate(pid: int, timeout: float = 10.0) -> None:
    send_signal(pid, signal.SIGTERM)
    if wait_gone([pid], timeout):
        send_signal(pid, signal.SIGKILL)
        wait_gone([pid], 5.0)


def _write_record(folder: Path, record: ReceiverRecord) -> None:
    """Replace the record atomically, so readers without the lock never see half of it."""
    target = folder / "receiver.json"
    temporary = folder / f".receiver.json.{os.getpid()}.tmp"
    temporary.write_text(json.dumps(asdict(record), indent=2) + "\n")
    os.replace(temporary, target)


def _row(url: str | None, pid: int | None, running: bool, message: str) -> dict[str, Any]:
    return {"name": NAME, "mode": "embedded", "url": url, "pid": pid, "running": running, "message": message}
