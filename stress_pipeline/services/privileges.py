"""The user the embedded servers run as, and the file permissions that user needs.

PostgreSQL refuses to run as root. When this process is root, PostgreSQL and Redis run as the
unprivileged system user ``pgserver`` (created if missing, the name the pgserver package uses too):
Redis 6.2 lets any client move its dump file anywhere with CONFIG SET, so it must not run as root either.
That user then needs to own its data dirs and to reach the wheels' binaries, which this module grants.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stress_pipeline.services.errors import ServiceUnavailableError, one_line

#: System user the servers run as when this process is root.
SERVICE_USER = "pgserver"


@dataclass(frozen=True)
class RunAs:
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


def server_run_as() -> RunAs:
    if os.geteuid() != 0:
        return RunAs()
    entry = _ensure_service_user()
    return RunAs(entry.pw_uid, entry.pw_gid)


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


def grant_read_tree(root: Path) -> None:
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


def prepare_dir(path: Path, run_as: RunAs, mode: int = 0o700) -> None:
    """Create ``path`` owned by the server user, reachable by it."""
    path.mkdir(parents=True, exist_ok=True)
    run_as.chown(path)
    path.chmod(mode)
    if run_as.uid is not None:
        _grant_traverse(path)
