"""The drills that run through the paper engine: their pass criteria asserted by value from the paper
run's event log, and the policy or fault under which each criterion fails."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from stress_pipeline.drills.paper_drills import (
    OUTAGE_AT_S,
    armed_at,
    correlation_cascade_drill,
    ess_transitions,
    exchange_outage_drill,
    rate_limits_drill,
    risk_adding,
    sends_of,
)
from stress_pipeline.drills.registry import FAILURE_MODE_DRILLS, run_drill
from stress_pipeline.drills.risk_drills import DrillEnv
from stress_pipeline.monitoring.coverage import measure_coverage
from stress_pipeline.monitoring.drill_detections import detection_table
from stress_pipeline.monitoring.monitors import MONITORS, run_monitors
from stress_pipeline.monitoring.queue import AlertQueue
from stress_pipeline.trading.risk.policy import TradingPolicy


@pytest.fixture
def env(tmp_path) -> DrillEnv:
    # The paper drills keep no live state: a Redis nobody listens on proves they never reach for it.
    return DrillEnv(redis_url="redis://127.0.0.1:1/0", alerts_dir=str(tmp_path / "alerts"))


def _values(result) -> dict[str, float]:
    """Measured values by criterion; the drill's failure modes were each detected by their monitor."""
    wanted = {mode for mode, name in FAILURE_MODE_DRILLS.items() if name == result.drill}
    assert wanted <= set(result.detections["failure_mode"]), (result.drill, result.detections)
    return dict(zip(result.table["criterion"], result.table["value"], strict=True))


def _outcomes(result) -> dict[str, str]:
    return dict(zip(result.table["criterion"], result.table["outcome"], strict=True))


def _policy(**safety: float) -> TradingPolicy:
    data = TradingPolicy().model_dump()
    data["risk"]["safety"].update(safety)
    return TradingPolicy.model_validate(data)


def _detail(result, criterion: str) -> str:
    return result.table.set_index("criterion").loc[criterion, "detail"]


# ------------------------------------------------------------------------------ correlation cascade


def test_correlation_cascade_halts_the_paper_run_and_contains_the_loss(env: DrillEnv) -> None:
    result = run_drill("correlation_cascade", env)
    values = _values(result)
    assert result.passed, result.table.to_string()
    # the ESS trips past the default policy's 10% at the first bar close beyond it, in the cascade
    assert 0.10 <= values["ESS halt: drawdown at the trip"] < 0.12
    assert values["equity marks beyond 15% drawdown with the ESS armed"] == 0.0
    assert values["risk-adding fills from the halt to the reset"] == 0.0
    detail = result.table.set_index("criterion").loc["risk-adding fills from the halt to the reset", "detail"]
    assert detail == "3 risk-adding signals in the halt"  # the dip buyers asked; nothing was filled
    assert values["back to ARMED only by the operator reset"] == 1.0
    assert 0.10 < values["loss contained (max drawdown)"] < 0.13
    assert values["detected by the monitors at the halt (s after the trip)"] == 0.0
    # the equity fell 10.6% within the hour at the close 4 minutes into the cascade
    assert values["balance drop > 10% within an hour alerted (s after the fault)"] == 240.0
    assert _detail(result, "balance drop > 10% within an hour alerted (s after the fault)") == (
        "balance_anomaly monitor: drop 10.6%")
    assert [a.split("/")[1] for a in result.alerts] == ["balance_anomaly", "drawdown_exceeded", "ess_tripped"]
    with AlertQueue(env.alerts_dir) as queue:
        assert [q.event["dedup_key"] for q in queue.pending()] == list(result.alerts)
    timeline = result.timeline
    fault = timeline.loc[timeline["kind"] == "fault", "t_s"].iloc[0]
    assert fault == 600 * 60.0  # the scenario's window: bar 600 of the day
    trip = timeline.loc[timeline["what"].str.startswith("ESS ARMED -> TRIPPED"), "t_s"].iloc[0]
    detected = timeline.loc[timeline["kind"] == "detection", "t_s"]
    recovery = timeline.loc[timeline["kind"] == "recovery", "t_s"].iloc[0]
    # default policy: 300 s of cooldown from the flatten, then the operator 900 s later
    assert fault < trip == detected.min() < recovery and recovery - trip >= 300.0 + 900.0


def test_without_the_drawdown_halt_the_correlation_cascade_fails(env: DrillEnv) -> None:
    result = correlation_cascade_drill(env, policy=_policy(trip_drawdown=0.90, halt_drawdown=0.95))
    values, outcomes = _values(result), _outcomes(result)
    assert not result.passed
    assert outcomes["ESS halt: drawdown at the trip"] == "not_exercised"
    assert outcomes["equity marks beyond 15% drawdown with the ESS armed"] == "fail"
    assert values["equity marks beyond 15% drawdown with the ESS armed"] == 14.0
    assert outcomes["loss contained (max drawdown)"] == "fail"
    assert values["loss contained (max drawdown)"] == pytest.approx(0.2315, abs=5e-4)  # rode the whole cascade
    assert outcomes["risk-adding fills from the halt to the reset"] == "not_exercised"
    # the monitors still see the cascade: the seed's 15% drawdown limit, with no ESS behind it
    assert list(result.detections["failure_mode"]) == ["balance_anomaly", "drawdown_exceeded"]


