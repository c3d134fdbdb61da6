"""Health probes: what a live system learns about its dependencies, as rows the monitors read.

A probe is a real check of one target — ``SELECT 1`` on PostgreSQL, ``PING`` on Redis, a TCP
connect for the network, an HTTP GET for an exchange's API — timed, and turned into one row of
:data:`~stress_pipeline.monitoring.monitors.PROBE_COLUMNS` (``ok`` false with the error when it
fails). :class:`HealthProber` runs every check each ``interval_s`` in a background thread; its
table goes into an :class:`~stress_pipeline.monitoring.monitors.Observation`, so ``redis_down``,
``postgres_down``, ``connectivity_lost`` and ``api_down`` are detected from probes of the real servers
(through the fault proxy in tests), never from what a test knows it broke.
"""

from __future__ import annotations

import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping

import pandas as pd

from stress_pipeline.monitoring.monitors import PROBE_COLUMNS
from stress_pipeline.services.connections import check_postgres, check_redis
from stress_pipeline.services.urls import mask_url

#: A check raises on failure; its message becomes the probe's ``error``.
Check = Callable[[], None]


def service_checks(
    *, postgres_url: str | None = None, redis_url: str | None = None, network: tuple[str, int] | None = None,
    exchange_url: str | None = None, timeout_s: float = 2.0,
) -> dict[str, Check]:  # fmt: skip
    """The checks of the targets given: ``postgres``, ``redis``, ``network`` (TCP connect to host, port)
    and ``exchange_api`` (HTTP GET answering below 500)."""
    checks: dict[str, Check] = {}
    if postgres_url:
        checks["postgres"] = lambda: check_postgres(postgres_url, timeout=timeout_s)
    if redis_url:
        checks["redis"] = lambda: check_redis(redis_url, timeout=timeout_s)
    if network:
        checks["network"] = lambda: socket.create_connection(network, timeout=timeout_s).close()
    if exchange_url:
        checks["exchange_api"] = lambda: _http_ok(exchange_url, timeout_s)
    return checks


def probe_once(checks: Mapping[str, Check]) -> pd.DataFrame:
    """Run every check once; one row per target (``ts`` when the check started)."""
    rows = []
    for target, check in checks.items():
        started, began = time.time(), time.perf_counter()
        try:
            check()
            ok, error = True, ""
        except Exception as err:  # any failure of the dependency is what the probe reports
            ok, error = False, f"{type(err).__name__}: {err}"[:500]
        rows.append((started, target, ok, (time.perf_counter() - began) * 1000.0, error))
    return _table(rows)


class HealthProber:
    """Probes ``checks`` every ``interval_s`` from a background thread until :meth:`stop`."""

    def __init__(self, checks: Mapping[str, Check], *, interval_s: float = 1.0):
        if not interval_s > 0:
            raise ValueError(f"interval_s: expected > 0, got {interval_s!r}")
        self.checks, self.interval_s = dict(checks), interval_s
        self._frames: list[pd.DataFrame] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="health-prober", daemon=True)

    def start(self) -> HealthProber:
        self._thread.start()
        return self

    def stop(self) -> pd.DataFrame:
        """Stop probing; every probe taken, oldest first."""
        self._stop.set()
        self._thread.join()
        return self.table()

    def table(self) -> pd.DataFrame:
        frames = list(self._frames)
        return pd.concat(frames, ignore_index=True) if frames else _table([])

    def __enter__(self) -> HealthProber:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        while not self._stop.is_set():
            began = time.monotonic()
            self._frames.append(probe_once(self.checks))
            self._stop.wait(max(0.0, self.interval_s - (time.monotonic() - began)))


def _http_ok(url: str, timeout_s: float) -> None:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout_s) as answer:
            status = answer.status
    except urllib.error.HTTPError as err:
        status = err.code
    if status >= 500:
        raise RuntimeError(f"{mask_url(url)} answered HTTP {status}")


def _table(rows: list[tuple]) -> pd.DataFrame:
    table = pd.DataFrame(rows, columns=list(PROBE_COLUMNS))
    table["ts"] = pd.to_datetime(table["ts"].astype(float), unit="s", utc=True)
    return table.astype({"ok": bool, "latency_ms": float})
