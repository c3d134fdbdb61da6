"""One masking rule (services/urls.py) hides a password in every form a URL or a message carries it."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from stress_pipeline.services import ServiceUnavailableError, check_postgres, check_redis, resolve_service_urls
from stress_pipeline.services.errors import ServiceStartError, one_line
from stress_pipeline.services.state_file import ServerRecord, ServiceState
from stress_pipeline.services.urls import MASK, mask_text, mask_url, url_secrets, with_password, without_password
from stress_pipeline.settings import make_settings

# Every form a user may write a password in; ``{pw}`` as written, ``{enc}`` percent-encoded.
FORMS = [
    "postgresql://ledger:{pw}@db.example:5432/stress",
    "postgresql+psycopg://ledger:{pw}@db.example:5432/stress",
    "postgres://ledger:{enc}@db.example/stress?sslmode=require",
    "ledger:{pw}@db.example:5432/stress",  # no scheme
    "ledger:{enc}@db.example/stress",  # no scheme, percent-encoded
    "postgresql://ledger@db.example/stress?password={enc}&sslmode=off",
    "postgresql://ledger@db.example/stress?sslmode=off&password={enc}",
    "host=db.example user=ledger password={pw} dbname=stress",
    "host=db.example user=ledger password='{pw}' dbname=stress",
    "redis://:{pw}@cache.example:6379/0",
    "redis://default:{enc}@cache.example:6379/0",
    "rediss://cache.example:6380/1?password={enc}",
    ":{pw}@cache.example:6379/0",  # Redis, no scheme
]

# Passwords: URL-ish characters, '@', '/', ':' and '%' included (they break naive parsers).
PASSWORD = st.text(
    alphabet=st.sampled_from("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.~!$*+@/:%"),
    min_size=6,
    max_size=40,
).filter(lambda pw: any(ch.isalnum() for ch in pw))


def _render(form: str, password: str) -> str:
    return form.format(pw=password, enc=quote(password, safe=""))


def _visible(text: str, password: str) -> list[str]:
    """The forms of ``password`` still readable in ``text``."""
    return [form for form in {password, quote(password, safe="")} if form in text]


@pytest.mark.parametrize("form", FORMS)
def test_mask_url_hides_each_form(form: str) -> None:
    password = "S3cr3t@pass/word"
    url = _render(form, password)
    masked = mask_url(url)
    assert _visible(masked, password) == [], masked
    assert MASK in masked
    # The rest of the URL survives: host and database are still there to read.
    assert ("db.example" in masked) or ("cache.example" in masked)


@settings(max_examples=300, deadline=None)
@given(password=PASSWORD, form=st.sampled_from(FORMS), before=st.sampled_from(["", "connect to ", "url='"]))
def test_a_url_in_any_message_is_masked_by_its_shape(password: str, form: str, before: str) -> None:
    """Without knowing the password: the URL's shape alone hides it, wherever it sits in a message."""
    # A password made only of URL syntax, or a word of the message around it ("connec" in "connection"),
    # cannot be told from the text by the URL's shape: the known-secret case below covers those.
    template = f"{before}{_render(form, '')} failed: connection refused"
    assume(password not in template and quote(password, safe="") not in template)
    assume(not form.startswith("host=") or ("'" in form or not any(c in password for c in "'\"")))
    url = _render(form, password)
    message = f"{before}{url} failed: connection refused"
    assert _visible(mask_text(message), password) == [], (url, mask_text(message))


@settings(max_examples=300, deadline=None)
@given(password=PASSWORD, form=st.sampled_from(FORMS))
def test_a_known_password_is_masked_wherever_a_driver_echoes_it(password: str, form: str) -> None:
    """The URL's password also hides its bare echoes: decoded, encoded, in a driver's own words."""
    url = _render(form, password)
    # A password that is also a word of the message's frame cannot be told apart from it.
    frame = f"PostgreSQL at {_render(form, '')} is unreachable: invalid percent-encoded token: (in ) failed"
    assume(password not in frame and quote(password, safe="") not in frame)
    message = f'invalid percent-encoded token: "{password}" (in {url}) failed: {quote(password, safe="")}'
    assert _visible(mask_text(message, url_secrets(url)), password) == []
    assert _visible(one_line(message, secrets=url_secrets(url)), password) == []
    error = ServiceUnavailableError("PostgreSQL", url, message)
    assert _visible(str(error), password) == []


