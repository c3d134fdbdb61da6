"""Server outages: the embedded servers are really killed or stopped and come back with their data;
external servers are only ever taken away through the fault proxy."""

from __future__ import annotations

import contextlib
import os
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa

from stress_pipeline.faults import FaultProxy, OutageError, outage
from stress_pipeline.services import ServiceUnavailableError, check_postgres, check_redis, embedded, postgres_engine
from stress_pipeline.services.processes import runs_in
from stress_pipeline.settings import Settings, get_settings


def _processes_under(root: Path) -> list[int]:
    root_str = os.path.realpath(root)
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        with contextlib.suppress(OSError):
            cwd = os.readlink(entry / "cwd")
            if cwd == root_str or cwd.startswith(root_str + os.sep):
                found.append(int(entry.name))
    return found


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """Embedded servers of this module's own, stopped (and swept) afterwards."""
    settings = get_settings({"STRESS_HOME": str(tmp_path_factory.mktemp("fault-servers-home"))})
    try:
        embedded.start(settings)
        yield settings
    finally:
        try:
            embedded.stop(settings)
        finally:
            for pid in _processes_under(settings.services_dir):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


def _external_settings(tmp_path: Path, postgres_url: str, redis_url: str) -> Settings:
    return get_settings(
        {"STRESS_HOME": str(tmp_path / "home"), "STRESS_POSTGRES_URL": postgres_url, "STRESS_REDIS_URL": redis_url}
    )


def _proxy_to(url: str) -> FaultProxy:
    """A proxy to the server of ``url``; the test is skipped for a server off this machine (the proxy
    forwards to loopback only)."""
    parts = urlsplit(url)
    port = parts.port or (5432 if parts.scheme.startswith("postgres") else 6379)
    try:
        return FaultProxy(parts.hostname or "127.0.0.1", port)
    except ValueError as err:
        pytest.skip(str(err))


# ------------------------------------------------------------------------------------------ embedded


@pytest.mark.services
@pytest.mark.parametrize("how", ["kill", "stop"])
def test_postgres_outage_restarts_with_the_data_intact(home: Settings, how: str) -> None:
    before = embedded.read_state(home).postgres
    table = f"outage_{how}_{uuid.uuid4().hex[:8]}"
    engine = postgres_engine(before.url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(f"CREATE TABLE {table} (id int PRIMARY KEY)"))
            conn.execute(sa.text(f"INSERT INTO {table} VALUES (42)"))

        handle = outage("postgres", home, how=how)
        assert handle.method == how
        handle.begin()
        assert not runs_in(before.pid, Path(before.data_dir))
        with pytest.raises(ServiceUnavailableError, match="refused"):
            check_postgres(before.url)
        timings = handle.end()

        after = embedded.read_state(home).postgres
        assert after.pid != before.pid and after.url == before.url  # same port: the run's URL still works
        assert timings.down_s is not None and timings.down_s < 30
        assert timings.recovery_s is not None and timings.recovery_s < 60
        assert timings.outage_s >= timings.recovery_s
        with engine.connect() as conn:  # the pool's dead connections are replaced (pre-ping)
            assert conn.execute(sa.text(f"SELECT id FROM {table}")).scalar_one() == 42
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f"DROP TABLE IF EXISTS {table}"))
        engine.dispose()


@pytest.mark.services
def test_redis_outage_kills_the_process_and_redis_answers_again(home: Settings) -> None:
    before = embedded.read_state(home).redis
    with outage("redis", home) as handle:
        assert handle.active
        assert not runs_in(before.pid, Path(before.data_dir))
        with pytest.raises(ServiceUnavailableError):
            check_redis(before.url, 1.0)
    assert not handle.active
    after = embedded.read_state(home).redis
    assert after.pid != before.pid and after.url == before.url
    check_redis(after.url)
    assert handle.timings.recovery_s is not None and handle.timings.recovery_s < 60


@pytest.mark.services
def test_embedded_outage_is_measured_through_the_runs_proxy(home: Settings) -> None:
    record = embedded.read_state(home).redis
    with FaultProxy("127.0.0.1", record.port) as proxy:
        handle = outage("redis", home, proxy)
        assert handle.method == "kill" and handle.url == proxy.url_for(record.url)
        handle.begin()
        with pytest.raises(ServiceUnavailableError):
            check_redis(handle.url, 1.0)  # the proxy is up, the server behind it is not
        handle.end()
        check_redis(handle.url)


@pytest.mark.services
def test_outage_misuse_is_refused(home: Settings) -> None:
    handle = outage("redis", home)
    assert handle.end().recovery_s is None  # ending what never began does nothing
    with handle, pytest.raises(OutageError, match="already begun"):
        handle.begin()
    with pytest.raises(ValueError, match="unknown service"):
        outage("mysql", home)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="how"):
        outage("redis", home, how="pause")  # type: ignore[arg-type]


def test_external_server_without_a_proxy_is_never_stopped(tmp_path: Path) -> None:
    settings = _external_settings(tmp_path, "postgresql://postgres@127.0.0.1:5432/test", "redis://127.0.0.1:6379/0")
    with pytest.raises(OutageError, match="never stopped"):
        outage("postgres", settings)
    with pytest.raises(ValueError, match="forwards to"):
        outage("redis", settings, FaultProxy("127.0.0.1", 6380))  # a proxy to another server


# ------------------------------------------------------------------------------------------ external


@pytest.mark.services
@pytest.mark.parametrize("target", ["postgres", "redis"])
def test_external_outage_goes_through_the_proxy_only(tmp_path: Path, external_service_urls, target: str) -> None:
    settings = _external_settings(tmp_path, external_service_urls.postgres_url, external_service_urls.redis_url)
    server_url = external_service_urls.postgres_url if target == "postgres" else external_service_urls.redis_url
    check = check_postgres if target == "postgres" else check_redis
    with _proxy_to(server_url) as proxy:
        handle = outage(target, settings, proxy)
        assert handle.method == "proxy"
        check(handle.url)
        timings = handle.begin()
        with pytest.raises(ServiceUnavailableError, match="refused"):
            check(handle.url, 1.0)
        check(server_url)  # the real server was never touched
        handle.end()
        check(handle.url)
    assert timings.down_s is not None and timings.down_s < 5
    assert handle.timings.recovery_s is not None and handle.timings.recovery_s < 10
    assert not settings.services_dir.exists()  # nothing embedded was started
