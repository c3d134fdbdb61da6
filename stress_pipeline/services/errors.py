"""Errors raised when PostgreSQL or Redis cannot be used.

The driver exceptions (psycopg, redis-py) are multi-line, differ per library and can echo connection
details. Callers (the CLI, Dagster resources, tests) want one line that says which server, where
(password masked) and why, so every failure to reach a server is turned into one of these.
"""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

from stress_pipeline.services.urls import MASK, mask_url

_MAX_CAUSE = 300


class ServiceUnavailableError(RuntimeError):
    """A server cannot be reached or used.

    ``str(error)`` is one line, e.g.
    ``PostgreSQL at postgresql://postgres:***@127.0.0.1:1/test is unreachable: connection refused``.
    """

    def __init__(self, service: str, url: str | None, cause: str | BaseException) -> None:
        self.service = service
        self.url = mask_url(url) if url is not None else None
        self.cause = one_line(cause, secrets=_passwords(url))
        super().__init__(self._message())

    def _message(self) -> str:
        if self.url is None:
            return f"{self.service} is unavailable: {self.cause}"
        return f"{self.service} at {self.url} is unreachable: {self.cause}"


class ServiceStartError(ServiceUnavailableError):
    """An embedded server did not start; the message ends with the tail of its log."""

    def __init__(self, service: str, cause: str | BaseException, *, log_file: str, log_tail: str) -> None:
        self.log_file = log_file
        self.log_tail = log_tail
        super().__init__(service, None, cause)

    def _message(self) -> str:
        tail = self.log_tail.rstrip() or "(empty)"
        header = f"embedded {self.service} did not start: {self.cause}"
        return f"{header}\n--- last lines of {self.log_file} ---\n{tail}"


def one_line(cause: str | BaseException, *, secrets: tuple[str, ...] = ()) -> str:
    """Collapse an exception or message into one short line, hiding any of ``secrets`` in it."""
    text = (str(cause) or type(cause).__name__) if isinstance(cause, BaseException) else cause
    text = re.sub(r"\s+", " ", text).strip()
    for secret in secrets:
        if secret:
            text = text.replace(secret, MASK)
    if len(text) > _MAX_CAUSE:
        text = text[: _MAX_CAUSE - 3] + "..."
    return text


def _passwords(url: str | None) -> tuple[str, ...]:
    """The password of ``url`` as written and percent-decoded, longest first."""
    if not url:
        return ()
    try:
        password = urlsplit(url).password
    except ValueError:
        return ()
    if not password:
        return ()
    return tuple(sorted({password, unquote(password)}, key=len, reverse=True))
