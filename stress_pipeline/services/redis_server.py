"""The embedded Redis server: reuse it, start it from a freshly written redis.conf and stop it.

Redis daemonizes itself and writes its pid file a little after it answers, so a start asks the server
for its pid and checks it works in our dir before trusting it: whatever answers on the port might be
another server that took the port first.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

import redis

from stress_pipeline.services.connections import check_redis
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
from stress_pipeline.services.privileges import RunAs, grant_read_tree, prepare_dir, server_run_as
from stress_pipeline.services.processes import ANSWER_GRACE, answers, runs_in, terminate
from stress_pipeline.services.state_file import REDIS, ServerRecord, ServiceLayout

#: ``redis_conf``'s signature: the contents of redis.conf for a layout and a port.
ConfRenderer = Callable[[ServiceLayout, int], str]


def redis_url(port: int) -> str:
    return f"redis://{HOST}:{port}/0"


def _redis_record(layout: ServiceLayout, pid: int, port: int, started_at: str | None) -> ServerRecord:
    return ServerRecord(
        name=REDIS,
        url=redis_url(port),
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
    """Reuse our running, answering redis-server, or (re)start one; return its record."""
    workdir = layout.redis_dir
    candidates = [previous.pid] if previous else []
    pidfile_pid = _read_pidfile(layout.redis_pidfile)
    if pidfile_pid and pidfile_pid not in candidates:
        candidates.append(pidfile_pid)
    for pid in candidates:
        if not runs_in(pid, workdir):
            continue
        port = previous.port if previous and previous.pid == pid else _redis_port_of(pid)
        if port is not None and answers(check_redis, redis_url(port), pid, workdir, ANSWER_GRACE):
            same = previous is not None and previous.pid == pid and previous.port == port
            return previous if same else _redis_record(layout, pid, port, None)
        terminate(pid, workdir)

    run_as = server_run_as()
    if run_as.uid is not None:
        grant_read_tree(redis_server_bin().parent)
    prepare_dir(workdir, run_as, 0o700)
    layout.redis_pidfile.unlink(missing_ok=True)
    return _start_redis(layout, run_as, previous.port if previous else None, timeout, free_port, render_conf)


def redis_conf(layout: ServiceLayout, port: int) -> str:
    def quoted(path: Path) -> str:
        return '"' + str(path).replace("\\", "\\\\").replace('"', '\\"') + '"'

    return "\n".join(
        [
            "# Written by stress_pipeline on every start of the embedded Redis; edits are overwritten.",
            f"bind {HOST}",
            f"port {port}",
            "protected-mode yes",
            "daemonize yes",
            f"dir {quoted(layout.redis_dir)}",
            f"pidfile {quoted(layout.redis_pidfile)}",
            f"logfile {quoted(layout.redis_log)}",
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
) -> ServerRecord:
    log = layout.redis_log
    cause = "redis-server did not start"
    output = ""
    offset = 0
    for _attempt in range(PORT_ATTEMPTS):
        port = free_port(preferred)
        layout.redis_conf.write_text(render_conf(layout, port))
        run_as.chown(layout.redis_conf)
        offset = log_size(log)
        started_at = now()
        code, output = run([redis_server_bin(), layout.redis_conf], run_as, timeout=30, cwd=layout.redis_dir)
        if code != 0:
            cause = f"redis-server exited with code {code}"
            break
        url = redis_url(port)
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
                return _redis_record(layout, pid, port, started_at)
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