def test_without_the_balance_monitor_the_cascade_leaves_balance_anomaly_uncovered(env: DrillEnv, monkeypatch) -> None:
    monkeypatch.setitem(MONITORS, "balance_anomaly", lambda observation, config: run_monitors(observation, config, {}))
    result = correlation_cascade_drill(env)
    criterion = "balance drop > 10% within an hour alerted (s after the fault)"
    assert _outcomes(result)[criterion] == "not_exercised" and not result.passed
    assert list(result.detections["failure_mode"]) == ["drawdown_exceeded", "ess_tripped"]
    stored = {result.drill: detection_table(result.drill, result.detections, result.alerts)}
    table = measure_coverage(lambda alerts: [True] * len(alerts), drills=stored).table.set_index("failure_mode")
    assert table.loc["balance_anomaly", "outcome"] == "fail" and not table.loc["balance_anomaly", "fired"]
    assert table.loc["balance_anomaly", "detail"] == "its monitor detected nothing while correlation_cascade ran"
    assert table.loc["drawdown_exceeded", "outcome"] == "pass"  # the drill's other modes still covered


def test_a_halt_later_than_15_percent_fails_the_correlation_cascade(env: DrillEnv) -> None:
    result = correlation_cascade_drill(env, policy=_policy(trip_drawdown=0.20))
    values, outcomes = _values(result), _outcomes(result)
    assert not result.passed and outcomes["ESS halt: drawdown at the trip"] == "pass"  # it did halt, at 21%
    assert outcomes["equity marks beyond 15% drawdown with the ESS armed"] == "fail"
    assert values["equity marks beyond 15% drawdown with the ESS armed"] == 2.0  # the two closes before the trip
    assert outcomes["loss contained (max drawdown)"] == "fail"


def test_an_operator_who_never_comes_leaves_the_recovery_not_exercised(env: DrillEnv) -> None:
    result = correlation_cascade_drill(env, policy=_policy(operator_reset_delay_s=None))
    outcomes = _outcomes(result)
    assert outcomes["back to ARMED only by the operator reset"] == "not_exercised" and not result.passed
    assert outcomes["risk-adding fills from the halt to the reset"] == "pass"  # halted to the end of the run
    assert "recovery" not in set(result.timeline["kind"])


# ---------------------------------------------------------------------------------- exchange outage


def test_exchange_outage_through_the_paper_engine(env: DrillEnv) -> None:
    result = run_drill("exchange_outage", env)
    values = _values(result)
    assert result.passed, result.table.to_string()
    assert values["detection delay (s)"] == 20.0  # the third failed answer in a row, 10 s apart
    assert values["orders sent while the exchange was known down"] == 0.0
    detail = result.table.set_index("criterion").loc["orders sent while the exchange was known down", "detail"]
    # the three orders in flight when it went down were refused; the session then held 44 sends
    assert detail == "3 refused as EXCHANGE_OUTAGE, 15 reconnects with 44 orders waiting"
    assert values["reconnect interval (s, max deviation from 60)"] == 0.0
    assert values["recovery_s"] == pytest.approx(30.0, abs=0.1)  # the next reconnect after the API is back
    assert values["trading resumes: fills after the outage"] > 0
    assert values["positions equal the log's fills (max difference)"] == 0.0
    timeline = result.timeline
    reconnects = timeline[timeline["what"].str.startswith("reconnect ")]
    assert list(reconnects["what"]) == ["reconnect failed"] * 14 + ["reconnect succeeded"]
    end = OUTAGE_AT_S + 900.0
    assert reconnects["t_s"].iloc[-2] < end <= reconnects["t_s"].iloc[-1] < end + 60.0
    recovery = timeline.loc[timeline["kind"] == "recovery", "t_s"].iloc[0]
    assert recovery == reconnects["t_s"].iloc[-1] == pytest.approx(end + values["recovery_s"])
    assert [a.split("/")[1] for a in result.alerts] == ["api_down"]


def test_without_the_exchange_session_the_outage_drill_fails(env: DrillEnv) -> None:
    result = exchange_outage_drill(env, session=False)  # the default router: it sends again at every decision
    values, outcomes = _values(result), _outcomes(result)
    assert not result.passed
    assert outcomes["orders sent while the exchange was known down"] == "fail"
    assert values["orders sent while the exchange was known down"] == 41.0  # 44 refused, 3 of them before it knew
    assert outcomes["reconnect interval (s, max deviation from 60)"] == "not_exercised"
    assert outcomes["detection delay (s)"] == "pass"  # the monitors see it all the same


