"""Health probes of the real servers, through the fault proxy: the monitors see an outage from probes."""

from __future__ import annotations

import socket
import time
from urllib.parse import urlsplit

import pandas as pd
import pytest

from stress_pipeline.faults.proxy import FaultProxy
from stress_pipeline.monitoring.monitors import (
    EQUITY_COLUMNS,
    FLAG_COLUMNS,
    MARK_COLUMNS,
    MONITORS,
    WEBHOOK_COLUMNS,
    MonitorConfig,
    Observation,
    empty_table,
    run_monitors,
)
from stress_pipeline.monitoring.probes import HealthProber, probe_once, service_checks
from stress_pipeline.simulation.events import EVENT_COLUMNS


def _observation(probes: pd.DataFrame) -> Observation:
    return Observation(
        as_of=pd.Timestamp.now(tz="UTC"), events=empty_table(EVENT_COLUMNS), equity=empty_table(EQUITY_COLUMNS),
        marks=empty_table(MARK_COLUMNS), probes=probes, webhooks=empty_table(WEBHOOK_COLUMNS),
        flags=empty_table(FLAG_COLUMNS),
    )  # fmt: skip


@pytest.mark.services
def test_redis_outage_through_the_proxy_is_detected_from_probes(external_service_urls) -> None:
    redis_port = urlsplit(external_service_urls.redis_url).port or 6379
    pg_port = urlsplit(external_service_urls.postgres_url).port or 5432
    with FaultProxy("127.0.0.1", redis_port) as redis_proxy, FaultProxy("127.0.0.1", pg_port) as pg_proxy:
        checks = service_checks(redis_url=redis_proxy.url_for(external_service_urls.redis_url),
                                postgres_url=pg_proxy.url_for(external_service_urls.postgres_url),
                                network=("127.0.0.1", pg_proxy.port), timeout_s=1.0)  # fmt: skip
        with HealthProber(checks, interval_s=0.2) as prober:
            time.sleep(0.8)
            went_down = pd.Timestamp.now(tz="UTC")
            redis_proxy.down()
            time.sleep(1.5)
            redis_proxy.up()
            time.sleep(0.6)
        probes = prober.table()
    assert set(probes["target"]) == {"redis", "postgres", "network"}
    redis = probes[probes["target"] == "redis"]
    assert (~redis["ok"]).sum() >= 3 and redis["ok"].iloc[-1] and redis["ok"].iloc[0]
    assert "Redis" in redis.loc[~redis["ok"], "error"].iloc[0] or "redis" in redis.loc[~redis["ok"], "error"].iloc[0]
    found = run_monitors(_observation(probes), MonitorConfig(), MONITORS)
    assert found["failure_mode"].tolist() == ["redis_down"]  # postgres and network stayed up: silent
    delay = (found["detected_at"].iloc[0] - went_down).total_seconds()
    assert 0 <= delay < 1.0  # two failed probes 0.2 s apart, each refused at once


def test_probe_rows_name_the_failure() -> None:
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there now

    def broken() -> None:
        raise RuntimeError("disk on fire")

    rows = probe_once({**service_checks(network=("127.0.0.1", port), timeout_s=0.5), "custom": broken})
    assert rows["target"].tolist() == ["network", "custom"] and not rows["ok"].any()
    assert "ConnectionRefusedError" in rows["error"].iloc[0] and rows["error"].iloc[1] == "RuntimeError: disk on fire"
    assert str(rows["ts"].dtype) == "datetime64[ns, UTC]" and (rows["latency_ms"] >= 0).all()
    with pytest.raises(ValueError, match="interval_s"):
        HealthProber({}, interval_s=0)
