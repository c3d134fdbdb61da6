"""Monitors: each fires on its failure, stays silent on a calm stream, and rejects bad input by name.

The coverage built on them is tested in test_coverage.py."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stress_pipeline.monitoring.crafted import (
    DETECTION_LIMITS_S,
    START,
    calm_stream,
    crafted_stream,
    monitor_config,
)
from stress_pipeline.monitoring.monitors import (
    FAILURE_MODES,
    MONITORS,
    PROBE_COLUMNS,
    MonitorConfig,
    alerts_for,
    empty_table,
    run_monitors,
)

CONFIG = monitor_config()


@pytest.fixture(scope="module")
def calm() -> pd.DataFrame:
    return run_monitors(calm_stream(seed=5).observation, CONFIG)


def test_every_checklist_mode_has_a_monitor() -> None:
    assert set(MONITORS) == set(FAILURE_MODES) and len(FAILURE_MODES) == 14


def test_an_empty_observation_raises_nothing() -> None:
    obs = calm_stream(0).observation
    empty = dataclasses.replace(obs, **{name: getattr(obs, name).iloc[:0] for name in
                                        ("events", "equity", "marks", "probes", "webhooks", "flags")})  # fmt: skip
    for mode, monitor in MONITORS.items():
        assert monitor(empty, CONFIG).empty, mode
    orders_only = dataclasses.replace(obs, events=obs.events[obs.events["kind"] == "order"])
    assert run_monitors(orders_only, CONFIG, {"x": MONITORS["execution_timeout"]}).empty  # limit orders rest


def test_calm_stream_raises_nothing(calm: pd.DataFrame) -> None:
    assert calm.empty, calm.to_string()


@pytest.mark.parametrize("mode", FAILURE_MODES)
def test_monitor_fires_on_its_failure_within_its_limit(mode: str) -> None:
    stream = crafted_stream(mode, seed=2)
    own = run_monitors(stream.observation, CONFIG, {mode: MONITORS[mode]})
    assert len(own) >= 1 and set(own["failure_mode"]) == {mode}
    delay = (own["detected_at"].min() - stream.fault_at).total_seconds()
    assert 0 <= delay <= DETECTION_LIMITS_S[mode] + 1e-9
    assert (own["evidence_at"] <= own["detected_at"]).all()
    # The same monitor on the calm stream of the same seed says nothing.
    assert run_monitors(calm_stream(seed=2).observation, CONFIG, {mode: MONITORS[mode]}).empty


def test_detection_values_are_the_failures_own() -> None:
    slip = run_monitors(crafted_stream("high_slippage", 0).observation, CONFIG, {"x": MONITORS["high_slippage"]})
    assert slip["value"].iloc[0] == pytest.approx(0.01, rel=1e-9) and slip["subject"].iloc[0] == "BTCUSDT"
    dd = run_monitors(crafted_stream("drawdown_exceeded", 0).observation, CONFIG, {"x": MONITORS["drawdown_exceeded"]})
    assert 0.15 < dd["value"].iloc[0] < 0.16
    stuck = run_monitors(crafted_stream("stuck_position", 0).observation, CONFIG, {"x": MONITORS["stuck_position"]})
    assert stuck["subject"].tolist() == ["ETHUSDT"] and stuck["value"].iloc[0] == 3.0  # the position held


def test_an_exit_cancelled_for_the_fallback_in_time_is_not_stuck() -> None:
    stream = crafted_stream("stuck_position", 0)
    config = dataclasses.replace(CONFIG, stuck_after_s=700.0)  # the cancel at 10 min comes first
    assert run_monitors(stream.observation, config, {"x": MONITORS["stuck_position"]}).empty


def test_webhook_received_but_failed_is_lost_at_once() -> None:
    obs = calm_stream(0).observation
    hooks = obs.webhooks.copy()
    hooks.loc[10, "status"] = "failed"
    found = run_monitors(dataclasses.replace(obs, webhooks=hooks), CONFIG, {"x": MONITORS["webhook_lost"]})
    assert found["detected_at"].tolist() == [hooks.loc[10, "ts"]]
    assert "failed to process" in found["summary"].iloc[0]


def test_a_webhook_still_missing_at_the_end_is_detected_once_overdue() -> None:
    obs = calm_stream(0).observation
    last = obs.webhooks.loc[obs.webhooks["strategy"] == "breakout", "ts"].max()
    early = dataclasses.replace(obs, as_of=last + pd.Timedelta(seconds=65))
    late = dataclasses.replace(obs, as_of=last + pd.Timedelta(seconds=67))
    only, config = {"x": MONITORS["webhook_lost"]}, MonitorConfig(webhook_intervals_s={"breakout": 60.0})
    assert run_monitors(early, config, only).empty
    assert run_monitors(late, config, only)["detected_at"].tolist() == [last + pd.Timedelta(seconds=66)]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.booleans(), min_size=0, max_size=60), st.integers(1, 4))
def test_probe_rule_fires_once_per_run_of_enough_failures(oks: list[bool], needed: int) -> None:
    ts = START + pd.to_timedelta(np.arange(len(oks)) * 10, unit="s")
    probes = pd.DataFrame({"ts": ts, "target": "redis", "ok": oks, "latency_ms": 1.0, "error": ""})
    obs = dataclasses.replace(calm_stream(0).observation, probes=probes if len(oks) else empty_table(PROBE_COLUMNS))
    found = run_monitors(obs, dataclasses.replace(CONFIG, probe_failures=needed), {"x": MONITORS["redis_down"]})
    expected, run = [], 0
    for i, ok in enumerate(oks):
        run = 0 if ok else run + 1
        if run == needed:
            expected.append(ts[i])
    assert found["detected_at"].tolist() == expected


def test_bad_observations_and_thresholds_are_named() -> None:
    obs = calm_stream(0).observation
    with pytest.raises(ValueError, match=r"Observation.probes: missing column\(s\) ok"):
        dataclasses.replace(obs, probes=obs.probes.drop(columns="ok"))
    with pytest.raises(ValueError, match=r"Observation\.equity\.ts: expected UTC timestamps"):
        dataclasses.replace(obs, equity=obs.equity.assign(ts=obs.equity["ts"].dt.tz_localize(None)))
    hooks = obs.webhooks.copy()
    hooks.loc[3, "status"] = "lost"
    with pytest.raises(ValueError, match=r"Observation.webhooks.status: 'lost' in row 3"):
        dataclasses.replace(obs, webhooks=hooks)
    with pytest.raises(ValueError, match=r"MonitorConfig.slippage_limit: expected a fraction"):
        MonitorConfig(slippage_limit=5)
    with pytest.raises(ValueError, match=r"correlation_baseline: expected more marks than correlation_window \(20\)"):
        MonitorConfig(correlation_baseline=20)
    with pytest.raises(ValueError, match=r"webhook_intervals_s\['trend'\]"):
        MonitorConfig(webhook_intervals_s={"trend": 0})
    with pytest.raises(ValueError, match="failure mode 'meteor'"):
        crafted_stream("meteor")


def test_alerts_carry_mode_subject_and_detection_time() -> None:
    found = run_monitors(crafted_stream("kill_switch_set", 0).observation, CONFIG)
    [alert] = alerts_for(found, source="unit", subject_prefix="run-1")
    assert alert.dedup_key == "stress-pipeline/kill_switch_set/run-1-kill_switch"
    assert alert.severity == "critical" and alert.custom_details["detected_at"].startswith("2026-01-05T01:00")
