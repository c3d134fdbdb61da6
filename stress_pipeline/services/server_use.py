"""Who uses an embedded server, so that a run stopping it never pulls it from under another run.

Planned outages stop an embedded PostgreSQL or Redis for real. A live-state run with planned outages
uses a pair of its own (``services/outages/``, :meth:`Settings.for_planned_outages`), so the pair every
other run of this STRESS_HOME shares is only stopped by ``services stop``; runs with planned outages
share the outage pair among themselves. So a run that stops a server holds it *exclusively* for the
whole run, and a run that only uses one holds it *shared*: an outage waits (bounded) until no other run
uses the server, and a run that wants a server another run is stopping waits for that run to finish;
past the wait either fails with ``embedded PostgreSQL is in use by run Y``.

The lock is ``flock(2)`` on ``services/<server>.use`` (0600): the kernel releases it when its holder
dies, so a killed run never leaves a server locked. Who holds it is written next to it, one 0600 file
per holder in ``services/use/<server>/``, only to name the run in the message (files of dead holders
are ignored and removed). Within one process a server is locked once: nested uses share that lock,
and a process that uses a server shared cannot also stop it (it would wait for itself).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from stress_pipeline.services.credentials import PRIVATE_FILE_MODE, private_dir, write_private
from stress_pipeline.services.processes import pid_alive
from stress_pipeline.services.state_file import DISPLAY_NAMES, POSTGRES, REDIS, ServiceLayout, check_name
from stress_pipeline.settings import Settings

#: Seconds a run waits for a server another run holds before it fails.
USE_WAIT = 120.0
_POLL_S = 0.05


class ServerInUseError(RuntimeError):
    """A server could not be had within the wait: another run uses it (or stops it)."""

    def __init__(self, name: str, holders: list[dict[str, object]], wait: float, exclusive: bool) -> None:
        self.name = name
        self.holders = holders
        runs = ", ".join(f"{h.get('run_id')} (pid {h.get('pid')}, {h.get('mode')})" for h in holders) or "another run"
        verb = "stop" if exclusive else "use"
        super().__init__(
            f"embedded {DISPLAY_NAMES[name]} is in use by run {runs}: this run waited {wait:.0f} s to {verb} it; "
            "rerun when that run has finished, or give the runs different STRESS_HOMEs"
        )


@dataclass
class _Held:
    fd: int
    exclusive: bool
    count: int
    marker: Path


_held: dict[Path, _Held] = {}
_held_guard = threading.Lock()


def holders(layout: ServiceLayout, name: str) -> list[dict[str, object]]:
    """The live processes recorded as using server ``name`` (run id, pid, mode), oldest first."""
    folder = layout.root / "use" / check_name(name)
    found = []
    for path in sorted(folder.glob("*.json"), key=lambda p: p.stat().st_mtime if p.exists() else 0):
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(record.get("pid"), int) and pid_alive(record["pid"]):
            found.append(record)
        else:
            path.unlink(missing_ok=True)  # its holder died; the kernel already dropped its lock
    return found


def holds_exclusive(layout: ServiceLayout, name: str) -> bool:
    """True if this process holds server ``name`` exclusively (may stop it)."""
    held = _held.get(_lock_path(layout, name))
    return held is not None and held.exclusive


@contextlib.contextmanager
def server_use(
    layout: ServiceLayout,
    run_id: str,
    *,
    shared: Iterable[str] = (),
    exclusive: Iterable[str] = (),
    wait: float | None = None,
) -> Iterator[None]:
    """Hold the servers ``shared`` (used) and ``exclusive`` (stopped by this run) for the block.

    Locks are taken in one order (PostgreSQL, then Redis), so two runs never wait for each other.
    Raises ServerInUseError naming the run in the way after ``wait`` seconds (default USE_WAIT).
    """
    wait = USE_WAIT if wait is None else wait
    wanted = {check_name(name): False for name in shared}
    wanted.update({check_name(name): True for name in exclusive})
    taken: list[Path] = []
    try:
        for name in sorted(wanted):
            taken.append(_acquire(layout, name, run_id, wanted[name], wait))
        yield
    finally:
        for path in reversed(taken):
            _release(path)


def run_server_use(
    settings: Settings, run_id: str, stopped: Iterable[str] = (), *, wait: float | None = None
) -> contextlib.AbstractContextManager[None]:
    """The use a run makes of this STRESS_HOME's embedded servers: exclusive for those it stops
    (``stopped``), shared for the other ones. External servers (a URL set) are not locked: a run's
    outage of one goes through its own fault proxy."""
    layout = ServiceLayout.from_settings(settings)
    in_use = [name for name, url in ((POSTGRES, settings.postgres_url), (REDIS, settings.redis_url)) if url is None]
    stops = {check_name(name) for name in stopped}
    shared = [name for name in in_use if name not in stops]
    return server_use(layout, run_id, shared=shared, exclusive=[name for name in in_use if name in stops], wait=wait)


def outage_use(
    settings: Settings, name: str, *, wait: float | None = None
) -> contextlib.AbstractContextManager[None]:
    """What an outage of embedded server ``name`` needs: nothing more when this process's run already
    holds it exclusively, else the exclusive use for the outage itself."""
    layout = ServiceLayout.from_settings(settings)
    if holds_exclusive(layout, name):
        return contextlib.nullcontext()
    return server_use(layout, f"outage drill (pid {os.getpid()})", exclusive=[name], wait=wait)


def _lock_path(layout: ServiceLayout, name: str) -> Path:
    return layout.root / f"{check_name(name)}.use"


def _acquire(layout: ServiceLayout, name: str, run_id: str, exclusive: bool, wait: float) -> Path:
    path = _lock_path(layout, name)
    with _held_guard:
        held = _held.get(path)
        if held is not None:
            if exclusive and not held.exclusive:
                raise RuntimeError(
                    f"embedded {DISPLAY_NAMES[name]} is used (shared) by this process's run, which cannot also "
                    "stop it: a run that stops a server takes it exclusively from its start (run_server_use)"
                )
            held.count += 1
            return path
    private_dir(layout.root)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, PRIVATE_FILE_MODE)
    deadline = time.monotonic() + wait
    try:
        while True:
            try:
                fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise ServerInUseError(name, holders(layout, name), wait, exclusive) from None
                time.sleep(_POLL_S)
    except BaseException:
        os.close(fd)
        raise
    marker = private_dir(layout.root / "use" / name) / f"{os.getpid()}-{uuid.uuid4().hex[:8]}.json"
    mode = "stopping it" if exclusive else "using it"
    write_private(marker, json.dumps({"run_id": run_id, "pid": os.getpid(), "mode": mode}) + "\n")
    with _held_guard:
        _held[path] = _Held(fd, exclusive, 1, marker)
    return path


def _release(path: Path) -> None:
    with _held_guard:
        held = _held[path]
        held.count -= 1
        if held.count:
            return
        del _held[path]
    held.marker.unlink(missing_ok=True)
    os.close(held.fd)  # drops the flock


__all__ = ["USE_WAIT", "ServerInUseError", "holders", "holds_exclusive", "outage_use", "run_server_use", "server_use"]
