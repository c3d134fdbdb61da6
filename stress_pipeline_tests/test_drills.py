"""The drills: criteria table and timeline rules, the live safety governor and its operator reset, and
each drill run against real Redis with its pass criteria asserted by value."""

from __future__ import annotations

import dataclasses
import math
import sys
import uuid
from collections.abc import Iterator

import pandas as pd
import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st

from stress_pipeline.cli import main as cli_main
from stress_pipeline.drills.core import DrillConfigError, DrillRecord, SimClock, validate_drill_table
from stress_pipeline.drills.ess import EssResetRefused, LiveGovernor, operator_reset
from stress_pipeline.drills.registry import DRILLS, drill, run_drill, run_drills
from stress_pipeline.drills.risk_drills import DrillEnv
from stress_pipeline.monitoring.queue import AlertQueue
from stress_pipeline.services import redis_client
from stress_pipeline.state.hot_state import HotState
from stress_pipeline.trading.risk.policy import SafetyConfig

# ------------------------------------------------------------------------------------ criteria table


def test_a_value_never_measured_is_not_exercised_never_a_pass() -> None:
    record = DrillRecord("d", SimClock().now)
    assert record.check("a", 0.5, "<", 1.0) and not record.check("b", 2.0, "<", 1.0)
    assert not record.check("c", None, "<", 1.0) and not record.check("d", math.nan, ">=", 0.0)
    result = record.result()
    assert list(result.table["outcome"]) == ["pass", "fail", "not_exercised", "not_exercised"]
    assert not result.passed
    assert not DrillRecord("empty", SimClock().now).result().passed  # no criteria is not a pass


def test_bad_comparisons_kinds_and_tables_are_named() -> None:
    record = DrillRecord("d", SimClock().now)
    with pytest.raises(ValueError, match="comparison '~'"):
        record.check("a", 1.0, "~", 1.0)
    with pytest.raises(ValueError, match="timeline kind 'boom'"):
        record.mark("boom", "x")
    row = {"drill": "d", "criterion": "c", "comparison": "<", "threshold": 1.0, "value": 0.5, "outcome": "pass",
           "detail": ""}  # fmt: skip
    with pytest.raises(ValueError, match="column outcome, row 1: 'ok' is not one of"):
        validate_drill_table(pd.DataFrame([row, {**row, "outcome": "ok"}]))
    with pytest.raises(ValueError, match="column value, row 0: NaN exactly when"):
        validate_drill_table(pd.DataFrame([{**row, "value": math.nan}]))
    with pytest.raises(ValueError, match="missing column"):
        validate_drill_table(pd.DataFrame([{k: v for k, v in row.items() if k != "detail"}]))
    with pytest.raises(DrillConfigError, match="unknown drill 'nope'; known: "):
        drill("nope")


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(0, 1e6, allow_nan=False), min_size=1, max_size=30))
def test_the_sim_clock_only_goes_forward(steps: list[float]) -> None:
    clock = SimClock()
    for step in steps:
        before = clock.now()
        clock.sleep(step)
        assert clock.now() == before + step
    with pytest.raises(ValueError, match="does not go back"):
        clock.advance_to(clock.now() - 1.0)
    with pytest.raises(ValueError, match="cannot sleep"):
        clock.sleep(-1.0)


# ------------------------------------------------------------------------------ live governor, Redis


@pytest.fixture
def client(external_service_urls) -> Iterator[redis.Redis]:
    connection = redis_client(external_service_urls.redis_url)
    try:
        yield connection
    finally:
        connection.close()


@pytest.fixture
def hot(client: redis.Redis) -> Iterator[HotState]:
    state = HotState(client, "run", namespace=f"stress-test-{uuid.uuid4().hex[:12]}")
    state.init("0")
    try:
        yield state
    finally:
        state.clear()


