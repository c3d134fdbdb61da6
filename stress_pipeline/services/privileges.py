"""The user the embedded servers run as, and how that user reaches its data without wider permissions.

When this process is not root, the servers run as its own user. PostgreSQL refuses to run as root, so
when this process is root PostgreSQL and Redis run as the unprivileged system user ``pgserver``
(created if missing, the name the pgserver package uses too; Redis 6.2 lets an authenticated client
move its dump file anywhere with CONFIG SET, so it must not run as root either).

That user owns its data dirs (``services/postgres``, ``services/redis``, 0700) but is never given a
path to them: the services dir and STRESS_HOME above it stay private to the invoking user, and no
permission of any directory above them is changed. Instead each server command is started with its
data dir as working directory (entered while still root, before the user switch) and names that dir
only relatively (``.``, ``/proc/self/cwd``). The server programs themselves are run from the installed
wheels, which must be readable by other users, as package installs are by default;
:func:`~stress_pipeline.services.launch.run` says so clearly when they are not.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stress_pipeline.services.errors import ServiceUnavailableError, one_line

#: System user the servers run as when this process is root.
SERVICE_USER = "pgserver"
#: How a server command names its data dir: its own working directory, entered before the user switch.
#: The kernel resolves this link without checking the directories above, which stay private.
SELF_CWD = "/proc/self/cwd"


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


def prepare_dir(path: Path, run_as: RunAs, mode: int = 0o700) -> None:
    """Create ``path`` owned by the server user with ``mode``; its parents are not touched."""
    path.mkdir(mode=mode, exist_ok=True)
    run_as.chown(path)
    path.chmod(mode)
