"""The embedded PostgreSQL server: reuse it, start it (initdb on the first start) and stop it.

PostgreSQL has its own ways to go wrong that Redis does not share: a data dir half-initialised by a
killed initdb, a stale ``postmaster.pid`` after a crash or a reboot, orphaned backends holding the old
shared memory. Each start handles those here, then runs ``pg_ctl`` as the server user on a free port.
"""

from __future__ import annotations

import contextlib
import signal
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from stress_pipeline.services.connections import check_postgres
from stress_pipeline.services.errors import ServiceStartError
from stress_pipeline.services.launch import (
    HOST,
    PORT_ATTEMPTS,
    PortPicker,
    log_since,
    log_size,
    now,
    pgserver_libs_dir,
    postgres_bin_dir,
    run,
    tail,
)
from stress_pipeline.services.privileges import RunAs, grant_read_tree, prepare_dir, server_run_as
from stress_pipeline.services.processes import (
    ANSWER_GRACE,
    answers,
    processes_in,
    runs_in,
    send_signal,
    terminate,
    wait_gone,
)
from stress_pipeline.services.state_file import POSTGRES, ServerRecord, ServiceLayout

PG_USER = "postgres"
PG_DATABASE = "postgres"


def postgres_url(port: int) -> str:
    return f"postgresql://{PG_USER}@{HOST}:{port}/{PG_DATABASE}"


@dataclass(frozen=True)
class _PostmasterPid:
    """The first lines of PGDATA/postmaster.pid."""

    pid: int
    port: int | None
    status: str

    @classmethod
    def read(cls, pgdata: Path) -> _PostmasterPid | None:
        try:
            lines = (pgdata / "postmaster.pid").read_text().splitlines()
            pid = int(lines[0])
        except (OSError, ValueError, IndexError):
            return None
        port = int(lines[3]) if len(lines) > 3 and lines[3].strip().isdigit() else None
        status = lines[7].strip() if len(lines) > 7 else ""
        return cls(pid, port, status)


def _postgres_record(layout: ServiceLayout, pid: int, port: int, started_at: str | None) -> ServerRecord:
    return ServerRecord(
        name=POSTGRES,
        url=postgres_url(port),
        pid=pid,
        port=port,
        data_dir=str(layout.pgdata),
        log_file=str(layout.postgres_log),
        started_at=started_at or now(),
    )


def ensure_postgres(
    layout: ServiceLayout, previous: ServerRecord | None, timeout: float, *, free_port: PortPicker
) -> ServerRecord:
    """Reuse our running, answering postmaster, or (re)start one; return its record."""
    pgdata = layout.pgdata
    info = _PostmasterPid.read(pgdata)
    if info is not None and runs_in(info.pid, pgdata):
        port = info.port
        if port is not None and answers(check_postgres, postgres_url(port), info.pid, pgdata, ANSWER_GRACE):
            same = previous is not None and previous.pid == info.pid and previous.port == port
            return previous if same else _postgres_record(layout, info.pid, port, None)
        _stop_postmaster(layout, info.pid)  # ours but hung: restart it

    run_as = server_run_as()
    _prepare_postgres_files(layout, run_as)
    if not (pgdata / "PG_VERSION").exists():
        _initdb(layout, run_as, timeout)
    _clear_crash_leftovers(layout)
    return _start_postmaster(layout, run_as, previous.port if previous else None, timeout, free_port)


def _prepare_postgres_files(layout: ServiceLayout, run_as: RunAs) -> None:
    if run_as.uid is not None:
        grant_read_tree(postgres_bin_dir().parent)
        libs = pgserver_libs_dir()
        if libs.is_dir():
            grant_read_tree(libs)
    prepare_dir(layout.postgres_dir, run_as, 0o755)
    layout.postgres_log.touch(exist_ok=True)
    run_as.chown(layout.postgres_log)
    pgdata = layout.pgdata
    if pgdata.exists() and not (pgdata / "PG_VERSION").exists() and any(pgdata.iterdir()):
        # Left over by an initdb that was killed half-way: initdb needs an empty dir. Kept, not deleted.
        aside = pgdata.with_name(f"data.incomplete-{datetime.now(UTC):%Y%m%dT%H%M%S}")
        pgdata.rename(aside)
    prepare_dir(pgdata, run_as, 0o700)


