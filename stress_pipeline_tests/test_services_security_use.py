"""A run that stops an embedded server holds it exclusively: other runs (other processes) wait, bounded,
or fail naming the run in the way; a killed holder frees the server at once.

Real servers, real outages (the server process is killed and restarted), real second processes.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from stress_pipeline.faults.servers import outage
from stress_pipeline.services import check_postgres, check_redis, embedded
from stress_pipeline.services import server_use as use
from stress_pipeline.services.server_use import ServerInUseError, holders, run_server_use
from stress_pipeline.services.state_file import ServiceLayout
from stress_pipeline.settings import Settings, get_settings

pytestmark = pytest.mark.services

# argv: STRESS_HOME, run id, servers it stops ("" for none), seconds to hold, "outage" to really stop them.
HOLDER = """
import sys, time
from stress_pipeline.faults.servers import outage
from stress_pipeline.services.server_use import run_server_use
from stress_pipeline.settings import get_settings
settings = get_settings({"STRESS_HOME": sys.argv[1]})
stopped = [name for name in sys.argv[3].split(",") if name]
with run_server_use(settings, sys.argv[2], stopped, wait=30):
    drills = [outage(name, settings) for name in stopped] if sys.argv[5:] == ["outage"] else []
    for drill in drills:
        drill.begin()
    print("holding", flush=True)
    time.sleep(float(sys.argv[4]))
    for drill in drills:
        drill.end()
print("released", flush=True)
"""


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Settings]:
    settings = get_settings({"STRESS_HOME": str(tmp_path / "home")})
    try:
        embedded.start(settings)
        yield settings
    finally:
        try:
            embedded.stop(settings)
        finally:
            root = os.path.realpath(settings.services_dir)
            for entry in Path("/proc").glob("[0-9]*"):
                with contextlib.suppress(OSError):
                    if os.readlink(entry / "cwd").startswith(root):
                        os.kill(int(entry.name), signal.SIGKILL)


@contextlib.contextmanager
def _holder(settings: Settings, run_id: str, stopped: str, seconds: float, *extra: str) -> Iterator[subprocess.Popen]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(settings.home), run_id, stopped, str(seconds), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.strip() == "holding", proc.stderr.read() if proc.stderr else line
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=60)


def test_a_drill_fails_naming_the_run_that_uses_the_server(home: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(use, "USE_WAIT", 1.0)
    before = embedded.read_state(home)
    with _holder(home, "run-using-it", "", 60):
        drill = outage("postgres", home)
        started = time.monotonic()
        with pytest.raises(ServerInUseError) as caught:
            drill.begin()
        waited = time.monotonic() - started
        drill.end()  # nothing begun: a no-op
        message = str(caught.value)
        assert "embedded PostgreSQL is in use by run run-using-it" in message
        assert "using it" in message
        assert 1.0 <= waited < 10
        # Nothing was stopped: the other run's server still answers, same process.
        check_postgres(before.postgres.url)
        assert embedded.read_state(home).postgres.pid == before.postgres.pid


def test_a_run_waits_for_a_drill_and_gets_the_server_back(home: Settings) -> None:
    before = embedded.read_state(home)
    with _holder(home, "run-drilling", "postgres,redis", 4, "outage") as proc:
        # Within a short wait: refused, naming the drilling run.
        refused = r"embedded PostgreSQL is in use by run run-drilling .*stopping it"
        with pytest.raises(ServerInUseError, match=refused), run_server_use(home, "run-waiting", wait=0.5):
            pass
        # A wait longer than the drill: granted once the drill is over, the servers answer again.
        with run_server_use(home, "run-waiting", wait=60):
            assert proc.poll() is not None or "released" in (proc.stdout.readline() if proc.stdout else "")
            after = embedded.read_state(home)
            check_postgres(after.postgres.url)
            check_redis(after.redis.url)
            assert after.postgres.pid != before.postgres.pid  # it really was stopped and restarted


def test_two_runs_that_only_use_a_server_share_it(home: Settings) -> None:
    with _holder(home, "run-one", "", 60), run_server_use(home, "run-two", wait=1):
        runs = {holder["run_id"] for holder in holders(ServiceLayout.from_settings(home), "postgres")}
        assert runs == {"run-one", "run-two"}


def test_a_killed_holder_frees_the_server_at_once(home: Settings) -> None:
    layout = ServiceLayout.from_settings(home)
    with _holder(home, "run-killed", "postgres", 60) as proc:
        assert [holder["run_id"] for holder in holders(layout, "postgres")] == ["run-killed"]
        proc.kill()
        proc.wait(timeout=10)
        started = time.monotonic()
        with run_server_use(home, "run-next", ["postgres"], wait=5):
            assert time.monotonic() - started < 2
            assert [holder["run_id"] for holder in holders(layout, "postgres")] == ["run-next"]


def test_a_run_stopping_its_own_server_does_not_wait_for_itself(home: Settings) -> None:
    with run_server_use(home, "run-self", ["postgres"], wait=1), outage("postgres", home, how="stop") as drill:
        assert drill.active
    check_postgres(embedded.read_state(home).postgres.url)
    assert holders(ServiceLayout.from_settings(home), "postgres") == []


def test_a_run_using_a_server_shared_cannot_also_stop_it(home: Settings) -> None:
    with run_server_use(home, "run-shared", wait=1):
        with pytest.raises(RuntimeError, match="takes it exclusively from its start"):
            outage("redis", home).begin()
        check_redis(embedded.read_state(home).redis.url)


def test_services_stop_refuses_while_a_run_uses_the_servers(home: Settings) -> None:
    env = {key: value for key, value in os.environ.items() if key not in ("STRESS_POSTGRES_URL", "STRESS_REDIS_URL")}
    env["STRESS_HOME"] = str(home.home)
    cli = str(Path(sys.executable).with_name("stress-pipeline"))
    with _holder(home, "run-busy", "", 60):
        done = subprocess.run([cli, "services", "stop"], env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode != 0
        assert "embedded PostgreSQL is in use by run run-busy" in done.stdout + done.stderr
        check_postgres(embedded.read_state(home).postgres.url)
    done = subprocess.run([cli, "services", "stop"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "stopped the embedded servers" in done.stdout
