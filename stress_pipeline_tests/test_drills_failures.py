"""The drills of the failure modes a drill made happen last: the ledger's PostgreSQL taken away (real
PostgreSQL behind the fault proxy, real Redis, the live write path), orders timing out at the venue
(the paper engine's latency spike) and the market falling as one (a cascade without lag). Criteria
asserted by value; with the mode's monitor switched off the drill fails and so does the mode's row of
the monitoring coverage."""

from __future__ import annotations

import dataclasses
import sys
import uuid

import pandas as pd
import pytest

from stress_pipeline.drills.core import DrillConfigError
from stress_pipeline.drills.correlation_drill import correlation_spike_drill
from stress_pipeline.drills.ledger_drill import ledger_outage_drill
from stress_pipeline.drills.registry import FAILURE_MODE_DRILLS, run_drill
from stress_pipeline.drills.risk_drills import DrillEnv
from stress_pipeline.drills.timeout_drill import SPIKE, answer_times, execution_timeout_drill
from stress_pipeline.monitoring.coverage import measure_coverage
from stress_pipeline.monitoring.drill_detections import detection_table
from stress_pipeline.monitoring.monitors import MONITORS, run_monitors
from stress_pipeline.monitoring.queue import AlertQueue


def accept_all(alerts) -> list[bool]:
    return [True] * len(alerts)


def silent(observation, config) -> pd.DataFrame:
    """A monitor switched off: it looks at nothing and reports nothing."""
    return run_monitors(observation, config, {})


def _values(result) -> dict[str, float]:
    return dict(zip(result.table["criterion"], result.table["value"], strict=True))


def _outcomes(result) -> dict[str, str]:
    return dict(zip(result.table["criterion"], result.table["outcome"], strict=True))


def _row(result, mode: str) -> pd.Series:
    """The mode's row of the coverage judged on this drill run's stored detections alone."""
    stored = {result.drill: detection_table(result.drill, result.detections, result.alerts)}
    return measure_coverage(accept_all, drills=stored, modes=[mode]).table.set_index("failure_mode").loc[mode]


# ---------------------------------------------------------------------------------- execution timeout


@pytest.fixture
def paper_env(tmp_path) -> DrillEnv:
    # A paper drill keeps no live state: a Redis nobody listens on proves it never reaches for it.
    return DrillEnv(redis_url="redis://127.0.0.1:1/0", alerts_dir=str(tmp_path / "alerts"))


def test_orders_timing_out_at_the_venue_are_detected_and_alerted(paper_env: DrillEnv) -> None:
    result = run_drill("execution_timeout", paper_env)
    assert FAILURE_MODE_DRILLS["execution_timeout"] == "execution_timeout"
    assert result.passed, result.table.to_string()
    values = _values(result)
    # the rebalancer's 6 orders in the spike (3 symbols, 2 re-weights) waited 25 to 60 s; each alerted
    assert values["late orders detected and alerted (share)"] == 1.0
    assert result.table.set_index("criterion").loc["late orders detected and alerted (share)", "detail"] == (
        "6 orders answered after 15 s, 6 detected")
    assert values["alert delay after the order (s, max)"] == 15.0  # the monitor's timeout, from the order
    assert values["orders answered in time but alerted"] == 0.0 and values["orders never answered"] == 0.0
    assert values["positions equal the log's fills (max difference)"] == 0.0
    assert 0.0 < values["answer time after the spike (s, max)"] <= 15.0
    detections = result.detections
    assert list(detections["failure_mode"]) == ["execution_timeout"] * 6
    assert (detections["detected_s"] - detections["evidence_s"] == 15.0).all()
    assert (detections["evidence_s"] >= SPIKE["at_s"]).all()
    assert (detections["evidence_s"] < SPIKE["at_s"] + SPIKE["duration_s"]).all()
    assert [a.split("/")[1] for a in result.alerts] == ["execution_timeout"] * 6
    with AlertQueue(paper_env.alerts_dir) as queue:
        assert [q.event["dedup_key"] for q in queue.pending()] == list(result.alerts)
    row = _row(result, "execution_timeout")
    assert row["source"] == "drill" and row["outcome"] == "pass" and row["detection_s"] == 15.0