def _initdb(layout: ServiceLayout, run_as: RunAs, timeout: float) -> None:
    cmd = [
        postgres_bin_dir() / "initdb",
        "-D",
        layout.pgdata,
        "--auth=trust",
        "-U",
        PG_USER,
        "--encoding=UTF8",
        "--locale=C",
    ]
    code, output = run(cmd, run_as, timeout=timeout, cwd=layout.postgres_dir)
    if code != 0:
        raise ServiceStartError(
            "PostgreSQL", f"initdb exited with code {code}", log_file="initdb output", log_tail=tail(output)
        )


def _clear_crash_leftovers(layout: ServiceLayout) -> None:
    """After a crash: remove a stale postmaster.pid and wait for (then kill) orphaned backends.

    PostgreSQL removes a stale postmaster.pid itself only if its pid is free; after a reboot the pid
    often belongs to another process, and backends that outlive a killed postmaster keep its shared
    memory attached. Both make the next start fail. Called only when no postmaster of ours runs.
    """
    pgdata = layout.pgdata
    orphans = processes_in(pgdata)
    if orphans:
        for pid in wait_gone(orphans, 3.0):
            send_signal(pid, signal.SIGKILL)
        wait_gone(orphans, 5.0)
    with contextlib.suppress(FileNotFoundError):
        (pgdata / "postmaster.pid").unlink()


def _start_postmaster(
    layout: ServiceLayout, run_as: RunAs, preferred: int | None, timeout: float, free_port: PortPicker
) -> ServerRecord:
    pg_ctl = postgres_bin_dir() / "pg_ctl"
    log = layout.postgres_log
    cause = "pg_ctl start failed"
    output = ""
    for _attempt in range(PORT_ATTEMPTS):
        port = free_port(preferred)
        offset = log_size(log)
        started_at = now()
        cmd = [
            pg_ctl,
            "-D",
            layout.pgdata,
            "-l",
            log,
            "-w",
            "-t",
            str(max(1, int(timeout))),
            "-o",
            f"-h {HOST} -p {port} -k ''",
            "start",
        ]
        code, output = run(cmd, run_as, timeout=timeout + 10, cwd=layout.postgres_dir)
        info = _PostmasterPid.read(layout.pgdata)
        if code == 0 and info is not None and runs_in(info.pid, layout.pgdata):
            if answers(check_postgres, postgres_url(port), info.pid, layout.pgdata, ANSWER_GRACE):
                return _postgres_record(layout, info.pid, port, started_at)
            cause = f"the server started (pid {info.pid}) but does not answer on port {port}"
        else:
            cause = f"pg_ctl start exited with code {code}"
        if info is not None and runs_in(info.pid, layout.pgdata):
            _stop_postmaster(layout, info.pid)
        logged = log_since(log, offset)
        if "Address already in use" in logged or "could not bind" in logged:
            preferred = None  # somebody took the port between the check and the bind: pick another
            continue
        if "pre-existing shared memory block" in logged:
            time.sleep(0.5)
            _clear_crash_leftovers(layout)
            continue
        break
    log_tail = tail(log_since(log, offset)) or tail(output)
    raise ServiceStartError("PostgreSQL", cause, log_file=str(log), log_tail=log_tail)


def _stop_postmaster(layout: ServiceLayout, pid: int) -> None:
    """Stop our postmaster: pg_ctl fast shutdown, then SIGQUIT (immediate), then SIGKILL."""
    pg_ctl = postgres_bin_dir() / "pg_ctl"
    cmd = [pg_ctl, "-D", layout.pgdata, "-m", "fast", "-w", "-t", "30", "stop"]
    run(cmd, server_run_as(), timeout=40, cwd=layout.postgres_dir)
    if runs_in(pid, layout.pgdata):
        terminate(pid, layout.pgdata, timeout=5.0, sig=signal.SIGQUIT)
    _clear_crash_leftovers(layout)


def stop_postgres(layout: ServiceLayout, record: ServerRecord | None) -> bool:
    """Stop our postmaster (found from postmaster.pid or the record); True if one was running."""
    info = _PostmasterPid.read(layout.pgdata)
    pids = {pid for pid in (info.pid if info else None, record.pid if record else None) if pid}
    running = [pid for pid in pids if runs_in(pid, layout.pgdata)]
    for pid in running:
        _stop_postmaster(layout, pid)
    return bool(running)
