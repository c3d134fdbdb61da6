"""The embedded servers are private: passwords, file modes, other OS users refused, old installs migrated.

Every test starts real servers under its own STRESS_HOME and stops them (and kills anything left
working in the services dir) on teardown.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis

from stress_pipeline.services import ServiceStartError, check_postgres, check_redis, embedded, resolve_service_urls
from stress_pipeline.services.credentials import read_password
from stress_pipeline.services.launch import postgres_bin_dir, redis_server_bin, run
from stress_pipeline.services.postgres_server import hba_secured
from stress_pipeline.services.privileges import SELF_CWD, prepare_dir, server_run_as
from stress_pipeline.services.state_file import ServiceLayout
from stress_pipeline.settings import Settings, get_settings

pytestmark = pytest.mark.services

OTHER_USER = "nobody"

# Run as another OS user: tries the servers without a password and the private files; prints JSON.
PROBE = """
import json, socket, sys
import psycopg
pg_port, redis_port, services = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
out = {}
try:
    psycopg.connect(f"postgresql://postgres@127.0.0.1:{pg_port}/postgres", connect_timeout=3).close()
    out["postgres"] = "connected"
except Exception as err:
    out["postgres"] = str(err)
try:
    psycopg.connect(f"postgresql://postgres:guess@127.0.0.1:{pg_port}/postgres", connect_timeout=3).close()
    out["postgres_guess"] = "connected"
except Exception as err:
    out["postgres_guess"] = str(err)
with socket.create_connection(("127.0.0.1", redis_port), timeout=3) as sock:
    sock.sendall(b"PING\\r\\n")
    out["redis"] = sock.recv(200).decode()
for name in ("secrets/postgres.password", "secrets/redis.password", "services.json"):
    try:
        open(f"{services}/{name}").read()
        out[name] = "read"
    except OSError as err:
        out[name] = type(err).__name__
