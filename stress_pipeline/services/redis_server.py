"""The embedded Redis server: reuse it, start it from a freshly written redis.conf and stop it.

Redis daemonizes itself and writes its pid file a little after it answers, so a start asks the server
for its pid and checks it works in our dir before trusting it: whatever answers on the port might be
another server that took the port first.

Every client must authenticate: redis.conf (0600, rewritten on every start) gives the ``default`` user
the SHA-256 of the generated password (an ACL rule, so the password itself is not in the file) and
names the working dir and files relatively (the server runs in its dir, see
:mod:`~stress_pipeline.services.privileges`). A running server of an older version without a password
no longer answers the authenticated health check and is restarted with one.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from stress_pipeline.services.connections import check_redis
from stress_pipeline.services.credentials import ensure_password, write_private
from stress_pipeline.services.errors import ServiceStartError, ServiceUnavailableError
from stress_pipeline.services.launch import (
    HOST,
    PORT_ATTEMPTS,
    PortPicker,
    log_since,
    log_size,
    now,
    redis_server_bin,
    run,
    tail,
)
from stress_pipeline.services.privileges import SELF_CWD, RunAs, prepare_dir, server_run_as
from stress_pipeline.services.processes import ANSWER_GRACE, answers, runs_in, terminate
from stress_pipeline.services.state_file import REDIS, ServerRecord, ServiceLayout
from stress_pipeline.services.urls import with_password

#: ``redis_conf``'s signature: the contents of redis.conf for a layout, a port and the password.
ConfRenderer = Callable[[ServiceLayout, int, str], str]


def redis_url(port: int, password: str | None = None) -> str:
    """The server's URL; with ``password`` in it when given (never written to the state file)."""
    url = f"redis://{HOST}:{port}/0"
    return url if password is None else with_password(url, password)


def _redis_record(layout: ServiceLayout, pid: int, port: int, password: str, started_at: str | None) -> ServerRecord:
    return ServerRecord(
        name=REDIS,
        url=redis_url(port, password),
        pid=pid,
        port=port,
        data_dir=str(layout.redis_dir),
        log_file=str(layout.redis_log),
        started_at=started_at or now(),
    )


