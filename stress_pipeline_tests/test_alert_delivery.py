"""Alert delivery scenarios over real HTTP to the real receiver in real PostgreSQL, the path degraded by
the fault proxy; the alert endpoint from configuration."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from stress_pipeline.monitoring.alert_store import deliveries_of, incidents_of
from stress_pipeline.monitoring.alerts import resolve
from stress_pipeline.monitoring.delivery import AlertSender, Endpoint
from stress_pipeline.monitoring.delivery_report import (
    DELIVERY_COLUMNS,
    delivery_failures,
    delivery_summary,
    phase_schedule,
    run_delivery_scenarios,
    validate_delivery,
)
from stress_pipeline.monitoring.queue import AlertQueue
from stress_pipeline.monitoring.receiver import AlertReceiver
from stress_pipeline.services.alert_receiver import LOCAL_ROUTING_KEY, alert_endpoint

KEY = "0123456789abcdef0123456789abcdef"


@pytest.fixture
def receiver(external_service_urls) -> Iterator[AlertReceiver]:
    schema = f"t_delivery_{uuid.uuid4().hex[:10]}"
    with AlertReceiver(external_service_urls.postgres_url, schema=schema) as running:
        yield running
        with running.engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))


def _counters(receiver: AlertReceiver):
    def incidents(keys):
        return Counter(row["dedup_key"] for row in incidents_of(receiver.engine, receiver.tables, keys))

    def receptions(ids):
        return Counter(row["alert_id"] for row in deliveries_of(receiver.engine, receiver.tables, ids))

    return incidents, receptions


@pytest.mark.services
def test_degraded_path_delivers_everything_once(receiver: AlertReceiver, tmp_path) -> None:
    incidents, receptions = _counters(receiver)
    run = run_delivery_scenarios(receiver.port, KEY, tmp_path, incidents, count=20, tag=uuid.uuid4().hex[:8],
                                 outage_s=1.0, stall_s=0.8, count_receptions=receptions)  # fmt: skip
    table = run.table
    assert tuple(table.columns) == DELIVERY_COLUMNS and len(table) == 20
    assert set(run.phases) == {"healthy", "slow", "down", "answers_lost"}
    assert table["delivered"].all() and (table["incidents"] == 1).all()
    assert table["degraded"].tolist() == [p != "healthy" for p in run.phases]
    phase = pd.Series(run.phases)
    seconds = table["delivery_s"]
    assert seconds[phase == "down"].min() > 0.5  # they waited out the outage in the queue
    assert seconds[phase == "slow"].min() > 0.15  # 300 +- 100 ms each way
    assert max(run.receptions) > 1  # an answer was lost, the event sent again and folded
    summary = delivery_summary(table)
    assert summary["delivery_pct"] == 100.0 and summary["duplicates"] == 0 and not delivery_failures(summary)


@pytest.mark.services
def test_a_duplicate_incident_fails_delivery(receiver: AlertReceiver, tmp_path) -> None:
    incidents, _ = _counters(receiver)
    tag = uuid.uuid4().hex[:8]
    first = run_delivery_scenarios(receiver.port, KEY, tmp_path / "a", incidents, count=3, degrade=False, tag=tag)
    with AlertQueue(tmp_path / "r") as queue:  # the incidents are resolved, then the same events come again
        sender = AlertSender(Endpoint(receiver.url, KEY), queue)
        for key in first.table["alert"]:
            sender.send(resolve(*key.split("/")[1:]))
    again = run_delivery_scenarios(receiver.port, KEY, tmp_path / "b", incidents, count=3, degrade=False, tag=tag)
    assert again.table["incidents"].tolist() == [2, 2, 2]
    failures = delivery_failures(delivery_summary(again.table))
    assert failures == ["3 event(s) with more than one incident"]


def test_schedule_and_summary_values() -> None:
    assert phase_schedule(10) == ["healthy"] * 3 + ["slow"] * 2 + ["down"] * 2 + ["answers_lost"] + ["healthy"] * 2
    table = pd.DataFrame({"alert": list("abcd"), "degraded": [False] * 4, "delivered": [True, True, True, False],
                          "delivery_s": [1.0, 2.0, 3.0, np.nan], "incidents": [1, 1, 1, 0]})  # fmt: skip
    summary = delivery_summary(table)
    assert summary["delivery_pct"] == 75.0 and summary["median_s"] == 2.0 and summary["p95_s"] == pytest.approx(2.9)
    assert delivery_failures(summary) == ["delivery 75.0% < 100%"]
    slower = ["delivery 75.0% < 100%", "median delivery 2.000 s, target < 1.5 s"]
    assert delivery_failures(summary, median_s=1.5) == slower


def test_delivery_table_errors_name_column_and_row() -> None:
    good = pd.DataFrame({"alert": ["a", "b"], "degraded": [False, True], "delivered": [True, False],
                         "delivery_s": [0.1, np.nan], "incidents": [1, 0]})  # fmt: skip
    validate_delivery(good)
    with pytest.raises(ValueError, match=r"column 'delivery_s', row 1: 0.5 is not seconds >= 0 when delivered"):
        validate_delivery(good.assign(delivery_s=[0.1, 0.5]))
    with pytest.raises(ValueError, match=r"column 'incidents', row 0: -1"):
        validate_delivery(good.assign(incidents=[-1, 0]))
    with pytest.raises(ValueError, match=r"column 'alert', row 1: 'a' is not one row per alert"):
        validate_delivery(good.assign(alert=["a", "a"]))
    with pytest.raises(ValueError, match=r"missing column\(s\) incidents"):
        validate_delivery(good.drop(columns="incidents"))
    with pytest.raises(ValueError, match="count: expected >= 1"):
        run_delivery_scenarios(1, KEY, "/nonexistent", lambda keys: {}, count=0)


def test_alert_endpoint_from_configuration(tmp_path) -> None:
    real = alert_endpoint(tmp_path, "postgresql://unused", "https://events.pagerduty.com/v2/enqueue", KEY)
    assert real.url == "https://events.pagerduty.com/v2/enqueue" and real.routing_key == KEY
    assert KEY not in repr(real) and KEY not in str(real)
    with pytest.raises(ValueError, match=r"without a routing key \(STRESS_ALERT_ROUTING_KEY\)"):
        alert_endpoint(tmp_path, "postgresql://unused", "https://events.pagerduty.com/v2/enqueue", None)
    with pytest.raises(ValueError, match="expected an http"):
        alert_endpoint(tmp_path, "postgresql://unused", "ftp://example.org/v2/enqueue", KEY)
    assert len(LOCAL_ROUTING_KEY) == 32