def test_execution_timeout_fails_without_its_monitor_and_is_not_exercised_without_a_spike(
    paper_env: DrillEnv, monkeypatch
) -> None:
    # without a spike no order waits: the late-order criterion has nothing to judge
    calm = execution_timeout_drill(paper_env, mult=1.0)
    assert _outcomes(calm)["late orders detected and alerted (share)"] == "not_exercised" and not calm.passed
    assert calm.detections.empty
    monkeypatch.setitem(MONITORS, "execution_timeout", silent)
    blind = execution_timeout_drill(paper_env)
    outcomes = _outcomes(blind)
    assert outcomes["late orders detected and alerted (share)"] == "fail" and not blind.passed
    assert _values(blind)["late orders detected and alerted (share)"] == 0.0
    assert outcomes["alert delay after the order (s, max)"] == "not_exercised"
    row = _row(blind, "execution_timeout")
    assert row["source"] == "drill" and not row["fired"] and row["outcome"] == "fail"
    assert row["detail"] == "its monitor detected nothing while execution_timeout ran"


def test_answer_times_read_the_first_report_of_each_order() -> None:
    ts = pd.Timestamp("2026-01-05 00:01:00", tz="UTC")
    events = pd.DataFrame({
        "kind": ["order", "order", "fill", "fill", "reject"], "symbol": ["A", "B", "A", "A", "B"],
        "order_id": [1, 2, 1, 1, 9],
        "ts": [ts, ts, ts + pd.Timedelta(seconds=20), ts + pd.Timedelta(seconds=30), ts],
    })  # fmt: skip
    table = answer_times(events)
    assert list(table["sent_s"]) == [60.0, 60.0] and table["answer_s"].iloc[0] == 20.0
    assert pd.isna(table["answer_s"].iloc[1])  # order 2 was never answered (the reject is another order's)


# ---------------------------------------------------------------------------------- correlation spike


def test_the_market_falling_as_one_is_a_correlation_spike_detected_during_the_fall(paper_env: DrillEnv) -> None:
    result = run_drill("correlation_spike", paper_env)
    assert FAILURE_MODE_DRILLS["correlation_spike"] == "correlation_spike"
    assert result.passed, result.table.to_string()
    values = _values(result)
    # the fall began at 10:00; the window's correlation crossed 0.9 at the close of its second bar
    assert values["correlation spike detected (s after the fall began)"] == 120.0
    assert result.table.set_index("criterion").loc["correlation spike detected (s after the fall began)",
                                                   "detail"] == "mean pairwise correlation 0.985"  # fmt: skip
    assert values["spike alerts before the fall (false alarms)"] == 0.0 and values["alerts for the fall"] == 1.0
    assert list(result.detections["detected_s"]) == [36_120.0] and [a.split("/")[1] for a in result.alerts] == [
        "correlation_spike"]
    row = _row(result, "correlation_spike")
    assert row["source"] == "drill" and row["outcome"] == "pass" and row["detection_s"] == 0.0


def test_a_lagged_cascade_is_no_spike_and_a_switched_off_monitor_fails_the_coverage(
    paper_env: DrillEnv, monkeypatch
) -> None:
    # the shipped cascade's lags: the followers fall 2 and 4 bars later, minute returns no longer move together
    lagged = correlation_spike_drill(paper_env, lag_bars=(2, 4))
    outcomes = _outcomes(lagged)
    assert outcomes["correlation spike detected (s after the fall began)"] == "fail" and not lagged.passed
    assert _values(lagged)["correlation spike detected (s after the fall began)"] == 7_200.0  # never: the run's end
    assert outcomes["alerts for the fall"] == "fail" and lagged.detections.empty
    monkeypatch.setitem(MONITORS, "correlation_spike", silent)
    blind = correlation_spike_drill(paper_env)
    assert _outcomes(blind)["correlation spike detected (s after the fall began)"] == "fail" and not blind.passed
    row = _row(blind, "correlation_spike")
    assert row["source"] == "drill" and not row["fired"] and row["outcome"] == "fail"
    assert row["detail"] == "its monitor detected nothing while correlation_spike ran"


def test_bad_configurations_of_the_paper_drills_name_the_field(paper_env: DrillEnv) -> None:
    with pytest.raises(DrillConfigError, match=r"correlation_spike: lag_bars \(-1, 2\): expected two whole numbers"):
        correlation_spike_drill(paper_env, lag_bars=(-1, 2))
    with pytest.raises(ValueError, match=r"faults\[0\] \(latency_spike\): params.mult: Input should be greater than"):
        execution_timeout_drill(paper_env, mult=-1.0)


