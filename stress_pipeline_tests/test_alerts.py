"""Alerts end to end: PagerDuty Events v2 bodies, the durable queue, delivery over real HTTP to the
real receiver recording in real PostgreSQL, through the fault proxy, and the embedded receiver service."""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from stress_pipeline.faults.proxy import FaultProxy
from stress_pipeline.monitoring.alert_store import alert_tables, deliveries_of, incidents_of
from stress_pipeline.monitoring.alerts import Alert, AlertError, dedup_key, resolve, trigger
from stress_pipeline.monitoring.delivery import AlertDispatcher, AlertSender, Endpoint, RetryPolicy
from stress_pipeline.monitoring.queue import AlertQueue, AlertQueueCorruptError
from stress_pipeline.monitoring.receiver import AlertReceiver
from stress_pipeline.services import alert_receiver as service
from stress_pipeline.services.connections import postgres_engine
from stress_pipeline.services.errors import ServiceStartError

pytestmark = pytest.mark.services

ROUTING_KEY = "R0ut1ngK3ySecret" + "x" * 16  # 32 characters, greppable


def _trigger(i: int, failure: str = "api_down") -> Alert:
    return trigger(failure, f"subject-{i}", f"alert {i}", severity="critical", source="test")


@pytest.fixture
def schema() -> str:
    return f"t_alerts_{uuid.uuid4().hex[:10]}"


@pytest.fixture
def engine(external_service_urls, schema: str) -> Iterator[sa.Engine]:
    eng = postgres_engine(external_service_urls.postgres_url)
    yield eng
    with eng.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    eng.dispose()


@pytest.fixture
def receiver(external_service_urls, engine: sa.Engine, schema: str) -> Iterator[AlertReceiver]:
    with AlertReceiver(external_service_urls.postgres_url, schema=schema) as running:
        yield running


def _incident_counts(engine: sa.Engine, schema: str, keys: list[str]) -> dict[str, int]:
    counts = dict.fromkeys(keys, 0)
    for row in incidents_of(engine, alert_tables(schema), keys):
        counts[row["dedup_key"]] += 1
    return counts


# ------------------------------------------------------------------------------------ event shape


def test_bad_events_name_every_field() -> None:
    with pytest.raises(AlertError) as err:
        trigger("api_down", "binance", "x", severity="fatal", source="test")
    assert "payload.severity" in str(err.value) and "fatal" in str(err.value)
    with pytest.raises(AlertError, match="routing_key: 5 characters, expected 32"):
        _trigger(1).body("short")
    with pytest.raises(AlertError, match="dedup_key: subject must be a non-empty string"):
        dedup_key("api_down", " ")
    assert dedup_key("api down", "BTC/USDT") == "stress-pipeline/api-down/BTC-USDT"
    long_a, long_b = dedup_key("x", "a" * 300 + "1"), dedup_key("x", "a" * 300 + "2")
    assert len(long_a) == 255 and long_a != long_b


# ------------------------------------------------------------------------------------ durable queue


def test_queue_keeps_order_across_reopen_cuts_a_torn_tail_and_refuses_corruption(tmp_path: Path) -> None:
    with AlertQueue(tmp_path) as queue:
        for i in range(3):
            queue.put(_trigger(i).unrouted_body())
        queue.ack(1)
        with pytest.raises(ValueError, match="routing key"):
            queue.put(_trigger(9).body(ROUTING_KEY))
    with open(tmp_path / "alerts.jsonl", "ab") as out:
        out.write(b'{"crc32":"00000000","rec":{"seq"')  # a torn append
    with AlertQueue(tmp_path) as queue:
        assert [a.seq for a in queue.pending()] == [2, 3]
        assert queue.torn_bytes > 0
    assert ROUTING_KEY not in (tmp_path / "alerts.jsonl").read_text()
    lines = (tmp_path / "alerts.jsonl").read_bytes().split(b"\n")
    lines[0] = lines[0].replace(b'"seq":1', b'"seq":7')  # CRC no longer matches, intact lines follow
    (tmp_path / "alerts.jsonl").write_bytes(b"\n".join(lines))
    with pytest.raises(AlertQueueCorruptError, match="damaged line at byte 0"):
        AlertQueue(tmp_path)


