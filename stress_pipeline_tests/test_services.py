"""PostgreSQL and Redis: embedded servers under a temporary STRESS_HOME, external ones from the environment.

The embedded tests start real servers; every fixture stops them on teardown and then kills anything
still working in the temporary services dir, so no server outlives the test session.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from stress_pipeline.defs.resources import StressResource, stress_resource_from_env
from stress_pipeline.services import (
    ServiceStartError,
    ServiceUnavailableError,
    check_postgres,
    check_redis,
    embedded,
    format_status_table,
    mask_url,
    postgres_engine,
    redis_client,
    resolve_service_urls,
    service_status,
    to_sqlalchemy_url,
)
from stress_pipeline.settings import Settings, get_settings

# Prints {"postgres": [url, pid], "redis": [url, pid]} after starting (or reusing) the servers.
CHILD_START = """
import json, sys
from stress_pipeline.services import embedded
from stress_pipeline.settings import get_settings
state = embedded.start(get_settings({"STRESS_HOME": sys.argv[1]}))
print(json.dumps({name: [state.get(name).url, state.get(name).pid] for name in embedded.SERVICE_NAMES}))
"""


# ------------------------------------------------------------------------------------------- helpers


def _processes_under(root: Path) -> list[int]:
    """Pids of live processes whose working directory is inside ``root`` (our servers chdir there)."""
    root_str = os.path.realpath(root)
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if cwd == root_str or cwd.startswith(root_str + os.sep):
            found.append(int(entry.name))
    return found


def _ppid(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[1])


def _shutdown(settings: Settings) -> None:
    try:
        embedded.stop(settings)
    finally:
        for pid in _processes_under(settings.services_dir):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _settings(home: Path) -> Settings:
    return get_settings({"STRESS_HOME": str(home)})


def _wait_dead(pid: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not embedded._pid_alive(pid):
            return
        time.sleep(0.05)
    raise AssertionError(f"pid {pid} still alive after {timeout} s")


def _start_in_subprocess(home: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD_START, str(home)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _child_result(proc: subprocess.Popen[str]) -> dict[str, list]:
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


def _select_one(url: str) -> int:
    engine = postgres_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text("SELECT 1")).scalar_one()
    finally:
        engine.dispose()


# ------------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def shared_services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """Embedded servers started once for the read-only tests of this module."""
    settings = _settings(tmp_path_factory.mktemp("shared-home"))
    try:
        embedded.start(settings)
        yield settings
    finally:
        _shutdown(settings)


@pytest.fixture
def fresh_home(tmp_path: Path) -> Iterator[Settings]:
    """A STRESS_HOME of its own, for tests that stop, kill or race the servers."""
    settings = _settings(tmp_path / "home")
    try:
        yield settings
    finally:
        _shutdown(settings)


# ------------------------------------------------------------------------------------------- urls


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("postgresql://user:pw@host:5432/db", "postgresql://user:***@host:5432/db"),
        ("postgresql+psycopg://user:pw@host:5432/db", "postgresql+psycopg://user:***@host:5432/db"),
        ("postgres://u:p%40ss@h/db?sslmode=require", "postgres://u:***@h/db?sslmode=require"),
        ("postgresql://u:p@ss/w@h:1/db", "postgresql://u:***@h:1/db"),
        ("postgresql://u@h/db?password=secret&sslmode=off", "postgresql://u@h/db?password=***&sslmode=off"),
        ("redis://:pw@host:6379/0", "redis://:***@host:6379/0"),
        ("rediss://default:pw@host:6380/1", "rediss://default:***@host:6380/1"),
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("postgresql://postgres@127.0.0.1:5432/test", "postgresql://postgres@127.0.0.1:5432/test"),
        ("postgresql://postgres:@127.0.0.1:5432/test", "postgresql://postgres:@127.0.0.1:5432/test"),
    ],
)
def test_mask_url(url: str, masked: str) -> None:
    assert mask_url(url) == masked


def test_to_sqlalchemy_url() -> None:
    assert to_sqlalchemy_url("postgresql://u@h:1/db") == "postgresql+psycopg://u@h:1/db"
    assert to_sqlalchemy_url("postgres://u@h:1/db") == "postgresql+psycopg://u@h:1/db"
    assert to_sqlalchemy_url("postgresql+psycopg://u@h:1/db") == "postgresql+psycopg://u@h:1/db"
    with pytest.raises(ValueError, match=r"redis://:\*\*\*@h"):
        to_sqlalchemy_url("redis://:secret@h:1/0")


# ------------------------------------------------------------------------------------ unreachable


def test_unreachable_postgres_fails_fast_with_masked_url() -> None:
    started = time.monotonic()
    with pytest.raises(ServiceUnavailableError) as caught:
        check_postgres("postgresql://u:secret@127.0.0.1:1/db")
    message = str(caught.value)
    assert time.monotonic() - started < 10
    assert message.startswith("PostgreSQL at postgresql://u:***@127.0.0.1:1/db is unreachable: ")
    assert "secret" not in message
    assert "\n" not in message


def test_unreachable_redis_fails_fast_with_masked_url() -> None:
    started = time.monotonic()
    with pytest.raises(ServiceUnavailableError) as caught:
        check_redis("redis://:secret@127.0.0.1:1/0")
    message = str(caught.value)
    assert time.monotonic() - started < 10
    assert message.startswith("Redis at redis://:***@127.0.0.1:1/0 is unreachable: ")
    assert "secret" not in message
    assert "\n" not in message


# --------------------------------------------------------------------------------------- embedded


@pytest.mark.services
def test_embedded_servers_answer_sql_and_redis(shared_services: Settings) -> None:
    urls = resolve_service_urls(shared_services)
    assert urls.postgres_embedded and urls.redis_embedded
    # Each URL carries the generated password, read back from the private secrets dir.
    assert mask_url(urls.postgres_url).startswith("postgresql://postgres:***@127.0.0.1:")
    assert mask_url(urls.redis_url).startswith("redis://:***@127.0.0.1:")
    assert _select_one(urls.postgres_url) == 1
    client = redis_client(urls.redis_url, decode_responses=True)
    try:
        client.set("stress:test", "value")
        assert client.get("stress:test") == "value"
    finally:
        client.close()


@pytest.mark.services
def test_second_start_reuses_the_running_servers(shared_services: Settings) -> None:
    first = embedded.start(shared_services)
    second = embedded.start(shared_services)
    assert second == first
    assert resolve_service_urls(shared_services, start=False).postgres_url == first.postgres.url


@pytest.mark.services
def test_start_from_another_process_reuses_the_servers(shared_services: Settings) -> None:
    state = embedded.start(shared_services)
    child = _child_result(_start_in_subprocess(shared_services.home))
    assert child == {
        "postgres": [state.postgres.url, state.postgres.pid],
        "redis": [state.redis.url, state.redis.pid],
    }


@pytest.mark.services
def test_service_status_reports_running_embedded_servers(shared_services: Settings) -> None:
    rows = service_status(shared_services)
    assert [(row["name"], row["mode"], row["running"]) for row in rows] == [
        ("PostgreSQL", "embedded", True),
        ("Redis", "embedded", True),
    ]
    assert all(isinstance(row["pid"], int) for row in rows)
    table = format_status_table(rows).splitlines()
    assert table[0].split() == ["SERVICE", "MODE", "RUNNING", "PID", "URL", "MESSAGE"]
    assert table[2].startswith("PostgreSQL  embedded  yes")


@pytest.mark.services
def test_only_the_service_without_a_url_is_embedded(shared_services: Settings, tmp_path: Path) -> None:
    external_postgres = embedded.start(shared_services).postgres.url
    settings = get_settings({"STRESS_HOME": str(tmp_path / "home"), "STRESS_POSTGRES_URL": external_postgres})
    try:
        urls = resolve_service_urls(settings)
        assert (urls.postgres_url, urls.postgres_embedded, urls.redis_embedded) == (external_postgres, False, True)
        check_redis(urls.redis_url)
        layout = embedded.ServiceLayout.from_settings(settings)
        assert not layout.postgres_dir.exists()
        assert [row["mode"] for row in service_status(settings)] == ["external", "embedded"]
    finally:
        _shutdown(settings)


@pytest.mark.services
def test_concurrent_starts_get_one_server_each(fresh_home: Settings) -> None:
    children = [_start_in_subprocess(fresh_home.home) for _ in range(3)]
    results = [_child_result(child) for child in children]
    assert results[0] == results[1] == results[2]
    layout = embedded.ServiceLayout.from_settings(fresh_home)
    postmaster = results[0]["postgres"][1]
    # One postmaster: every other process working in PGDATA is one of its children.
    assert postmaster in _processes_under(layout.pgdata)
    strays = [pid for pid in _processes_under(layout.pgdata) if postmaster not in (pid, _ppid(pid))]
    assert strays == []
    assert _processes_under(layout.redis_dir) == [results[0]["redis"][1]]


@pytest.mark.services
def test_stop_stops_both_servers(fresh_home: Settings) -> None:
    state = embedded.start(fresh_home)
    assert embedded.stop(fresh_home) is True
    _wait_dead(state.postgres.pid)
    _wait_dead(state.redis.pid)
    assert [row.running for row in embedded.status(fresh_home)] == [False, False]
    assert [row["running"] for row in service_status(fresh_home)] == [False, False]
    assert embedded.stop(fresh_home) is False
    with pytest.raises(ServiceUnavailableError, match="not started"):
        resolve_service_urls(fresh_home, start=False)


@pytest.mark.services
def test_postgres_restarts_after_kill_with_its_data(fresh_home: Settings) -> None:
    before = embedded.start(fresh_home)
    engine = postgres_engine(before.postgres.url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE survivor (id int PRIMARY KEY)"))
        conn.execute(sa.text("INSERT INTO survivor VALUES (42)"))
    engine.dispose()

    os.kill(before.postgres.pid, signal.SIGKILL)
    _wait_dead(before.postgres.pid)
    assert not embedded.status(fresh_home)[0].running

    after = embedded.start(fresh_home)
    assert after.postgres.pid != before.postgres.pid
    assert after.postgres.data_dir == before.postgres.data_dir
    assert after.postgres.url == before.postgres.url  # same port: pools elsewhere reconnect
    assert after.redis == before.redis
    engine = postgres_engine(after.postgres.url)
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT id FROM survivor")).scalar_one() == 42
    finally:
        engine.dispose()


@pytest.mark.services
def test_redis_restarts_after_kill(fresh_home: Settings) -> None:
    before = embedded.start(fresh_home)
    os.kill(before.redis.pid, signal.SIGKILL)
    _wait_dead(before.redis.pid)
    after = embedded.start(fresh_home)
    assert after.redis.pid != before.redis.pid
    assert after.postgres == before.postgres
    check_redis(after.redis.url)


@pytest.mark.services
def test_stale_postmaster_pid_of_a_foreign_process_is_ignored(fresh_home: Settings) -> None:
    embedded.start(fresh_home)
    embedded.stop(fresh_home)
    layout = embedded.ServiceLayout.from_settings(fresh_home)
    # After a crash and a reboot the recorded pid often belongs to another, live process (here: init).
    (layout.pgdata / "postmaster.pid").write_text(f"1\n{layout.pgdata}\n0\n5432\n\n127.0.0.1\n0 0\nready\n")
    state = embedded.start(fresh_home)
    check_postgres(state.postgres.url)


@pytest.mark.services
def test_start_retries_on_another_port_when_the_port_is_taken(
    fresh_home: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_free_port = embedded._free_port
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        offered: list[int] = []

        def racy_free_port(preferred: int | None = None) -> int:
            # The first port handed out is grabbed by someone else before the server binds it.
            offered.append(taken if not offered else real_free_port(preferred))
            return offered[-1]

        monkeypatch.setattr(embedded, "_free_port", racy_free_port)
        state = embedded.start(fresh_home, [embedded.POSTGRES])
        offered.clear()
        state = embedded.start(fresh_home, [embedded.REDIS])
    assert state.postgres.port != taken and state.redis.port != taken
    check_postgres(state.postgres.url)
    check_redis(state.redis.url)


@pytest.mark.services
def test_start_failure_names_the_server_and_shows_its_output(
    fresh_home: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(embedded, "_redis_conf", lambda layout, port, password: "no-such-directive yes\n")
    with pytest.raises(ServiceStartError) as caught:
        embedded.start(fresh_home, [embedded.REDIS])
    message = str(caught.value)
    assert message.startswith("embedded Redis did not start: redis-server exited with code 1")
    assert "no-such-directive" in message


# --------------------------------------------------------------------------------------- external


@pytest.mark.services
def test_external_urls_are_used_and_nothing_is_started(tmp_path: Path, external_service_urls) -> None:
    settings = get_settings(
        {
            "STRESS_HOME": str(tmp_path / "home"),
            "STRESS_POSTGRES_URL": external_service_urls.postgres_url,
            "STRESS_REDIS_URL": external_service_urls.redis_url,
        }
    )
    urls = resolve_service_urls(settings)
    assert urls.postgres_url == external_service_urls.postgres_url
    assert urls.redis_url == external_service_urls.redis_url
    assert not urls.postgres_embedded and not urls.redis_embedded
    check_postgres(urls.postgres_url)
    check_redis(urls.redis_url)
    assert _select_one(urls.postgres_url) == 1
    client = redis_client(urls.redis_url)
    try:
        assert client.ping() is True
    finally:
        client.close()

    rows = service_status(settings)
    assert [(row["mode"], row["running"], row["pid"]) for row in rows] == [
        ("external", True, None),
        ("external", True, None),
    ]
    assert not settings.services_dir.exists()


# -------------------------------------------------------------------------------- Dagster resources


def _materialize_with_resources(stress: StressResource) -> dict[str, object]:
    seen: dict[str, object] = {}

    @dg.asset(required_resource_keys={"stress"})
    def touches_both(context) -> None:  # no annotation: this module postpones annotations
        with context.resources.stress.get_engine().connect() as conn:
            seen["select"] = conn.execute(sa.text("SELECT 41 + 1")).scalar_one()
        client = context.resources.stress.get_redis()
        client.set("stress_pipeline:resource_test", "ok")
        seen["redis"] = client.get("stress_pipeline:resource_test")
        seen["urls"] = (context.resources.stress.ledger_url(), context.resources.stress.hot_state_url())

    result = dg.materialize([touches_both], resources={"stress": stress})
    assert result.success
    return seen


@pytest.mark.services
def test_resources_use_the_embedded_servers_in_a_dagster_run(
    shared_services: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STRESS_HOME", str(shared_services.home))
    monkeypatch.delenv("STRESS_POSTGRES_URL", raising=False)
    monkeypatch.delenv("STRESS_REDIS_URL", raising=False)
    seen = _materialize_with_resources(stress_resource_from_env())
    state = embedded.read_state(shared_services)
    assert seen["select"] == 42 and seen["redis"] in (b"ok", "ok")
    assert seen["urls"] == (state.postgres.url, state.redis.url)


@pytest.mark.services
def test_resources_use_the_configured_servers(external_service_urls, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STRESS_POSTGRES_URL", external_service_urls.postgres_url)
    monkeypatch.setenv("STRESS_REDIS_URL", external_service_urls.redis_url)
    seen = _materialize_with_resources(stress_resource_from_env())
    assert seen["select"] == 42
    assert seen["urls"] == (external_service_urls.postgres_url, external_service_urls.redis_url)


def test_resource_on_an_unreachable_server_names_the_masked_url() -> None:
    # both servers configured (and unreachable): nothing embedded is started in the working directory
    unreachable = StressResource(
        postgres_url="postgresql://stress:hunter2@127.0.0.1:1/ledger", redis_url="redis://:hunter2@127.0.0.1:1/0"
    )
    with pytest.raises(ServiceUnavailableError) as info:
        unreachable.get_engine()
    assert "postgresql://stress:***@127.0.0.1:1/ledger" in str(info.value) and "hunter2" not in str(info.value)
    with pytest.raises(ServiceUnavailableError, match=r"redis://:\*\*\*@127.0.0.1:1/0"):
        unreachable.get_redis()