def test_a_session_that_reconnects_every_two_minutes_fails_the_outage_drill(env: DrillEnv) -> None:
    data = TradingPolicy().model_dump()
    data["router"]["reconnect_s"] = 120.0
    result = exchange_outage_drill(env, policy=TradingPolicy.model_validate(data))
    values, outcomes = _values(result), _outcomes(result)
    assert outcomes["reconnect interval (s, max deviation from 60)"] == "fail"
    assert values["reconnect interval (s, max deviation from 60)"] == 60.0  # the seed's 60 s, not the policy's
    assert outcomes["orders sent while the exchange was known down"] == "pass" and not result.passed


def test_an_outage_too_short_to_see_is_not_a_pass(env: DrillEnv) -> None:
    result = exchange_outage_drill(env, outage_s=15.0)  # two failed probes, no order in the window
    outcomes = _outcomes(result)
    assert len(result.detections) == 0 and not result.passed
    assert outcomes["detection delay (s)"] == "not_exercised"
    assert outcomes["orders sent while the exchange was known down"] == "not_exercised"


# -------------------------------------------------------------------------------------- rate limits


def test_rate_limits_through_the_paper_engine(env: DrillEnv) -> None:
    result = run_drill("rate_limits", env)
    values = _values(result)
    assert result.passed, result.table.to_string()
    assert values["max retries per order"] == 3.0  # the ban outlasts three one-minute Retry-Afters
    assert values["backoff: wait / required (min)"] == 1.0  # each retry exactly at its Retry-After
    assert _detail(result, "backoff: wait / required (min)").startswith("18 retries")
    assert values["orders accepted per 10 s under the throttle (max)"] == 1.0  # 300 x 1/300
    assert values["-1015 seen"] == 6.0 and values["-1003 seen"] == 15.0
    assert values["requests during the ban"] == 15.0  # 3 orders x 4 tries, then 3 new first tries
    assert values["dependency incidents alerted"] == 3.0  # one per symbol, whatever the detections
    assert len(result.alerts) == 6 and len(set(result.alerts)) == 3
    assert values["ESS not tripped"] == 1.0 and values["recovery_s"] == 0.0  # the retry at the ban's end
    with AlertQueue(env.alerts_dir) as queue:
        assert [q.event["dedup_key"] for q in queue.pending()] == list(result.alerts)


def test_a_client_that_retries_more_than_the_seed_allows_fails_the_drill(env: DrillEnv) -> None:
    data = TradingPolicy().model_dump()
    data["exchange"]["rate_limits"]["max_retries"] = 6
    result = rate_limits_drill(env, policy=TradingPolicy.model_validate(data))
    values, outcomes = _values(result), _outcomes(result)
    assert outcomes["max retries per order"] == "fail" and values["max retries per order"] == 4.0
    assert outcomes["dependency incidents alerted"] == "not_exercised"  # it outlasted the ban: no failure seen
    assert not result.passed


def test_sends_of_reads_attempts_refusals_and_waits() -> None:
    ts = pd.to_datetime(["2026-01-05 00:00:00", "2026-01-05 00:00:00", "2026-01-05 00:00:10"], utc=True)
    events = pd.DataFrame({
        "ts": ts, "kind": ["order", "reject", "order"], "order_id": [7, 7, 7],
        "details": ['{"attempt": 0}', '{"attempt": 0, "code": -1015, "retry_after_s": 8.0}', '{"attempt": 1}'],
    })  # fmt: skip
    sends = sends_of(events, 0.1)
    assert list(sends["accepted"]) == [False, True] and list(sends["attempt"]) == [0, 1]
    assert math.isnan(sends["waited_ratio"].iloc[0]) and sends["waited_ratio"].iloc[1] == pytest.approx(10.0 / 8.0)


def test_event_log_readers() -> None:
    ts = pd.to_datetime(["2026-01-05 00:01", "2026-01-05 00:02", "2026-01-05 00:03", "2026-01-05 00:04"], utc=True)
    events = pd.DataFrame({
        "ts": ts, "kind": ["signal", "fill", "ess_transition", "fill"], "symbol": ["A", "A", None, "A"],
        "qty": [0.5, 2.0, math.nan, -1.0],
        "reason": ["", "REBALANCE", "DRAWDOWN_LIMIT", "ESS_FLATTEN"],
        "details": ['{"previous_weight": 0.25}', "{}",
                    '{"drawdown": 0.11, "equity": 89.0, "from": "ARMED", "to": "TRIPPED"}', "{}"],
    })  # fmt: skip
    ess = ess_transitions(events)
    assert list(ess[["from_state", "to_state", "reason"]].iloc[0]) == ["ARMED", "TRIPPED", "DRAWDOWN_LIMIT"]
    assert list(armed_at(pd.Series(ts), ess)) == [True, True, False, False]
    assert risk_adding(events, ts[0], None) == (1, 1)  # the raised weight, the buy; the flatten takes risk off
    assert risk_adding(events, ts[2], None) == (0, 0)
    assert risk_adding(events, None, None) == (0, 0)