def test_short_secrets_are_masked_only_in_url_shapes() -> None:
    # Replacing every "ab" would garble the message without hiding anything.
    assert mask_text("table ab: postgresql://u:ab@h/db", ["ab"]) == "table ab: postgresql://u:***@h/db"


def test_urls_without_a_password_are_unchanged() -> None:
    for url in ["postgresql://postgres@127.0.0.1:5432/test", "redis://127.0.0.1:6379/0", "postgres://h/db?sslmode=off"]:
        assert mask_url(url) == url


def test_state_records_and_url_sets_never_show_the_password() -> None:
    record = ServerRecord("postgres", "postgresql://postgres:Topsecret9@127.0.0.1:1/postgres", 1, 1, "d", "l", "t")
    assert "Topsecret9" not in repr(record) and "Topsecret9" not in str(ServiceState(postgres=record))
    assert "Topsecret9" not in str(ServiceState(postgres=record).to_json())
    assert without_password(record.url) == "postgresql://postgres@127.0.0.1:1/postgres"
    assert with_password(without_password(record.url), "Topsecret9") == record.url
    assert with_password("redis://127.0.0.1:1/0", "p@ss/w") == "redis://:p%40ss%2Fw@127.0.0.1:1/0"


def test_server_logs_in_start_errors_are_masked() -> None:
    error = ServiceStartError("Redis", "boom", log_file="redis.log", log_tail="requirepass Hunter2hunter2\nok")
    assert "Hunter2hunter2" not in str(error)


@pytest.mark.parametrize(
    ("postgres_url", "redis_url", "variable"),
    [
        ("ledger:Planted9pw@db.example:5432/stress", None, "STRESS_POSTGRES_URL"),
        ("redis://:Planted9pw@h:1/0", None, "STRESS_POSTGRES_URL"),
        (None, ":Planted9pw@cache.example:6379/0", "STRESS_REDIS_URL"),
        (None, "postgresql://u:Planted9pw@h/db", "STRESS_REDIS_URL"),
    ],
)
def test_a_url_no_driver_takes_fails_early_naming_the_variable(
    postgres_url: str | None, redis_url: str | None, variable: str
) -> None:
    settings_ = make_settings(
        postgres_url=postgres_url or "postgresql://u@127.0.0.1:1/db", redis_url=redis_url or "redis://127.0.0.1:1/0"
    )
    with pytest.raises(ValueError, match=variable) as caught:
        resolve_service_urls(settings_)
    assert "Planted9pw" not in str(caught.value) and MASK in str(caught.value)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://u:Planted9pw@127.0.0.1:1/db",
        "postgresql://u@127.0.0.1:1/db?password=Planted9pw",
        "postgresql://u:Planted9pw%25zz@127.0.0.1:1/db",
        "postgresql://u@127.0.0.1:1/db?password=Planted9pw%zz",  # a driver rejects this and quotes it
    ],
)
def test_postgres_driver_errors_are_masked(url: str) -> None:
    with pytest.raises(ServiceUnavailableError) as caught:
        check_postgres(url, 2.0)
    assert "Planted9pw" not in str(caught.value)


@pytest.mark.parametrize(
    "url", ["redis://:Planted9pw@127.0.0.1:1/0", "redis://127.0.0.1:1/0?password=Planted9pw", "redis://u:Planted9%zz@h:x/0"]
)
def test_redis_driver_errors_are_masked(url: str) -> None:
    with pytest.raises(ServiceUnavailableError) as caught:
        check_redis(url, 2.0)
    assert "Planted9pw" not in str(caught.value) and "Planted9%zz" not in str(caught.value)
