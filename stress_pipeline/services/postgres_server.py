"""The embedded PostgreSQL server: reuse it, start it (initdb on the first start) and stop it.

PostgreSQL has its own ways to go wrong that Redis does not share: a data dir half-initialised by a
killed initdb, a stale ``postmaster.pid`` after a crash or a reboot, orphaned backends holding the old
shared memory. Each start handles those here, then runs ``pg_ctl`` as the server user on a free port.

Every connection needs the generated password (SCRAM-SHA-256, see
:mod:`~stress_pipeline.services.credentials`): initdb gets only its SCRAM verifier, from a 0600 file
deleted right after. A data dir made by an older version (``--auth=trust``) is migrated on its next
start: pg_hba.conf is rewritten to scram-sha-256 and the verifier is set in single-user mode, where no
client can connect. Every command runs in the data dir and names it ``/proc/self/cwd`` (see
:mod:`~stress_pipeline.services.privileges`).
"""

from __future__ import annotations

import contextlib
import signal
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from stress_pipeline.services.connections import check_postgres
from stress_pipeline.services.credentials import ensure_password, scram_verifier, write_private
from stress_pipeline.services.errors import ServiceStartError
from stress_pipeline.services.launch import (
    HOST,
    PORT_ATTEMPTS,
    PortPicker,
    log_since,
    log_size,
    now,
    postgres_bin_dir,
    run,
    tail,
)
from stress_pipeline.services.privileges import SELF_CWD, RunAs, prepare_dir, server_run_as
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
from stress_pipeline.services.urls import with_password

PG_USER = "postgres"
PG_DATABASE = "postgres"
#: Authentication method of every pg_hba.conf line.
AUTH_METHOD = "scram-sha-256"
#: pg_hba.conf of every data dir: a password for every connection (the server listens on TCP only).
PG_HBA = "\n".join(
    [
        "# Written by stress_pipeline: every connection authenticates with the generated password.",
        f"local all all {AUTH_METHOD}",
        f"host all all 127.0.0.1/32 {AUTH_METHOD}",
        f"host all all ::1/128 {AUTH_METHOD}",
        f"local replication all {AUTH_METHOD}",
        f"host replication all 127.0.0.1/32 {AUTH_METHOD}",
        f"host replication all ::1/128 {AUTH_METHOD}",
        "",
    ]
)
_PWFILE = "initdb.pwfile"


def postgres_url(port: int, password: str | None = None) -> str:
    """The server's URL; with ``password`` in it when given (never written to the state file)."""
    url = f"postgresql://{PG_USER}@{HOST}:{port}/{PG_DATABASE}"
    return url if password is None else with_password(url, password)


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


def _postgres_record(
    layout: ServiceLayout, pid: int, port: int, password: str, started_at: str | None
) -> ServerRecord:
    return ServerRecord(
        name=POSTGRES,
        url=postgres_url(port, password),
        pid=pid,
        port=port,
        data_dir=str(layout.pgdata),
        log_file=str(layout.postgres_log),
        started_at=started_at or now(),
    )


def ensure_postgres(
    layout: ServiceLayout, previous: ServerRecord | None, timeout: float, *, free_port: PortPicker
) -> ServerRecord:
    """Reuse our running, answering, password-protected postmaster, or (re)start one; return its record."""
    pgdata = layout.pgdata
    password, created = ensure_password(layout.secrets_dir, POSTGRES)
    info = _PostmasterPid.read(pgdata)
    if info is not None and runs_in(info.pid, pgdata):
        port = info.port
        url = postgres_url(port, password) if port is not None else ""
        if port is not None and hba_secured(pgdata) and answers(check_postgres, url, info.pid, pgdata, ANSWER_GRACE):
            same = previous is not None and (previous.pid, previous.port, previous.url) == (info.pid, port, url)
            return previous if same else _postgres_record(layout, info.pid, port, password, None)
        _stop_postmaster(layout, info.pid)  # ours but hung, without a password or with another one: restart it

    run_as = server_run_as()
    _prepare_postgres_files(layout, run_as)
    fresh = not (pgdata / "PG_VERSION").exists()
    if fresh:
        _initdb(layout, run_as, timeout, password)
    _clear_crash_leftovers(layout)
    if not fresh and (created or not hba_secured(pgdata)):
        _secure_existing(layout, run_as, timeout, password)
    return _start_postmaster(layout, run_as, previous.port if previous else None, timeout, free_port, password)