def test_the_live_governor_needs_the_operator_after_the_cooldown(client: redis.Redis, hot: HotState) -> None:
    clock = SimClock()
    governor = LiveGovernor(hot, SafetyConfig(trip_drawdown=0.1, cooldown_s=60.0), 100.0, clock.now)
    assert governor.mark(95.0, flat=False) == [] and hot.snapshot().ess_state == "ARMED"
    clock.sleep(1)
    assert [t.to_state for t in governor.mark(89.0, flat=False)] == ["TRIPPED"]
    assert hot.snapshot().ess_state == "TRIPPED"
    with pytest.raises(EssResetRefused, match="the ESS is TRIPPED; an operator reset is accepted only in"):
        operator_reset(client, hot)
    clock.sleep(1)
    assert [t.to_state for t in governor.mark(89.0, flat=True)] == ["COOLDOWN"]
    clock.sleep(59)
    assert governor.mark(89.0, flat=True) == [] and governor.state == "COOLDOWN"  # 59 s < 60 s
    clock.sleep(1)
    assert [t.to_state for t in governor.mark(89.0, flat=True)] == ["AWAITING_RESET"]
    clock.sleep(3600)
    assert governor.mark(89.0, flat=True) == [] and governor.state == "AWAITING_RESET"  # nobody came
    assert operator_reset(client, hot) == "ARMED"
    reset = governor.mark(89.0, flat=True)
    assert [(t.to_state, t.reason) for t in reset] == [("ARMED", "OPERATOR_RESET")]
    clock.sleep(1)
    assert governor.mark(85.0, flat=False) == []  # the peak was re-based at 89: 4.5% is no trip


# -------------------------------------------------------------------------------------------- drills


@pytest.fixture
def env(external_service_urls, tmp_path) -> DrillEnv:
    return DrillEnv(redis_url=external_service_urls.redis_url, alerts_dir=str(tmp_path / "alerts"),
                    operator_cli=(sys.executable, "-m", "stress_pipeline.cli"),
                    namespace=f"stress-test-{uuid.uuid4().hex[:12]}")  # fmt: skip


def _values(result) -> dict[str, float]:
    """The drill's measured values by criterion; also holds the drill to the failure modes it drives:
    each one's monitor detected it during the drill."""
    from stress_pipeline.drills.registry import FAILURE_MODE_DRILLS

    wanted = {mode for mode, name in FAILURE_MODE_DRILLS.items() if name == result.drill}
    assert wanted <= set(result.detections["failure_mode"]), (result.drill, result.detections)
    return dict(zip(result.table["criterion"], result.table["value"], strict=True))


def _leftovers(env: DrillEnv) -> list:
    client = redis_client(env.redis_url)
    try:
        return list(client.scan_iter(match=f"{env.namespace}:*"))
    finally:
        client.close()


def test_ess_reset_drill(env: DrillEnv) -> None:
    result = run_drill("ess_reset", env)
    values = _values(result)
    assert result.passed, result.table.to_string()
    assert 0.10 < values["trip drawdown"] < 0.13
    assert values["cooldown enforced (s)"] == 300.0
    assert values["reset refused during the cooldown"] == 1.0 and values["ARMED after the operator reset"] == 1.0
    kinds = result.timeline.set_index("what")["kind"]
    assert "detection" in set(kinds) and "recovery" in set(kinds)
    with AlertQueue(env.alerts_dir) as queue:
        assert [q.event["dedup_key"] for q in queue.pending()] == list(result.alerts) and len(result.alerts) == 1
    assert _leftovers(env) == []


