"""A password planted in STRESS_POSTGRES_URL / STRESS_REDIS_URL, in each form, never reaches the CLI's
output, STRESS_HOME or DAGSTER_HOME (Dagster's run and event storage, compute logs) of a real run.

The servers are real and password-protected: this module's own embedded PostgreSQL and Redis, used by
the run as *external* servers (another STRESS_HOME), with their passwords set to the planted ones so
every form must actually authenticate. The run is the CLI's ``run --scenario`` of one small scenario:
real Dagster runs, the reconciliation writing to both servers.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import psycopg
import psycopg.sql
import pytest
import redis

from stress_pipeline.services import embedded
from stress_pipeline.services.state_file import ServiceState
from stress_pipeline.services.urls import with_password, without_password
from stress_pipeline.settings import Settings, get_settings

pytestmark = pytest.mark.services

SCENARIO = "equity_flash_crash_shape_2010_05_06"  # one symbol, 60 bars: the smallest full run
STRESS_CLI = str(Path(sys.executable).with_name("stress-pipeline"))


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, ServiceState]]:
    settings = get_settings({"STRESS_HOME": str(tmp_path_factory.mktemp("server-home"))})
    try:
        yield settings, embedded.start(settings)
    finally:
        try:
            embedded.stop(settings)
        finally:
            root = os.path.realpath(settings.services_dir)
            for entry in Path("/proc").glob("[0-9]*"):
                with contextlib.suppress(OSError):
                    if os.readlink(entry / "cwd").startswith(root):
                        os.kill(int(entry.name), signal.SIGKILL)


_current: dict[str, str] = {}


def _set_passwords(state: ServiceState, password: str) -> None:
    """Give both servers ``password`` (the test's own servers; their generated password is replaced)."""
    postgres_url, redis_url = state.postgres.url, state.redis.url
    if "password" in _current:  # changed by an earlier test of this module
        postgres_url = with_password(without_password(postgres_url), _current["password"])
        redis_url = with_password(without_password(redis_url), _current["password"])
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(psycopg.sql.SQL("ALTER ROLE postgres PASSWORD {}").format(psycopg.sql.Literal(password)))
    client = redis.Redis.from_url(redis_url)
    try:
        client.execute_command("ACL", "SETUSER", "default", "resetpass", f">{password}")
    finally:
        client.close()
    _current["password"] = password


def _run(tmp_path: Path, postgres_url: str, redis_url: str) -> tuple[int, str, Path, Path]:
    stress_home, dagster_home = tmp_path / "stress-home", tmp_path / "dagster-home"
    dagster_home.mkdir()
    env = {
        **os.environ,
        "STRESS_HOME": str(stress_home),
        "DAGSTER_HOME": str(dagster_home),
        "STRESS_POSTGRES_URL": postgres_url,
        "STRESS_REDIS_URL": redis_url,
    }
    done = subprocess.run(
        [STRESS_CLI, "run", "--scenario", SCENARIO, "--verbose"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    return done.returncode, done.stdout + done.stderr, stress_home, dagster_home


def _leaks(password: str, output: str, *roots: Path) -> list[str]:
    """Every place a form of ``password`` (as written, percent-encoded) can still be read."""
    forms = {password, quote(password, safe="")}
    found = [f"output: {form}" for form in forms if form in output]
    for root in roots:
        for path in root.rglob("*"):
            if path.is_file():
                data = path.read_bytes()
                found += [f"{path}: {form}" for form in forms if form.encode() in data]
    return found


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1].split("/", 1)[0])


@pytest.mark.parametrize(
    ("password", "postgres_form", "redis_form"),
    [
        # Password in the user information, as written / in the query string, as written.
        ("PlantedUserinfo4417", "postgresql://postgres:{pw}@127.0.0.1:{pg}/postgres", "redis://127.0.0.1:{rd}/0?password={pw}"),
        # Percent-encoded: in the query string / in the user information ('@', '/', '%', ':' inside).
        ("Pl@nted/Enc%ded:5521", "postgresql://postgres@127.0.0.1:{pg}/postgres?password={enc}", "redis://default:{enc}@127.0.0.1:{rd}/0"),
    ],
)  # fmt: skip
def test_a_planted_password_never_leaves_the_process(
    servers: tuple[Settings, ServiceState], tmp_path: Path, password: str, postgres_form: str, redis_form: str
) -> None:
    _, state = servers
    _set_passwords(state, password)
    ports = {"pg": _port(state.postgres.url), "rd": _port(state.redis.url)}
    ports.update(pw=password, enc=quote(password, safe=""))
    _code, output, stress_home, dagster_home = _run(tmp_path, postgres_form.format(**ports), redis_form.format(**ports))
    # The run really used both servers with the planted password: the reconciliation wrote and passed.
    assert f"portfolio_reconciliation[{SCENARIO}] materialized" in output, output[-3000:]
    assert f"reconciliation_clean[{SCENARIO}]: passed" in output, output[-3000:]
    assert list(dagster_home.rglob("*.db")), "no Dagster storage written: nothing was checked"
    assert _leaks(password, output, stress_home, dagster_home) == []
    assert "***" in output  # the URLs are shown, masked


def test_a_url_without_scheme_fails_masked_and_named(servers: tuple[Settings, ServiceState], tmp_path: Path) -> None:
    _, state = servers
    password = "PlantedNoScheme8832"
    _set_passwords(state, password)
    postgres_url = f"postgres:{password}@127.0.0.1:{_port(state.postgres.url)}/postgres"
    redis_url = f":{password}@127.0.0.1:{_port(state.redis.url)}/0"
    code, output, stress_home, dagster_home = _run(tmp_path, postgres_url, redis_url)
    assert code != 0
    assert "STRESS_POSTGRES_URL=postgres:***@127.0.0.1" in output, output[-3000:]
    assert _leaks(password, output, stress_home, dagster_home) == []
