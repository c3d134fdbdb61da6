"""Strategy windows and scenario lengths in bars or in time, converted with the data's interval and calendar."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from stress_pipeline.market.durations import DurationError, parse_duration, to_bars
from stress_pipeline.market.panel import prepare_panel
from stress_pipeline.market.synthetic import generate_bars
from stress_pipeline.scenarios.model import SCENARIO_ADAPTER
from stress_pipeline.simulation import SimConfig, run_backtest, run_paper
from stress_pipeline.trading import StrategyWindowError, TrendStrategy, at_interval, check_lookahead, get_strategy

MINUTE = 60_000_000_000
DAY = 1_440 * MINUTE


@pytest.mark.parametrize(
    ("text", "bars"),
    [(240, 240), ("240", 240), ("240 bars", 240), ("4h", 240), ("30min", 30), ("30m", 30), ("90s", 2),
     ("1.5h", 90), ("1d", 1_440), ("1 session", 1_440), ("2w", 7 * 2 * 1_440)],
)  # fmt: skip
def test_lengths_in_bars_or_time_on_one_minute_crypto(text, bars):
    assert to_bars(text, MINUTE, 1_440.0, days_per_week=7) == bars


def test_a_day_is_a_session_of_the_calendar_and_a_week_five_of_them():
    assert to_bars("1d", MINUTE, 390.0, days_per_week=5) == 390
    assert to_bars("2w", DAY, 1.0, days_per_week=5) == 10
    assert to_bars("50d", DAY, 1.0, days_per_week=5) == 50


@pytest.mark.parametrize(
    ("value", "message"),
    [("4 parsecs", "not a bar count or a time"), ("", "not a bar count or a time"), (0, "whole number >= 1"),
     (2.5, "whole number >= 1"), ("2.5 bars", "whole number of bars"), ("-3h", "not a bar count"), (True, "bar count")],
)  # fmt: skip
def test_bad_lengths_say_what_is_expected(value, message):
    with pytest.raises(DurationError, match=message):
        parse_duration(value)


def test_a_length_under_one_bar_is_an_error_naming_length_and_interval():
    with pytest.raises(DurationError, match=r"4h is shorter than one bar of the data \(1d\)"):
        to_bars("4h", DAY, 1.0)


@given(st.integers(1, 10_000), st.sampled_from([1, 5, 15, 60]))
def test_minutes_on_minute_multiples_convert_exactly(k, step):
    assert to_bars(f"{k * step}min", step * MINUTE, 1_440 / step) == k


def test_time_defaults_give_the_bar_windows_they_replace_on_one_minute_crypto():
    bars = generate_bars(["BTCUSDT"], days=3)
    panel, _ = prepare_panel(bars)
    assert at_interval(TrendStrategy(), panel, "24/7") == TrendStrategy(fast=240, slow=1_440)
    assert at_interval(get_strategy("breakout"), panel).entry_window == 1_440
    assert at_interval(get_strategy("breakout"), panel).exit_window == 720
    same = run_backtest(bars, "trend").metrics
    explicit = run_backtest(bars, TrendStrategy(fast=240, slow=1_440)).metrics
    assert same["total_trades"] == explicit["total_trades"] > 0
    assert same["total_pnl"] == explicit["total_pnl"]


def test_a_day_on_equity_minute_bars_is_one_regular_session():
    bars = generate_bars(["NVDA"], start="2023-10-02", days=30, calendar="XNYS")
    panel, _ = prepare_panel(bars)
    assert at_interval(TrendStrategy(), panel, "XNYS") == TrendStrategy(fast=240, slow=390)
    assert at_interval(get_strategy("mean_reversion", window="2d"), panel, "XNYS").window == 780


def test_daily_equity_bars_trade_with_windows_in_sessions_and_refuse_windows_under_a_bar():
    bars = generate_bars(["NVDA", "SPY"], start="2021-01-04", days=800, interval="1d", calendar="XNYS")
    panel, _ = prepare_panel(bars)
    # Unset windows take the daily defaults on daily bars: 10 and 50 sessions, the turtles' 20 / 10.
    assert at_interval(TrendStrategy(), panel, "XNYS") == TrendStrategy(fast=10, slow=50)
    turtles = get_strategy("breakout", entry_window=20, exit_window=10)
    assert at_interval(get_strategy("breakout"), panel, "XNYS") == turtles
    assert at_interval(get_strategy("mean_reversion"), panel, "XNYS").window == 20
    default = run_backtest(bars, "trend", SimConfig(calendar="XNYS"))
    two_weeks = run_backtest(bars, "trend", SimConfig(calendar="XNYS", strategy_params={"fast": "2w", "slow": 50}))
    assert default.metrics["total_trades"] == two_weeks.metrics["total_trades"] > 0  # 2w = 10 sessions
    assert default.metrics["total_pnl"] == two_weeks.metrics["total_pnl"]
    under = r"strategy 'trend': fast=4h: 4h is shorter than one bar of the data \(1d\)"
    with pytest.raises(StrategyWindowError, match=under):
        run_backtest(bars, "trend", SimConfig(calendar="XNYS", strategy_params={"fast": "4h"}))


def test_a_strategy_that_cannot_warm_up_is_an_error_naming_strategy_window_and_span():
    bars = generate_bars(["BTCUSDT"], start="2024-01-01", days=1)
    with pytest.raises(StrategyWindowError) as caught:
        run_paper(bars, get_strategy("mean_reversion", window="2d"))
    message = str(caught.value)
    assert "strategy 'mean_reversion': window=2d is 2,880 bars of 1min" in message
    assert "the data has 1,440 bars of 1min (2024-01-01 00:00 to 2024-01-01 23:59 UTC)" in message
    assert "cannot warm up" in message


def test_bad_window_specs_fail_when_the_strategy_is_built():
    with pytest.raises(StrategyWindowError, match=r"trend: slow:.*'1 fortnight' is not a bar count or a time"):
        get_strategy("trend", slow="1 fortnight")
    with pytest.raises(ValueError, match="need 1 <= fast < slow"):
        get_strategy("trend", fast=500, slow=100)
    bars = generate_bars(["BTCUSDT"], days=2)
    with pytest.raises(ValueError, match="need 1 <= fast < slow, got fast=1440, slow=240"):
        run_backtest(bars, get_strategy("trend", fast="1d", slow="4h"))


def test_the_lookahead_guard_converts_windows_once_on_the_whole_data():
    bars = generate_bars(["BTCUSDT"], days=2)
    report = check_lookahead("trend", bars, cut_points=3)
    assert report.passed and len(report.cuts) == 3
    weights = TrendStrategy().target_positions(bars).to_numpy()
    assert np.array_equal(weights, TrendStrategy(fast=240, slow=1_440).target_positions(bars).to_numpy())


# ------------------------------------------------------------------------------------ scenario lengths


def _crash(**params):
    entry = {"name": "Crash", "type": "flash_crash", "symbols": ["NVDA"], "seed": 3,
             "parameters": {"drop_pct": 0.1, **params}}  # fmt: skip
    return SCENARIO_ADAPTER.validate_python(entry)


def test_scenario_lengths_in_time_equal_the_same_lengths_in_bars():
    from stress_pipeline.scenarios import apply_scenario

    bars = generate_bars(["NVDA"], start="2023-10-02", days=10, calendar="XNYS")
    in_time = apply_scenario(_crash(duration_bars="15min", recovery_bars="1h"), bars, "XNYS")
    in_bars = apply_scenario(_crash(duration_bars=15, recovery_bars=60), bars, "XNYS")
    assert in_time.equals(in_bars) and int(in_time["stressed"].sum()) == 75


def test_a_day_of_monte_carlo_paths_is_a_session_of_equity_bars_and_under_a_bar_is_an_error():
    from stress_pipeline.scenarios import run_scenario
    from stress_pipeline.scenarios.lengths import ScenarioLengthError
    entry = {"name": "MC", "type": "monte_carlo", "symbols": ["NVDA"], "seed": 1,
             "parameters": {"n_paths": 2, "horizon_bars": "1d"}}  # fmt: skip
    minute = generate_bars(["NVDA"], start="2023-10-02", days=10, calendar="XNYS")
    result = run_scenario(SCENARIO_ADAPTER.validate_python(entry), minute, "XNYS")
    assert result.bars.rows == 2 * 390
    daily = generate_bars(["NVDA"], start="2022-01-03", days=400, interval="1d", calendar="XNYS")
    short = SCENARIO_ADAPTER.validate_python({**entry, "parameters": {"n_paths": 2, "horizon_bars": "4h"}})
    with pytest.raises(ScenarioLengthError, match=r"'MC': parameters.horizon_bars: 4h is shorter than one bar"):
        run_scenario(short, daily, "XNYS")


@pytest.mark.parametrize("seed", range(12))
def test_windows_drawn_from_a_seed_fall_inside_one_session(seed):
    from stress_pipeline.scenarios import run_scenario

    bars = generate_bars(["NVDA"], start="2023-10-02", days=10, calendar="XNYS")
    scenario = _crash(duration_bars=30, recovery_bars=120).model_copy(update={"seed": seed})
    result = run_scenario(scenario, bars, "XNYS")
    stressed = result.bars.ts[result.bars.stressed]
    assert len(stressed) == 150
    steps = np.diff(np.concatenate([[result.pre_shock_ns["NVDA"]], stressed]))
    assert steps.max() == MINUTE  # the pre-shock bar and every stressed bar in one session, no overnight step