def _read_pidfile(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _redis_port_of(pid: int) -> int | None:
    """The port in a running redis-server's process title (``redis-server 127.0.0.1:6379``)."""
    try:
        title = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return None
    match = re.search(r"redis-server \S*:(\d+)", title)
    return int(match[1]) if match else None


def ensure_redis(
    layout: ServiceLayout,
    previous: ServerRecord | None,
    timeout: float,
    *,
    free_port: PortPicker,
    render_conf: ConfRenderer,
) -> ServerRecord:
    """Reuse our running, answering, password-protected redis-server, or (re)start one; return its record."""
    workdir = layout.redis_dir
    password, _created = ensure_password(layout.secrets_dir, REDIS)
    candidates = [previous.pid] if previous else []
    pidfile_pid = _read_pidfile(layout.redis_pidfile)
    if pidfile_pid and pidfile_pid not in candidates:
        candidates.append(pidfile_pid)
    for pid in candidates:
        if not runs_in(pid, workdir):
            continue
        port = previous.port if previous and previous.pid == pid else _redis_port_of(pid)
        url = redis_url(port, password) if port is not None else ""
        # A server without a password accepts any AUTH, so also ask it without one.
        if port is not None and answers(check_redis, url, pid, workdir, ANSWER_GRACE) and not _open_to_all(port):
            same = previous is not None and previous.pid == pid and previous.port == port and previous.url == url
            return previous if same else _redis_record(layout, pid, port, password, None)
        terminate(pid, workdir)

    run_as = server_run_as()
    prepare_dir(workdir, run_as, 0o700)
    layout.redis_pidfile.unlink(missing_ok=True)
    if layout.redis_log.exists():
        layout.redis_log.chmod(0o600)  # a log of an older version; new files get umask 077 (launch.run)
    return _start_redis(
        layout, run_as, previous.port if previous else None, timeout, free_port, render_conf, password
    )


def redis_conf(layout: ServiceLayout, port: int, password: str) -> str:
    """redis.conf: TCP on 127.0.0.1 only, every client authenticates as ``default`` with ``password``
    (stored as its SHA-256), files named relative to the working dir."""
    digest = hashlib.sha256(password.encode()).hexdigest()
    return "\n".join(
        [
            "# Written by stress_pipeline on every start of the embedded Redis; edits are overwritten.",
            f"bind {HOST}",
            f"port {port}",
            "protected-mode yes",
            "daemonize yes",
            "dir .",
            f"pidfile {layout.redis_pidfile.name}",
            f"logfile {layout.redis_log.name}",
            f"user default on resetpass #{digest} ~* &* +@all",
            'save ""',
            "appendonly no",
            "",
        ]
    )


def _start_redis(
    layout: ServiceLayout,
    run_as: RunAs,
    preferred: int | None,
    timeout: float,
    free_port: PortPicker,
    render_conf: ConfRenderer,
    password: str,
) -> ServerRecord:
    log = layout.redis_log
    cause = "redis-server did not start"
    output = ""
    offset = 0
    for _attempt in range(PORT_ATTEMPTS):
        port = free_port(preferred)
        write_private(layout.redis_conf, render_conf(layout, port, password))
        run_as.chown(layout.redis_conf)
        offset = log_size(log)
        started_at = now()
        conf = f"{SELF_CWD}/{layout.redis_conf.name}"
        code, output = run([redis_server_bin(), conf], run_as, timeout=30, cwd=layout.redis_dir)
        if code != 0:
            cause = f"redis-server exited with code {code}"
            break
        url = redis_url(port, password)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            logged = log_since(log, offset)
            if "Could not create server TCP listening socket" in logged or "# Fatal" in logged:
                break
            try:
                check_redis(url, 0.5)
                pid = _redis_pid(url)
            except (ServiceUnavailableError, redis.RedisError):
                time.sleep(0.02)
                continue
            # Whatever answers must be the server just started here, not one that took the port.
            if runs_in(pid, layout.redis_dir):
                return _redis_record(layout, pid, port, password, started_at)
            time.sleep(0.02)
        else:
            cause = f"redis-server did not answer PING on port {port} within {timeout:.0f} s"
            pid = _read_pidfile(layout.redis_pidfile)
            if pid:
                terminate(pid, layout.redis_dir)
            break
        if "Address already in use" in log_since(log, offset):
            preferred = None
            continue
        cause = "redis-server exited during startup"
        break
    log_tail = tail(log_since(log, offset)) or tail(output)
    raise ServiceStartError("Redis", cause, log_file=str(log), log_tail=log_tail)


def _open_to_all(port: int) -> bool:
    """True if the server on ``port`` answers PING without a password (an older version's server).

    One attempt, no retry: redis-py otherwise retries the expected authentication error with backoff,
    which cost every service lookup several seconds."""
    client = redis.Redis(
        host=HOST, port=port, socket_connect_timeout=2, socket_timeout=2, retry=Retry(NoBackoff(), 0)
    )
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def _redis_pid(url: str) -> int:
    """The server's own pid, asked from the server (the pid file is written a little later)."""
    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    try:
        return int(client.info("server")["process_id"])
    finally:
        client.close()


def stop_redis(layout: ServiceLayout, record: ServerRecord | None) -> bool:
    """Stop our redis-server (found from the record or redis.pid); True if one was running."""
    pids = {pid for pid in (record.pid if record else None, _read_pidfile(layout.redis_pidfile)) if pid}
    running = [pid for pid in pids if runs_in(pid, layout.redis_dir)]
    for pid in running:
        terminate(pid, layout.redis_dir)
    return bool(running)