# ------------------------------------------------------------------------------------ postgres outage


@pytest.fixture
def env(external_service_urls, tmp_path) -> DrillEnv:
    return DrillEnv(redis_url=external_service_urls.redis_url, postgres_url=external_service_urls.postgres_url,
                    alerts_dir=str(tmp_path / "alerts"), operator_cli=(sys.executable, "-m", "stress_pipeline.cli"),
                    namespace=f"stress-test-{uuid.uuid4().hex[:12]}", repeats=2)  # fmt: skip


@pytest.mark.services
def test_the_ledger_away_the_writer_buffers_loses_nothing_and_the_monitor_alerts(env: DrillEnv) -> None:
    result = run_drill("postgres_outage", env)
    assert FAILURE_MODE_DRILLS["postgres_down"] == "postgres_outage"
    assert result.passed, result.table.to_string()
    values = _values(result)
    # back on the first write after the path returns: the 10 s outage and about a tick
    assert 10.0 <= values["recovery_s"] < 12.0
    assert values["records buffered per outage (min)"] >= 40  # trading went on: a fill and a mark per 0.1 s tick
    assert values["fills lost"] == 0.0 and values["fills stored twice"] == 0.0
    assert values["ledger entries balanced"] == 1.0 and values["Redis positions equal the ledger's"] == 1.0
    assert values["outages alerted"] == 2.0
    assert 0.0 < values["detection delay (s, max)"] <= 2.5  # the second failed probe, 1 s apart
    detections = result.detections
    assert list(detections["failure_mode"]) == ["postgres_down"] * 2
    assert ((detections["detected_s"] - detections["evidence_s"]).between(0.9, 1.5)).all()
    assert [a.split("/")[1] for a in result.alerts] == ["postgres_down"] * 2
    timeline = result.timeline
    faults = timeline.loc[timeline["kind"] == "fault", "t_s"].to_numpy()
    recoveries = timeline.loc[timeline["kind"] == "recovery", "t_s"].to_numpy()
    assert len(faults) == len(recoveries) == 2 and (recoveries - faults > 10.0).all()
    with AlertQueue(env.alerts_dir) as queue:
        assert [q.event["dedup_key"] for q in queue.pending()] == list(result.alerts)
    row = _row(result, "postgres_down")
    assert row["source"] == "drill" and row["outcome"] == "pass" and row["detection_s"] <= 1.5


@pytest.mark.services
def test_without_its_monitor_the_ledger_outage_fails_and_so_does_its_coverage(env: DrillEnv, monkeypatch) -> None:
    monkeypatch.setitem(MONITORS, "postgres_down", silent)
    result = ledger_outage_drill(dataclasses.replace(env, repeats=1), outage_s=3.0)
    outcomes = _outcomes(result)
    assert outcomes["outages alerted"] == "fail" and _values(result)["outages alerted"] == 0.0
    assert outcomes["detection delay (s, max)"] == "not_exercised" and not result.passed
    # the write path itself still held: buffered, flushed, nothing lost
    assert outcomes["fills lost"] == outcomes["recovery_s"] == "pass"
    row = _row(result, "postgres_down")
    assert row["source"] == "drill" and not row["fired"] and row["outcome"] == "fail"
    assert row["detail"] == "its monitor detected nothing while postgres_outage ran"


def test_the_ledger_outage_needs_the_ledger_url_and_positive_settings(tmp_path) -> None:
    with pytest.raises(DrillConfigError, match=r"postgres_outage: DrillEnv.postgres_url is empty"):
        ledger_outage_drill(DrillEnv(redis_url="redis://127.0.0.1:1/0", alerts_dir=str(tmp_path)))
    env = DrillEnv(redis_url="redis://127.0.0.1:1/0", postgres_url="postgresql://nobody@127.0.0.1:1/none")
    with pytest.raises(DrillConfigError, match=r"postgres_outage: DrillEnv.repeats 0: expected > 0"):
        ledger_outage_drill(dataclasses.replace(env, repeats=0))
    with pytest.raises(DrillConfigError, match=r"postgres_outage: outage_s -1.0: expected > 0"):
        ledger_outage_drill(env, outage_s=-1.0)
