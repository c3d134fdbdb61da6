"""The generated passwords of the embedded servers, and the files and modes that keep them private.

The embedded PostgreSQL and Redis listen on 127.0.0.1, where every local user can reach them, so each
requires a password: a random one generated on the first start (``secrets.token_urlsafe``), kept in
``services/secrets/<server>.password`` (0600, in a 0700 dir owned by the user that runs the project).
Every project process reads it from there when it builds the server's URL; no other local user can.
The servers themselves never read these files: Redis gets the password in its 0600 redis.conf and
PostgreSQL stores only a SCRAM verifier (:func:`scram_verifier`), never the password itself.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from pathlib import Path

#: Mode of every private directory (services dir, secrets, buffers) and of every private file.
PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600
#: PBKDF2 iterations of the SCRAM verifier: PostgreSQL's default (scram_iterations).
SCRAM_ITERATIONS = 4096


def private_dir(path: Path) -> Path:
    """Create ``path`` (and missing parents) as a 0700 dir of this user; tighten it if it exists looser."""
    path.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
    if path.stat().st_mode & 0o777 != PRIVATE_DIR_MODE:
        path.chmod(PRIVATE_DIR_MODE)
    return path


def write_private(path: Path, text: str) -> None:
    """Replace ``path`` atomically with ``text``, readable by this user only (0600 from the start)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, PRIVATE_FILE_MODE)
    try:
        os.fchmod(fd, PRIVATE_FILE_MODE)  # a leftover tmp file keeps its old mode through O_CREAT
        os.write(fd, text.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def password_file(secrets_dir: Path, name: str) -> Path:
    return secrets_dir / f"{name}.password"


def read_password(secrets_dir: Path, name: str) -> str | None:
    """The stored password of server ``name``; ``None`` when it was never generated."""
    try:
        text = password_file(secrets_dir, name).read_text().strip()
    except FileNotFoundError:
        return None
    return text or None


def ensure_password(secrets_dir: Path, name: str) -> tuple[str, bool]:
    """The password of server ``name``, generated now if missing; ``(password, created)``.

    Called under the services lock, so concurrent starts agree on one password.
    """
    existing = read_password(secrets_dir, name)
    if existing is not None:
        path = password_file(secrets_dir, name)
        if path.stat().st_mode & 0o777 != PRIVATE_FILE_MODE:
            path.chmod(PRIVATE_FILE_MODE)
        return existing, False
    password = secrets.token_urlsafe(32)
    write_private(password_file(private_dir(secrets_dir), name), password + "\n")
    return password, True


def scram_verifier(password: str, *, iterations: int = SCRAM_ITERATIONS, salt: bytes | None = None) -> str:
    """The SCRAM-SHA-256 verifier PostgreSQL stores for ``password`` (RFC 5802 / RFC 7677).

    Setting a role's password to its verifier (``ALTER ROLE ... PASSWORD 'SCRAM-SHA-256$...'``) keeps
    the password itself out of the server, its logs and its command output. The generated passwords
    are ASCII, so SASLprep leaves them unchanged.
    """
    salt = os.urandom(16) if salt is None else salt
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.digest(salted, b"Client Key", "sha256")
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.digest(salted, b"Server Key", "sha256")

    def b64(raw: bytes) -> str:
        return base64.b64encode(raw).decode()

    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"
