"""Monitors on real paper runs: silent on a calm market, alerting when the run's exchange fails."""

from __future__ import annotations

import pandas as pd
import pytest

from stress_pipeline.market.synthetic import generate_bars
from stress_pipeline.monitoring.monitors import run_monitors
from stress_pipeline.monitoring.observation import bar_length, observation_from_run
from stress_pipeline.simulation.config import SimConfig
from stress_pipeline.simulation.paper import run_paper
from stress_pipeline.trading import get_strategy

STRATEGY = {"fast": 20, "slow": 120, "band": 0.0005}


@pytest.fixture(scope="module")
def market():
    bars = generate_bars(days=2, seed=1)
    strategy = get_strategy("trend", **STRATEGY)
    return bars, strategy, run_paper(bars, strategy, SimConfig())


def test_a_calm_paper_run_raises_nothing(market) -> None:
    bars, _, calm = market
    observation = observation_from_run(calm.events, calm.equity, bars)
    assert observation.marks["ts"].min() == bars["ts"].min() + pd.Timedelta(minutes=1)  # known at the close
    assert run_monitors(observation).empty


@pytest.mark.parametrize(("kind", "expected"), [("exchange_outage", {"api_down", "order_placement_failed"}),
                                                 ("rate_limit", {"order_placement_failed"})])  # fmt: skip
def test_exchange_faults_of_a_paper_run_are_detected_from_its_event_log(market, kind, expected) -> None:
    bars, strategy, calm = market
    start = calm.fills["ts"].min().floor("D")
    at = (calm.fills["ts"].iloc[0] - start).total_seconds() - 120
    faulty = run_paper(bars, strategy, SimConfig(), faults=[{"kind": kind, "at_s": at, "duration_s": 3600}])
    found = run_monitors(observation_from_run(faulty.events, faulty.equity, bars))
    assert set(found["failure_mode"]) == expected
    events = faulty.events
    began, ended = start + pd.Timedelta(seconds=at), start + pd.Timedelta(seconds=at + 3600)
    assert found["detected_at"].between(began, ended).all()  # nothing before the fault or after it
    if kind == "exchange_outage":
        outage = events[(events["kind"] == "reject") & (events["reason"] == "EXCHANGE_OUTAGE")]
        [down] = found.loc[found["failure_mode"] == "api_down", "detected_at"]
        assert down == outage["ts"].iloc[2]  # the third refused call in a row


def test_bar_length_and_bad_bars() -> None:
    assert bar_length(generate_bars(days=1, seed=2)) == pd.Timedelta(minutes=1)
    with pytest.raises(ValueError, match="bars: no rows"):
        observation_from_run(pd.DataFrame(), pd.DataFrame(), generate_bars(days=1, seed=2).iloc[:0])