def hba_secured(pgdata: Path) -> bool:
    """True if every rule of ``pgdata``'s pg_hba.conf asks for a SCRAM password (no trust, peer, ident)."""
    try:
        lines = (pgdata / "pg_hba.conf").read_text().splitlines()
    except OSError:
        return False
    rules = [line.split("#", 1)[0].split() for line in lines]
    rules = [rule for rule in rules if rule]
    return bool(rules) and all(AUTH_METHOD in rule for rule in rules)


def _prepare_postgres_files(layout: ServiceLayout, run_as: RunAs) -> None:
    prepare_dir(layout.postgres_dir, run_as, 0o700)
    layout.postgres_log.touch(mode=0o600, exist_ok=True)
    run_as.chown(layout.postgres_log)
    layout.postgres_log.chmod(0o600)
    pgdata = layout.pgdata
    if pgdata.exists() and not (pgdata / "PG_VERSION").exists() and any(pgdata.iterdir()):
        # Left over by an initdb that was killed half-way: initdb needs an empty dir. Kept, not deleted.
        aside = pgdata.with_name(f"data.incomplete-{datetime.now(UTC):%Y%m%dT%H%M%S}")
        pgdata.rename(aside)
    prepare_dir(pgdata, run_as, 0o700)


def _initdb(layout: ServiceLayout, run_as: RunAs, timeout: float, password: str) -> None:
    """initdb with SCRAM authentication; the superuser's password is given as its SCRAM verifier."""
    pwfile = layout.postgres_dir / _PWFILE
    write_private(pwfile, scram_verifier(password) + "\n")
    run_as.chown(pwfile)
    cmd = [
        postgres_bin_dir() / "initdb",
        "-D",
        SELF_CWD,
        f"--auth={AUTH_METHOD}",
        f"--pwfile=../{_PWFILE}",
        "-U",
        PG_USER,
        "--encoding=UTF8",
        "--locale=C",
    ]
    try:
        code, output = run(cmd, run_as, timeout=timeout, cwd=layout.pgdata)
    finally:
        pwfile.unlink(missing_ok=True)
    if code != 0:
        raise ServiceStartError(
            "PostgreSQL", f"initdb exited with code {code}", log_file="initdb output", log_tail=tail(output)
        )
    write_private(layout.pgdata / "pg_hba.conf", PG_HBA)
    run_as.chown(layout.pgdata / "pg_hba.conf")


def _secure_existing(layout: ServiceLayout, run_as: RunAs, timeout: float, password: str) -> None:
    """Give an existing data dir the password and SCRAM-only pg_hba.conf (a trust-auth data dir of an
    older version, or a new password after secrets/ was lost). Runs the server in single-user mode,
    which listens nowhere, so no client connects before the password is in place."""
    cmd = [postgres_bin_dir() / "postgres", "--single", "-D", SELF_CWD, PG_DATABASE]
    sql = f"ALTER ROLE {PG_USER} WITH LOGIN PASSWORD '{scram_verifier(password)}'\n"
    code, output = run(cmd, run_as, timeout=timeout, cwd=layout.pgdata, stdin=sql)
    if code != 0 or "ERROR" in output:
        raise ServiceStartError(
            "PostgreSQL",
            f"setting the password of the existing data dir {layout.pgdata} failed (exit code {code}); "
            "move that dir away to start afresh",
            log_file="postgres --single output",
            log_tail=tail(output),
        )
    write_private(layout.pgdata / "pg_hba.conf", PG_HBA)
    run_as.chown(layout.pgdata / "pg_hba.conf")


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
    layout: ServiceLayout, run_as: RunAs, preferred: int | None, timeout: float, free_port: PortPicker, password: str
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
            SELF_CWD,
            "-l",
            f"../{log.name}",
            "-w",
            "-t",
            str(max(1, int(timeout))),
            "-o",
            f"-h {HOST} -p {port} -k ''",
            "start",
        ]
        code, output = run(cmd, run_as, timeout=timeout + 10, cwd=layout.pgdata)
        info = _PostmasterPid.read(layout.pgdata)
        if code == 0 and info is not None and runs_in(info.pid, layout.pgdata):
            if answers(check_postgres, postgres_url(port, password), info.pid, layout.pgdata, ANSWER_GRACE):
                return _postgres_record(layout, info.pid, port, password, started_at)
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
    cmd = [pg_ctl, "-D", SELF_CWD, "-m", "fast", "-w", "-t", "30", "stop"]
    run(cmd, server_run_as(), timeout=40, cwd=layout.pgdata)
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