# -------------------------------------------------------------------------- receiver and delivery


def test_receiver_records_dedups_resolves_and_rejects(receiver: AlertReceiver, engine, schema, tmp_path) -> None:
    sender = AlertSender(Endpoint(receiver.url, ROUTING_KEY), AlertQueue(tmp_path), RetryPolicy(base_delay_s=0.01))
    alert = trigger("high_slippage", f"BTC-{uuid.uuid4().hex[:6]}", "slippage 1%", severity="error", source="t")
    first = sender.send(alert)
    again = sender.send(alert)  # an open incident folds a repeated trigger
    assert [d.outcome for d in first + again] == ["delivered", "delivered"]
    assert _incident_counts(engine, schema, [alert.dedup_key]) == {alert.dedup_key: 1}
    failure, subject = alert.dedup_key.split("/")[1:]
    sender.send(resolve(failure, subject))
    sender.send(alert)  # after resolve, a new incident
    rows = incidents_of(engine, alert_tables(schema), [alert.dedup_key])
    assert [(r["status"], r["triggers"]) for r in rows] == [("resolved", 2), ("triggered", 1)]
    # An event the receiver refuses is dropped, not retried, and the queue moves on.
    bad = Alert("trigger", "stress-pipeline/x/y", summary="s", source="", severity="info")
    sender.queue.put(bad.unrouted_body())
    rejected = sender.deliver_pending()
    assert [(d.outcome, d.status) for d in rejected] == [("rejected", 400)]
    assert "payload.source" in rejected[0].error and len(sender.queue) == 0
    sender.queue.close()


def test_server_errors_are_retried_with_backoff(receiver: AlertReceiver, engine, schema, tmp_path) -> None:
    sleeps: list[float] = []
    policy = RetryPolicy(max_attempts=4, base_delay_s=0.1, max_delay_s=0.25)
    sender = AlertSender(Endpoint(receiver.url, ROUTING_KEY), AlertQueue(tmp_path), policy, sleep=sleeps.append)
    receiver.failures.fail_next(3, 503)
    alert = _trigger(int(time.time() * 1e6), "order_placement_failed")
    [delivery] = sender.send(alert)
    assert delivery.delivered and delivery.attempts == 4 and sleeps == [0.1, 0.2, 0.25]
    assert len(deliveries_of(engine, alert_tables(schema), [delivery.alert_id])) == 1
    sender.queue.close()


def test_alerts_wait_out_an_outage_and_go_out_once_in_order(
    receiver: AlertReceiver, engine, schema, tmp_path, caplog
) -> None:
    caplog.set_level(logging.DEBUG)
    with FaultProxy("127.0.0.1", receiver.port, seed=3) as proxy:
        url = f"http://127.0.0.1:{proxy.port}/v2/enqueue"
        policy = RetryPolicy(max_attempts=2, base_delay_s=0.02, timeout_s=1.0)
        dispatcher = AlertDispatcher(AlertSender(Endpoint(url, ROUTING_KEY), AlertQueue(tmp_path), policy),
                                     reconnect_s=0.1)  # fmt: skip
        proxy.down()
        tag = uuid.uuid4().hex[:6]
        alerts = [trigger("connectivity_lost", f"{tag}-{i}", f"n{i}", severity="critical", source="t")
                  for i in range(6)]  # fmt: skip
        for alert in alerts:
            dispatcher.raise_alert(alert)
        time.sleep(0.5)
        assert len(dispatcher.sender.queue) == 6 and not dispatcher.deliveries
        proxy.up()
        assert dispatcher.wait_empty(10.0)
        dispatcher.close()
    keys = [a.dedup_key for a in alerts]
    assert [d.dedup_key for d in dispatcher.deliveries] == keys
    recorded = deliveries_of(engine, alert_tables(schema), [d.alert_id for d in dispatcher.deliveries])
    assert [r["dedup_key"] for r in recorded] == keys  # once each, in the order raised
    assert _incident_counts(engine, schema, keys) == dict.fromkeys(keys, 1)
    assert ROUTING_KEY not in caplog.text and ROUTING_KEY not in (tmp_path / "alerts.jsonl").read_text()
    dispatcher.sender.queue.close()