print(json.dumps(out))
"""


def _processes_under(root: Path) -> list[int]:
    root_str = os.path.realpath(root)
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        with contextlib.suppress(OSError):
            cwd = os.readlink(entry / "cwd")
            if cwd == root_str or cwd.startswith(root_str + os.sep):
                found.append(int(entry.name))
    return found


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Settings]:
    settings = get_settings({"STRESS_HOME": str(tmp_path / "home")})
    try:
        yield settings
    finally:
        try:
            embedded.stop(settings)
        finally:
            for pid in _processes_under(settings.services_dir):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_passwords_are_private_files_and_never_in_the_state_file(home: Settings) -> None:
    state = embedded.start(home)
    layout = ServiceLayout.from_settings(home)
    passwords = {name: read_password(layout.secrets_dir, name) for name in embedded.SERVICE_NAMES}
    assert all(passwords.values()) and len(set(passwords.values())) == 2
    for name, password in passwords.items():
        assert password is not None and len(password) >= 32
        assert _mode(layout.secrets_dir / f"{name}.password") == 0o600
        # The URL handed to the project carries the password; the state file does not.
        assert password in state.get(name).url
    raw = layout.state_file.read_text()
    assert all(password not in raw for password in passwords.values() if password)
    urls = [server["url"] for server in json.loads(raw)["servers"].values()]
    assert len(urls) == 2 and all(":" not in url.split("//", 1)[1].split("@")[0] for url in urls if "@" in url)
    # Neither the password nor anything derived from it that would log in sits in the server files.
    for path in layout.root.rglob("*"):
        if path.is_file() and "secrets" not in path.parts:
            data = path.read_bytes()
            assert all(password.encode() not in data for password in passwords.values() if password), path
    # Dirs 0700, every file the project or the servers write 0600 (PGDATA's own files included).
    for path in [layout.root, layout.secrets_dir, layout.postgres_dir, layout.pgdata, layout.redis_dir]:
        assert _mode(path) == 0o700, path
    for path in [layout.state_file, layout.lock_file, layout.redis_conf, layout.redis_log, layout.redis_pidfile,
                 layout.postgres_log, layout.pgdata / "pg_hba.conf", layout.pgdata / "postmaster.pid"]:  # fmt: skip
        assert _mode(path) == 0o600, path
    # And the password is what lets a client in.
    check_postgres(state.postgres.url)
    check_redis(state.redis.url)


def test_a_client_without_the_password_is_refused(home: Settings) -> None:
    state = embedded.start(home)
    no_password = f"postgresql://postgres@127.0.0.1:{state.postgres.port}/postgres"
    with pytest.raises(psycopg.OperationalError, match="no password supplied"):
        psycopg.connect(no_password, connect_timeout=3)
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(no_password.replace("postgres@", "postgres:wrong@"), connect_timeout=3)
    client = redis.Redis(port=state.redis.port, socket_connect_timeout=3)
    try:
        with pytest.raises(redis.AuthenticationError):
            client.ping()
    finally:
        client.close()


@pytest.mark.skipif(os.geteuid() != 0, reason="connecting as another OS user needs root (setpriv)")
@pytest.mark.skipif(shutil.which("setpriv") is None, reason="setpriv (util-linux) is not installed")
def test_another_os_user_is_refused_and_cannot_read_the_secrets(home: Settings) -> None:
    state = embedded.start(home)
    other = pwd.getpwnam(OTHER_USER)
    cmd = [
        "setpriv", f"--reuid={other.pw_uid}", f"--regid={other.pw_gid}", "--clear-groups",
        sys.executable, "-c", PROBE, str(state.postgres.port), str(state.redis.port), str(home.services_dir),
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd="/", check=False)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert "no password supplied" in seen["postgres"]
    assert "password authentication failed" in seen["postgres_guess"]
    assert seen["redis"].startswith("-NOAUTH")
    assert seen["secrets/postgres.password"] == "PermissionError"
    assert seen["secrets/redis.password"] == "PermissionError"
    assert seen["services.json"] == "PermissionError"


def test_directories_above_stress_home_keep_their_permissions(tmp_path: Path) -> None:
    """A STRESS_HOME below a 0700 dir: the servers (run as another user when we are root) still start,
    and no directory above STRESS_HOME changes mode or owner."""
    parent = tmp_path / "private-parent"
    parent.mkdir(mode=0o700)
    parent.chmod(0o700)
    home = parent / "home"
    settings = get_settings({"STRESS_HOME": str(home)})
    before = {path: (path.stat().st_mode, path.stat().st_uid) for path in home.parents}
    try:
        state = embedded.start(settings)
        check_postgres(state.postgres.url)
        check_redis(state.redis.url)
        assert {path: (path.stat().st_mode, path.stat().st_uid) for path in home.parents} == before
        assert _mode(parent) == 0o700
    finally:
        embedded.stop(settings)
        for pid in _processes_under(settings.services_dir):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


# ------------------------------------------------------------------------------------ old installs


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _old_trust_postgres(layout: ServiceLayout) -> int:
    """A data dir as older versions made it (``--auth=trust``, no password), running, with a table."""
    run_as = server_run_as()
    layout.root.mkdir(parents=True, mode=0o700)
    prepare_dir(layout.postgres_dir, run_as, 0o700)
    prepare_dir(layout.pgdata, run_as, 0o700)
    bin_dir = postgres_bin_dir()
    initdb = [bin_dir / "initdb", "-D", SELF_CWD, "--auth=trust", "-U", "postgres", "--locale=C"]
    code, output = run(initdb, run_as, timeout=120, cwd=layout.pgdata)
    assert code == 0, output
    port = _free_port()
    start = [bin_dir / "pg_ctl", "-D", SELF_CWD, "-l", "../postgres.log", "-w", "-o", f"-h 127.0.0.1 -p {port} -k ''",
             "start"]  # fmt: skip
    code, output = run(start, run_as, timeout=120, cwd=layout.pgdata)
    assert code == 0, output
    with psycopg.connect(f"postgresql://postgres@127.0.0.1:{port}/postgres", autocommit=True) as conn:
        conn.execute("CREATE TABLE kept (x int); INSERT INTO kept VALUES (42)")
    return port


def test_a_running_trust_auth_install_is_migrated_with_its_data(home: Settings) -> None:
    layout = ServiceLayout.from_settings(home)
    old_port = _old_trust_postgres(layout)
    assert not hba_secured(layout.pgdata)

    state = embedded.start(home, [embedded.POSTGRES])

    assert hba_secured(layout.pgdata)
    with pytest.raises(psycopg.OperationalError, match="no password supplied"):
        psycopg.connect(f"postgresql://postgres@127.0.0.1:{state.postgres.port}/postgres", connect_timeout=3)
    # The old server (trusting everybody) is gone; the data is kept.
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(f"postgresql://postgres@127.0.0.1:{old_port}/postgres", connect_timeout=3)
    with psycopg.connect(state.postgres.url) as conn:
        assert conn.execute("SELECT x FROM kept").fetchone() == (42,)


def test_a_lost_password_file_gets_a_new_password_set_on_the_data_dir(home: Settings) -> None:
    first = embedded.start(home, [embedded.POSTGRES])
    layout = ServiceLayout.from_settings(home)
    embedded.stop(home)
    (layout.secrets_dir / "postgres.password").unlink()
    second = embedded.start(home, [embedded.POSTGRES])
    assert second.postgres.url != first.postgres.url
    check_postgres(second.postgres.url)
    with pytest.raises(Exception, match="password authentication failed"):
        check_postgres(first.postgres.url.replace(str(first.postgres.port), str(second.postgres.port)))


def test_a_running_redis_without_password_is_replaced(home: Settings) -> None:
    layout = ServiceLayout.from_settings(home)
    run_as = server_run_as()
    layout.root.mkdir(parents=True, mode=0o700)
    prepare_dir(layout.redis_dir, run_as, 0o700)
    port = _free_port()
    layout.redis_conf.write_text(f"bind 127.0.0.1\nport {port}\ndaemonize yes\ndir .\npidfile redis.pid\n"
                                 "logfile redis.log\nsave \"\"\n")  # fmt: skip
    run_as.chown(layout.redis_conf)
    code, output = run([redis_server_bin(), f"{SELF_CWD}/redis.conf"], run_as, timeout=30, cwd=layout.redis_dir)
    assert code == 0, output
    open_client = redis.Redis(port=port, socket_connect_timeout=3)
    try:
        for _ in range(100):
            with contextlib.suppress(redis.ConnectionError):
                assert open_client.ping()
                break
        state = embedded.start(home, [embedded.REDIS])
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=state.redis.port, socket_connect_timeout=3).ping()
        check_redis(state.redis.url)
    finally:
        open_client.close()


def test_a_data_dir_that_cannot_be_migrated_fails_naming_it(home: Settings) -> None:
    layout = ServiceLayout.from_settings(home)
    run_as = server_run_as()
    layout.root.mkdir(parents=True, mode=0o700)
    prepare_dir(layout.postgres_dir, run_as, 0o700)
    prepare_dir(layout.pgdata, run_as, 0o700)
    (layout.pgdata / "PG_VERSION").write_text("16\n")  # a data dir in name only
    run_as.chown(layout.pgdata / "PG_VERSION")
    with pytest.raises(ServiceStartError) as caught:
        resolve_service_urls(home)
    assert str(layout.pgdata) in str(caught.value)
