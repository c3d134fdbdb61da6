"""Is a pid one of our embedded servers, and how to stop it safely.

A recorded pid proves nothing on its own: the server may have died, or after a reboot the pid may
belong to an unrelated process. Before a pid is trusted, signalled or its pid file removed, it must be
alive, be a ``postgres`` or ``redis-server`` program and work in our data dir (``/proc/<pid>/cwd``).
Both servers need the same checks, so they live here rather than in either server's module.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from stress_pipeline.services.errors import ServiceUnavailableError

#: Seconds a live server of ours gets to answer before it is considered hung and restarted.
ANSWER_GRACE = 5.0

_SERVER_PROGRAMS = frozenset({"postgres", "redis-server"})


def pid_alive(pid: int) -> bool:
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


def runs_in(pid: int, workdir: Path) -> bool:
    """True if ``pid`` is a live server process of ours: a ``postgres`` or ``redis-server`` program
    whose working directory is ``workdir``.

    Both servers chdir into their data dir, so this tells our server from an unrelated process that
    got the recorded pid after a reboot (or a shell that happens to sit in the data dir), before it
    is signalled or its pid file removed. Without /proc (not Linux) only liveness is checked.
    """
    if not pid_alive(pid):
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


def processes_in(workdir: Path) -> list[int]:
    """Live server processes (postmaster, backends, redis-server) working in ``workdir`` (Linux only)."""
    target = os.path.realpath(workdir)
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        if entry.name.isdigit() and _is_server_in(entry, target) and pid_alive(int(entry.name)):
            found.append(int(entry.name))
    return found


def wait_gone(pids: Iterable[int], timeout: float) -> list[int]:
    """Wait until the processes have exited; return those still alive after ``timeout``."""
    deadline = time.monotonic() + timeout
    alive = [pid for pid in pids if pid_alive(pid)]
    while alive and time.monotonic() < deadline:
        time.sleep(0.05)
        alive = [pid for pid in alive if pid_alive(pid)]
    return alive


def send_signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def terminate(pid: int, workdir: Path, timeout: float = 10.0, sig: int = signal.SIGTERM) -> None:
    """Send ``sig`` to our server ``pid`` (only if it still runs in ``workdir``), then SIGKILL if needed."""
    if not runs_in(pid, workdir):
        return
    send_signal(pid, sig)
    if wait_gone([pid], timeout):
        send_signal(pid, signal.SIGKILL)
        wait_gone([pid], 5.0)


def answers(check: Callable[[str, float], None], url: str, pid: int, workdir: Path, grace: float) -> bool:
    """Poll ``check(url)`` for up to ``grace`` seconds while ``pid`` keeps running in ``workdir``."""
    deadline = time.monotonic() + grace
    while True:
        try:
            check(url, min(2.0, grace))
            return True
        except ServiceUnavailableError:
            if time.monotonic() >= deadline or not runs_in(pid, workdir):
                return False
            time.sleep(0.1)
