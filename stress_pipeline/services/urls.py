"""Connection URL helpers: one masking rule for secrets, and the driver spelling of PostgreSQL URLs.

URLs and the errors that echo them end up in CLI output, logs, Dagster event logs and metadata, and
users write them in many forms: with or without a scheme (``user:pass@host/db``), with the password
in the query string (``?password=...``) or in a libpq keyword string (``password=... host=...``),
percent-encoded or not. :func:`mask_text` is the one rule that hides a password in any of those forms,
in a URL on its own or anywhere inside a message; :func:`mask_url` is that rule for one URL. When the
URL is known, its password is also hidden wherever it appears literally (a driver may echo it decoded,
outside any URL shape). The project talks to PostgreSQL through psycopg 3 only, while users write plain
``postgresql://`` URLs; :func:`to_sqlalchemy_url` and :func:`to_libpq_url` translate between the two.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import quote, unquote

MASK = "***"

#: A known secret shorter than this is hidden only where it sits in a URL or a ``password=`` pair:
#: replacing every occurrence of one or two characters would garble messages without hiding anything.
MIN_LITERAL_SECRET = 4

_SCHEME = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<rest>.*)$", re.DOTALL)
# ``[scheme://]user:password@host`` anywhere in a text. The password runs to the *last* '@' before
# whitespace or a quote, so an unencoded '@' or '/' inside it is covered; ':' followed by '//' is a
# scheme, not a password.
_USERINFO = re.compile(
    r"(?P<lead>(?:[A-Za-z][A-Za-z0-9+.-]*://)?[^\s:/@'\"<>()\[\]{},;=?&]*:)"
    r"(?!//)(?P<secret>[^\s'\"<>]+)@(?=[A-Za-z0-9\[._%-])"
)
# ``password=value`` in a query string, a libpq keyword string, a config line or a JSON/dict repr.
_KEYWORD = re.compile(
    r"(?P<lead>\b(?:(?:password|passwd|pwd)['\"]?\s*[=:]\s*|requirepass\s+))"
    r"(?P<secret>'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|[^\s&;#,'\")}\]]+)",
    re.IGNORECASE,
)
_POSTGRES_SCHEMES = ("postgresql", "postgres")
_REDIS_SCHEMES = ("redis", "rediss", "unix")
_SQLALCHEMY_DRIVER = "postgresql+psycopg"


def mask_text(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every password hidden as ``***``.

    Hides every literal occurrence of ``secrets`` (as given, percent-decoded and percent-encoded) that
    is at least :data:`MIN_LITERAL_SECRET` characters long, then the password of each
    ``[scheme://]user:password@host`` and each ``password=value`` (``?password=``, libpq's
    ``password='...'``, ``"password": "..."``, Redis's ``requirepass value``).
    """
    forms = sorted(
        {form for secret in secrets if secret for form in _forms(secret) if len(form) >= MIN_LITERAL_SECRET},
        key=len,
        reverse=True,
    )
    for form in forms:
        text = text.replace(form, MASK)
    text = _USERINFO.sub(lambda m: m["lead"] + MASK + "@", text)
    return _KEYWORD.sub(lambda m: m["lead"] + (MASK if m["secret"] != MASK else m["secret"]), text)


def mask_url(url: str | None) -> str:
    """``url`` with its password hidden, in any of the forms :func:`mask_text` knows; ``None`` gives
    ``"<unset>"``. A URL without a password is returned unchanged."""
    if url is None:
        return "<unset>"
    return mask_text(url, url_secrets(url))


def url_secrets(*urls: str | None) -> tuple[str, ...]:
    """The passwords written in ``urls`` (user information or ``password=`` pairs), longest first."""
    found: set[str] = set()
    for url in urls:
        if not url:
            continue
        for match in _USERINFO.finditer(url):
            found.add(match["secret"])
        for match in _KEYWORD.finditer(url):
            found.add(match["secret"].strip("'\""))
    found.discard(MASK)
    return tuple(sorted((secret for secret in found if secret), key=len, reverse=True))


def _forms(secret: str) -> set[str]:
    """A password as written, percent-decoded and percent-encoded (drivers echo any of them; a raw
    password with a '%' in it is its own decoded form, so it is encoded as written too)."""
    decoded = unquote(secret)
    return {secret, decoded, quote(decoded, safe=""), quote(secret, safe="")}


def url_scheme(url: str) -> str:
    """The scheme of ``url`` in lower case (``""`` when there is none)."""
    match = _SCHEME.match(url)
    return match["scheme"][:-3].lower() if match else ""


def check_postgres_url(url: str, source: str) -> str:
    """``url`` if it is a PostgreSQL URL; else a ValueError naming ``source`` with the URL masked."""
    scheme = url_scheme(url)
    if scheme in _POSTGRES_SCHEMES or scheme.startswith("postgresql+"):
        return url
    raise ValueError(
        f"{source}={mask_url(url)}: expected a PostgreSQL URL, postgresql://user:password@host:port/database"
    )


def check_redis_url(url: str, source: str) -> str:
    """``url`` if it is a Redis URL; else a ValueError naming ``source`` with the URL masked."""
    if url_scheme(url) in _REDIS_SCHEMES:
        return url
    raise ValueError(f"{source}={mask_url(url)}: expected a Redis URL, redis://[:password@]host:port/db")


def with_password(url: str, password: str) -> str:
    """``scheme://[user]@host...`` with ``password`` (percent-encoded) added to its user information."""
    match = _SCHEME.match(url)
    if match is None:
        raise ValueError(f"not a URL with a scheme: {mask_url(url)}")
    rest = match["rest"]
    userinfo, at, host = rest.partition("@")
    if not at:
        userinfo, host = "", rest
    user = userinfo.partition(":")[0]
    return f"{match['scheme']}{user}:{quote(password, safe='')}@{host}"


def without_password(url: str) -> str:
    """``url`` with the password removed from its user information (``user:pw@`` becomes ``user@``;
    Redis's ``:pw@`` disappears)."""
    match = _SCHEME.match(url)
    if match is None:
        return url
    rest = match["rest"]
    head, at, host = rest.rpartition("@")
    if not at:
        return url
    user = head.partition(":")[0]
    return f"{match['scheme']}{user + '@' if user else ''}{host}"


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