def test_a_new_sender_sends_what_a_dead_one_left_queued(receiver: AlertReceiver, engine, schema, tmp_path) -> None:
    with AlertQueue(tmp_path) as queue:  # raised while nothing could deliver, then the process died
        bodies = [_trigger(int(time.time() * 1e6) + i, "redis_down").unrouted_body() for i in range(3)]
        for body in bodies:
            queue.put(body)
    with AlertQueue(tmp_path) as queue:
        delivered = AlertSender(Endpoint(receiver.url, ROUTING_KEY), queue).deliver_pending()
    assert [d.dedup_key for d in delivered] == [b["dedup_key"] for b in bodies]


# -------------------------------------------------------------------------- the embedded receiver


def test_embedded_receiver_service_starts_once_answers_and_stops(external_service_urls, tmp_path, schema) -> None:
    home = tmp_path / "home"
    svc_schema = f"{schema}_svc"
    try:
        record = service.ensure_receiver(home, external_service_urls.postgres_url, schema=svc_schema)
        assert service.is_receiver(record.pid, home / "services" / "alert_receiver")
        assert service.ensure_receiver(home, external_service_urls.postgres_url, schema=svc_schema).pid == record.pid
        assert service.receiver_status(home)["running"] is True
        with AlertQueue(tmp_path / "q") as queue:
            [delivery] = AlertSender(Endpoint(record.url, ROUTING_KEY), queue).send(_trigger(1, "ess_tripped"))
        assert delivery.delivered
        os.kill(record.pid, 9)  # a dead receiver is started again on the same port
        restarted = service.ensure_receiver(home, external_service_urls.postgres_url, schema=svc_schema)
        assert restarted.pid != record.pid and restarted.port == record.port
        assert service.stop_receiver(home) is True
        assert service.receiver_status(home)["running"] is False
        saved = json.dumps(restarted.__dict__) + (home / "services/alert_receiver/receiver.log").read_text()
        assert ROUTING_KEY not in saved
    finally:
        service.stop_receiver(home)
        eng = postgres_engine(external_service_urls.postgres_url)
        with eng.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{svc_schema}" CASCADE'))
        eng.dispose()


def test_receiver_that_cannot_start_names_its_log_and_cause(tmp_path) -> None:
    with pytest.raises(ServiceStartError) as err:
        service.ensure_receiver(str(tmp_path), "postgresql://postgres:pw@127.0.0.1:1/none", timeout=10.0)
    message = str(err.value)
    assert "exited with code 1" in message and "alert_receiver/receiver.log" in message
    assert "Connection refused" in message and ":pw@" not in message
    assert service.receiver_status(tmp_path)["running"] is False


def test_services_stop_stops_the_receiver_too(external_service_urls, tmp_path, schema) -> None:
    from stress_pipeline.services import stop_embedded
    from stress_pipeline.settings import make_settings

    settings = make_settings(home=tmp_path, postgres_url=external_service_urls.postgres_url,
                             redis_url=external_service_urls.redis_url)  # fmt: skip
    try:
        record = service.ensure_receiver(settings.home, external_service_urls.postgres_url, schema=schema)
        assert stop_embedded(settings) is True
        assert not service.is_receiver(record.pid, settings.paths.alert_receiver)
    finally:
        service.stop_receiver(settings.home)
        eng = postgres_engine(external_service_urls.postgres_url)
        with eng.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        eng.dispose()
