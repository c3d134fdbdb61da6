"""Connection URL helpers: hide passwords, pick the driver.

URLs end up in logs, CLI output, Dagster event metadata and error messages, so every place that shows
one goes through :func:`mask_url`. The project talks to PostgreSQL through psycopg 3 only, while users
write plain ``postgresql://`` URLs; :func:`to_sqlalchemy_url` and :func:`to_libpq_url` translate
between the two spellings.
"""

from __future__ import annotations

import re

MASK = "***"

_SCHEME = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<rest>.*)$", re.DOTALL)
_PASSWORD_PARAM = re.compile(r"(?P<key>(?:^|[?&;])password=)(?P<value>[^&;#]*)", re.IGNORECASE)
_POSTGRES_SCHEMES = ("postgresql", "postgres")
_SQLALCHEMY_DRIVER = "postgresql+psycopg"


def mask_url(url: str | None) -> str:
    """Return ``url`` with any password replaced by ``***``.

    Handles ``scheme://user:password@host...`` for any scheme (``postgresql``, ``postgresql+psycopg``,
    ``redis``, ``rediss``, ...), passwords containing ``@`` or ``/``, and libpq's ``?password=``
    query parameter. A URL without a password is returned unchanged; ``None`` gives ``"<unset>"``.
    """
    if url is None:
        return "<unset>"
    match = _SCHEME.match(url)
    if match is None:
        return _PASSWORD_PARAM.sub(lambda m: m["key"] + MASK, url)
    scheme, rest = match["scheme"], match["rest"]
    # The authority ends before the query string; the *last* '@' in front of it separates the user
    # information from the host, so an unencoded '@' or '/' inside the password is still covered.
    query_at = rest.find("?")
    head, query = (rest, "") if query_at < 0 else (rest[:query_at], rest[query_at:])
    at = head.rfind("@")
    if at >= 0:
        userinfo, host_part = head[:at], head[at:]
        user, colon, password = userinfo.partition(":")
        if colon and password:
            head = f"{user}:{MASK}{host_part}"
    if query:
        query = _PASSWORD_PARAM.sub(lambda m: m["key"] + MASK, query)
    return scheme + head + query


def url_scheme(url: str) -> str:
    """The scheme of ``url`` in lower case (``""`` when there is none)."""
    match = _SCHEME.match(url)
    return match["scheme"][:-3].lower() if match else ""


def to_sqlalchemy_url(url: str) -> str:
    """Map ``postgresql://`` and ``postgres://`` URLs to SQLAlchemy's psycopg 3 dialect.

    A URL that already names a driver (``postgresql+psycopg://``) is returned unchanged.
    """
    scheme = url_scheme(url)
    if scheme in _POSTGRES_SCHEMES:
        return _SQLALCHEMY_DRIVER + url[len(scheme) :]
    if scheme.startswith("postgresql+"):
        return url
    raise ValueError(f"not a PostgreSQL URL: {mask_url(url)}")


def to_libpq_url(url: str) -> str:
    """Map a PostgreSQL URL with a SQLAlchemy driver suffix back to the form libpq/psycopg accept."""
    scheme = url_scheme(url)
    if scheme in _POSTGRES_SCHEMES:
        return url
    if scheme.startswith("postgresql+"):
        return "postgresql" + url[len(scheme) :]
    raise ValueError(f"not a PostgreSQL URL: {mask_url(url)}")