def test_correlation_cascade_on_the_live_book(env: DrillEnv) -> None:
    """The live-book cascade (the one a user's decider is judged by; the registry's, without a decider,
    runs through the paper engine: test_drills_paper.py)."""
    from stress_pipeline.drills.risk_drills import correlation_cascade_drill

    result = correlation_cascade_drill(env)
    values = _values(result)
    assert result.passed, result.table.to_string()
    assert 0.15 < values["halt at drawdown > 15%"] < 0.18 and values["loss contained"] < 0.20
    assert values["mean pairwise correlation at the halt"] > 0.8
    assert values["new trades after the halt"] == 0.0
    # from the monitors: the balance's fall beyond 10% within the hour came first, then the 15% halt
    assert [a.split("/")[1] for a in result.alerts] == ["balance_anomaly", "drawdown_exceeded", "ess_tripped"]
    assert values["drawdown detected by the monitors at the halt (s after)"] == 0.0


def test_drills_cli_lists_and_refuses_unknown(capsys) -> None:
    assert cli_main(["drills", "list"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in DRILLS)
    assert cli_main(["drills", "run", "nope"]) == 1
    assert "unknown drill 'nope'" in capsys.readouterr().err


def test_signal_flood_drill(env: DrillEnv) -> None:
    result = run_drill("signal_flood", env)
    values = _values(result)
    assert result.passed, result.table.to_string()
    assert values["signals processed"] == 50.0 and values["trade intents opened"] == 10.0
    assert values["max queue lag (s)"] < 5.0
    assert list(result.timeline["kind"]).index("detection") < list(result.timeline["kind"]).index("recovery")


def test_broker_failure_drill(env: DrillEnv) -> None:
    from dataclasses import replace

    from stress_pipeline.drills.broker_drill import broker_failure_drill

    result = broker_failure_drill(replace(env, repeats=2), outage_s=3.0, gap_s=1.0)
    values = _values(result)
    assert result.passed, result.table.to_string()
    assert 3.0 <= values["recovery_s"] < 6.0  # the outage itself, then a reconnect within a few tries
    assert values["Redis counted each intent once"] > 30 and values["outages alerted"] == 2.0
    assert values["market data age at resume (s, max)"] < 0.5
    assert list(result.timeline["kind"]).count("recovery") == 2
    assert list(result.detections["failure_mode"]) == ["redis_down", "redis_down"]
    assert values["detection delay (s, max)"] < 5.0
    assert _leftovers(env) == []


def test_webhook_lost_drill(env: DrillEnv) -> None:
    result = run_drill("webhook_lost", env)
    values = _values(result)
    assert result.passed, result.table.to_string()
    assert values["gap detected after the last signal (s)"] == pytest.approx(66.0)  # the interval + 10%, no later
    assert values["orders sent (no phantom, no duplicate)"] == 10.0 and values["gaps detected"] == 1.0
    detections = result.timeline[result.timeline["kind"] == "detection"]
    assert list(detections["t_s"]) == [306.0, 540.0]  # from the monitors, at the deadline and at the failure
    with AlertQueue(env.alerts_dir) as queue:
        assert len(queue.pending()) == 2
    assert _leftovers(env) == []


def test_high_slippage_drill(env: DrillEnv) -> None:
    result = run_drill("high_slippage", env)
    values = _values(result)
    assert result.passed, result.table.to_string()
    assert values["slippage recorded on the faulty fill"] == pytest.approx(0.01)
    assert values["fills alerted above 0.5%"] == 1.0  # the 0.02% fills are not alerted
    assert [a.split("/")[1] for a in result.alerts] == ["high_slippage", "kill_switch_set"]


def test_exchange_outage_on_the_live_book(env: DrillEnv) -> None:
    """The live-book outage (the one a user's decider is judged by; the registry's, without a decider,
    runs through the paper engine: test_drills_paper.py)."""
    from stress_pipeline.drills.venue_drills import exchange_outage_drill

    result = exchange_outage_drill(env)
    values = _values(result)
    assert result.passed, result.table.to_string()
    assert values["detection delay (s)"] == 10.0  # 3 failed calls: the order at 120 s and the probes to 130 s
    assert values["orders attempted after detection while down"] == 0.0
    assert values["reconnect interval (s, max deviation from 60)"] == 0.0 and values["recovery_s"] <= 70.0
    reconnects = result.timeline[result.timeline["what"].str.startswith("reconnect")]
    assert len(reconnects) == 16 and reconnects["what"].iloc[-1] == "reconnect succeeded"


def test_an_outage_never_detected_is_not_a_pass(env: DrillEnv) -> None:
    from stress_pipeline.drills.venue_drills import exchange_outage_drill

    result = exchange_outage_drill(env, outage_s=5.0)  # two failed calls, then the API answers: never detected
    values = dict(zip(result.table["criterion"], result.table["value"], strict=True))
    assert len(result.detections) == 0
    outcome = dict(zip(result.table["criterion"], result.table["outcome"], strict=True))
    assert math.isnan(values["detection delay (s)"]) and outcome["detection delay (s)"] == "not_exercised"
    assert not result.passed


def test_stuck_position_drill(env: DrillEnv) -> None:
    result = run_drill("stuck_position", env)
    values = _values(result)
    assert result.passed, result.table.to_string()
    assert values["detection delay (s)"] == 240.0 and values["market fallback orders"] == 2.0
    # the manual-intervention alert follows the monitors' detection of the failed fallback
    assert [a.split("/")[1] for a in result.alerts] == ["stuck_position", "order_placement_failed",
                                                         "manual_intervention"]  # fmt: skip


def test_network_loss_drill_delivers_the_queued_alerts_once_on_reconnect(env: DrillEnv, external_service_urls) -> None:
    from dataclasses import replace

    import sqlalchemy as sa

    from stress_pipeline.services.connections import postgres_engine

    schema = f"drill_alerts_test_{uuid.uuid4().hex[:8]}"
    try:
        result = run_drill("network_loss", replace(env, postgres_url=external_service_urls.postgres_url,
                                                   alerts_schema=schema))  # fmt: skip
        values = _values(result)
        assert result.passed, result.table.to_string()
        assert values["detection delay (s)"] == 10.0  # two failed probes, 10 s apart
        assert values["alerts held while the network was down"] == 2.0  # connectivity lost, the close that failed
        assert values["alerts delivered on reconnect"] == 2.0 and values["deliveries per alert (max)"] == 1.0
        assert values["events logged locally"] == 31.0  # 30 failed probes and the failed close
    finally:
        engine = postgres_engine(external_service_urls.postgres_url)
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        engine.dispose()


def test_network_loss_needs_the_receivers_database(env: DrillEnv) -> None:
    with pytest.raises(DrillConfigError, match=r"needs DrillEnv\.postgres_url"):
        run_drill("network_loss", env)


def test_drills_run_side_by_side_and_a_failing_one_is_named_after_the_others(env: DrillEnv) -> None:
    # env has no PostgreSQL: the two drills that need it raise; the others run to the end all the same.
    names = ["network_loss", "correlation_cascade", "postgres_outage", "rate_limits", "high_slippage"]
    done: list[str] = []
    def env_of(name: str) -> DrillEnv:
        return dataclasses.replace(env, alerts_dir=f"{env.alerts_dir}-{name}")

    results, errors = run_drills(names, env_of, parallel=3, on_done=lambda r: done.append(r.drill))
    assert set(errors) == {"network_loss", "postgres_outage"}
    assert all(isinstance(err, DrillConfigError) for err in errors.values())
    assert "postgres_url" in str(errors["postgres_outage"]) and "postgres_url" in str(errors["network_loss"])
    assert set(results) == set(done) == {"correlation_cascade", "rate_limits", "high_slippage"}
    assert all(result.passed for result in results.values())
    with pytest.raises(DrillConfigError, match="parallel=0"):
        run_drills(names, lambda name: env, parallel=0)
    with pytest.raises(DrillConfigError, match="unknown drill 'nope'"):
        run_drills(["rate_limits", "nope"], lambda name: env)
