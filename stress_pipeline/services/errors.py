"""Errors raised when PostgreSQL or Redis cannot be used.

The driver exceptions (psycopg, redis-py) are multi-line, differ per library and can echo connection
details. Callers (the CLI, Dagster resources, tests) want one line that says which server, where
(password masked) and why, so every failure to reach a server is turned into one of these.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from stress_pipeline.services.urls import mask_text, mask_url, url_secrets

_MAX_CAUSE = 300


class ServiceUnavailableError(RuntimeError):
    """A server cannot be reached or used.

    ``str(error)`` is one line, e.g.
    ``PostgreSQL at postgresql://postgres:***@127.0.0.1:1/test is unreachable: connection refused``.
    """

    def __init__(self, service: str, url: str | None, cause: str | BaseException) -> None:
        self.service = service
        self.url = mask_url(url) if url is not None else None
        self.cause = one_line(cause, secrets=url_secrets(url))
        super().__init__(self._message())

    def _message(self) -> str:
        if self.url is None:
            return f"{self.service} is unavailable: {self.cause}"
        return f"{self.service} at {self.url} is unreachable: {self.cause}"


class ServiceStartError(ServiceUnavailableError):
    """An embedded server did not start; the message ends with the tail of its log."""

    def __init__(self, service: str, cause: str | BaseException, *, log_file: str, log_tail: str) -> None:
        self.log_file = log_file
        self.log_tail = mask_text(log_tail)
        super().__init__(service, None, cause)

    def _message(self) -> str:
        tail = self.log_tail.rstrip() or "(empty)"
        header = f"embedded {self.service} did not start: {self.cause}"
        return f"{header}\n--- last lines of {self.log_file} ---\n{tail}"


def one_line(cause: str | BaseException, *, secrets: Iterable[str] = ()) -> str:
    """Collapse an exception or message into one short line with every password masked
    (:func:`~stress_pipeline.services.urls.mask_text`, ``secrets`` included)."""
    text = (str(cause) or type(cause).__name__) if isinstance(cause, BaseException) else cause
    text = mask_text(re.sub(r"\s+", " ", text).strip(), secrets)
    if len(text) > _MAX_CAUSE:
        text = text[: _MAX_CAUSE - 3] + "..."
    return text

