"""Strategies: the compiled rules against plain pandas references, causality, the lookahead guard,
get_strategy (names, parameters, user strategies by import path) and the default trade counts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stress_pipeline.market.panel import MarketPanel, prepare_panel
from stress_pipeline.market.synthetic import generate_bars
from stress_pipeline.trading import (
    BreakoutStrategy,
    MeanReversionStrategy,
    StrategySpecError,
    TrendStrategy,
    get_strategy,
)
from stress_pipeline.trading.lookahead import check_lookahead, sample_cuts
from stress_pipeline.trading.strategies import as_strategy, panel_to_bars
from stress_pipeline.trading.strategies.base import PanelStrategy

MINUTE_NS = 60_000_000_000
SMALL = {
    "trend": {"fast": 5, "slow": 20, "band": 0.001},
    "mean_reversion": {"window": 20, "entry_z": 1.5, "exit_z": 0.3},
    "breakout": {"entry_window": 20, "exit_window": 10},
}


def make_panel(close: np.ndarray, spread: float = 0.002, tradable: np.ndarray | None = None) -> MarketPanel:
    close = np.asarray(close, dtype=np.float64).reshape(len(close), -1)
    t, s = close.shape
    open_ = np.vstack([close[:1], close[:-1]])
    return MarketPanel(
        symbols=tuple(f"S{j}" for j in range(s)),
        ts=1_704_067_200_000_000_000 + np.arange(t, dtype=np.int64) * MINUTE_NS,
        open=open_,
        high=np.maximum(open_, close) * (1 + spread),
        low=np.minimum(open_, close) * (1 - spread),
        close=close,
        volume=np.ones((t, s)),
        spread_bps=np.ones((t, s)),
        tradable=np.ones((t, s), dtype=bool) if tradable is None else tradable,
        bar_seconds=60.0,
    )


def random_walk(seed: int, t: int, s: int, vol: float = 0.01) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 100.0 * np.exp(np.cumsum(rng.normal(0.0, vol, (t, s)), axis=0))


def reference_latch(enter_long, enter_short, exit_long, exit_short) -> np.ndarray:
    """The position rule, one bar at a time in Python."""
    out = np.zeros(enter_long.shape)
    for j in range(enter_long.shape[1]):
        state = 0.0
        for i in range(enter_long.shape[0]):
            if enter_long[i, j]:
                state = 1.0
            elif enter_short[i, j]:
                state = -1.0
            elif (state > 0 and exit_long[i, j]) or (state < 0 and exit_short[i, j]):
                state = 0.0
            out[i, j] = state
    return out


walks = st.builds(random_walk, st.integers(0, 10_000), st.integers(1, 120), st.integers(1, 3))


# ------------------------------------------------------------------------------------- the rules


@settings(max_examples=40, deadline=None)
@given(close=walks, fast=st.integers(1, 8), extra=st.integers(1, 20), band=st.sampled_from([0.0, 0.002]))
def test_trend_is_a_moving_average_crossover_with_a_band(close, fast, extra, band):
    slow = fast + extra
    frame = pd.DataFrame(close)
    fast_ma = frame.rolling(fast).mean().to_numpy()
    slow_ma = frame.rolling(slow).mean().to_numpy()
    with np.errstate(invalid="ignore"):
        up, down = fast_ma > slow_ma * (1 + band), fast_ma < slow_ma * (1 - band)
    gap = np.abs(fast_ma - slow_ma * (1 + band)), np.abs(fast_ma - slow_ma * (1 - band))
    if np.nanmin(np.minimum(*gap), initial=1.0) < 1e-9:
        return  # a tie within rounding: either answer is right
    none = np.zeros_like(up)
    panel = make_panel(close)
    got = TrendStrategy(fast=fast, slow=slow, band=band).target_weights(panel)
    np.testing.assert_array_equal(got, reference_latch(up, down, none, none))
    long_only = TrendStrategy(fast=fast, slow=slow, band=band, long_only=True).target_weights(panel)
    np.testing.assert_array_equal(long_only, reference_latch(up, none, down, none))


@settings(max_examples=40, deadline=None)
@given(
    close=walks, window=st.integers(2, 30), entry=st.sampled_from([1.0, 1.5, 2.0]), exit_=st.sampled_from([0.0, 0.5])
)
def test_mean_reversion_fades_z_scores_and_exits_inside_the_band(close, window, entry, exit_):
    frame = pd.DataFrame(close)
    z = ((frame - frame.rolling(window).mean()) / frame.rolling(window).std(ddof=1)).to_numpy()
    near = np.minimum(np.abs(np.abs(z) - entry), np.abs(np.abs(z) - exit_))
    if np.nanmin(near, initial=1.0) < 1e-6:
        return  # a tie within rounding
    with np.errstate(invalid="ignore"):
        back = np.abs(z) < exit_
        expected = reference_latch(z < -entry, z > entry, back, back)
    got = MeanReversionStrategy(window=window, entry_z=entry, exit_z=exit_).target_weights(make_panel(close))
    np.testing.assert_array_equal(got, expected)


@settings(max_examples=40, deadline=None)
@given(close=walks, entry_window=st.integers(1, 25), exit_window=st.integers(1, 25), long_only=st.booleans())
def test_breakout_trades_donchian_channels_of_the_prior_bars(close, entry_window, exit_window, long_only):
    panel = make_panel(close)
    high, low = pd.DataFrame(panel.high), pd.DataFrame(panel.low)
    entry_high = high.rolling(entry_window).max().shift(1).to_numpy()
    entry_low = low.rolling(entry_window).min().shift(1).to_numpy()
    exit_high = high.rolling(exit_window).max().shift(1).to_numpy()
    exit_low = low.rolling(exit_window).min().shift(1).to_numpy()
    with np.errstate(invalid="ignore"):
        short_entry = (close < entry_low) & (not long_only)
        expected = reference_latch(close > entry_high, short_entry, close < exit_low, close > exit_high)
    strategy = BreakoutStrategy(entry_window=entry_window, exit_window=exit_window, long_only=long_only)
    np.testing.assert_array_equal(strategy.target_weights(panel), expected)


def test_mean_reversion_gives_no_signal_on_a_flat_window():
    close = np.concatenate([random_walk(1, 40, 1), np.full((40, 1), 123.45)])
    weights = MeanReversionStrategy(window=10, entry_z=1.0, exit_z=0.2).target_weights(make_panel(close))
    assert np.all(weights[60:] == weights[55])  # a frozen feed neither enters nor exits


def test_weights_are_zero_during_the_warm_up():
    panel = make_panel(random_walk(2, 30, 2))
    assert not TrendStrategy(fast=5, slow=40).target_weights(panel).any()
    assert not MeanReversionStrategy(window=40).target_weights(panel).any()
    assert not BreakoutStrategy(entry_window=30, exit_window=5).target_weights(panel).any()


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 1_000), cut=st.integers(1, 199), name=st.sampled_from(sorted(SMALL)))
def test_kernels_are_prefix_stable(seed, cut, name):
    """The weight at t is computed from bars <= t only, bit for bit."""
    close = random_walk(seed, 200, 3)
    strategy = get_strategy(name, **SMALL[name])
    full = strategy.target_weights(make_panel(close))
    part = strategy.target_weights(make_panel(close[:cut]))
    np.testing.assert_array_equal(part, full[:cut])


# ------------------------------------------------------------------------------- the two forms


def test_target_positions_is_the_labelled_target_weights_of_the_cleaned_bars():
    bars = generate_bars(days=1)
    strategy = get_strategy("breakout", entry_window=60, exit_window=30)
    positions = strategy.target_positions(bars)
    panel, _ = prepare_panel(bars)
    assert list(positions.columns) == ["BTCUSDT", "ETHUSDT", "SOLUSDT"]
    assert str(positions.index.tz) == "UTC" and positions.index.is_monotonic_increasing
    assert len(positions) == 1_440
    assert positions.abs().max().max() <= 1.0 and positions.abs().max().max() == 1.0
    np.testing.assert_array_equal(positions.to_numpy(), strategy.target_weights(panel))


def user_momentum(bars: pd.DataFrame, lookback: int = 10) -> pd.DataFrame:
    """A user strategy as a plain function: long after a rise over ``lookback`` bars."""
    close = bars.pivot(index="ts", columns="symbol", values="close")
    return (close.pct_change(lookback) > 0).astype(float)


class UserStrategy:
    """A user strategy as a class with parameters and only target_positions."""

    def __init__(self, lookback: int = 10) -> None:
        self.lookback = lookback

    def target_positions(self, bars: pd.DataFrame) -> pd.DataFrame:
        return user_momentum(bars, self.lookback)


def make_user_strategy(lookback: int = 10) -> UserStrategy:
    return UserStrategy(lookback)


@pytest.mark.parametrize("attribute", ["user_momentum", "UserStrategy", "make_user_strategy"])
def test_user_strategies_by_import_path_get_both_methods(attribute):
    spec = f"stress_pipeline_tests.test_strategies:{attribute}"
    strategy = get_strategy(spec, lookback=5)
    assert strategy.name == spec
    bars = generate_bars(days=1)
    panel, _ = prepare_panel(bars)
    weights = strategy.target_weights(panel)
    expected = user_momentum(bars, 5)
    assert weights.shape == panel.shape
    np.testing.assert_array_equal(weights, expected.fillna(0.0).to_numpy())
    positions = strategy.target_positions(bars)
    expected = expected.set_axis(expected.columns.astype(str), axis=1)  # a pivot on categorical symbols
    pd.testing.assert_frame_equal(positions, expected.astype(float), check_names=False, check_freq=False)


def test_user_weights_are_aligned_and_held():
    panel = make_panel(random_walk(3, 6, 2))
    stamps = panel.timestamps()

    def sparse(bars):  # one symbol, every other bar from the second
        return pd.DataFrame({"S1": [1.0, -0.5]}, index=stamps[[2, 4]])

    weights = as_strategy(sparse).target_weights(panel)
    np.testing.assert_array_equal(weights[:, 0], np.zeros(6))  # never mentioned: no position
    np.testing.assert_array_equal(weights[:, 1], [0.0, 0.0, 1.0, 1.0, -0.5, -0.5])  # before its first row: 0


def test_panel_to_bars_round_trips_through_prepare_panel():
    bars = generate_bars(days=1)
    panel, _ = prepare_panel(bars)
    again, _ = prepare_panel(panel_to_bars(panel))
    np.testing.assert_array_equal(again.close, panel.close)
    assert again.symbols == panel.symbols


def test_get_strategy_builds_reference_strategies_with_their_parameters():
    assert get_strategy("trend") == TrendStrategy()
    assert get_strategy("mean_reversion", window=60, entry_z=2.0) == MeanReversionStrategy(window=60, entry_z=2.0)
    assert get_strategy(" breakout ", long_only=True).long_only is True
    assert {get_strategy(n).name for n in SMALL} == set(SMALL)


@pytest.mark.parametrize(
    ("spec", "params", "message"),
    [
        ("momentum", {}, "known are breakout, mean_reversion, trend"),
        ("", {}, "non-empty"),
        ("trend", {"fastest": 3}, "no parameter(s) fastest; it takes band, fast, long_only, slow"),
        ("trend", {"fast": 50, "slow": 10}, "fast < slow"),
        ("no_such_package.mod:fn", {}, "cannot import module 'no_such_package.mod'"),
        ("stress_pipeline_tests.test_strategies:nothing_here", {}, "has no attribute 'nothing_here'"),
        ("stress_pipeline_tests.test_strategies", {}, None),
        ("stress_pipeline_tests.test_strategies:UserStrategy", {"window": 3}, "bad parameters"),
    ],
)
def test_get_strategy_errors_say_what_is_wrong(spec, params, message):
    with pytest.raises((StrategySpecError, ValueError)) as info:
        get_strategy(spec, **params)
    if message:
        assert message in str(info.value)


# ------------------------------------------------------------------------------- lookahead guard


@pytest.mark.parametrize("name", sorted(SMALL))
def test_reference_strategies_pass_the_lookahead_guard(name):
    bars = generate_bars(days=2)
    report = check_lookahead(get_strategy(name, **SMALL[name]), bars, cut_points=6, seed=3)
    assert report.passed, report.summary()
    assert len(report.cuts) == 6 and report.violations == []


def test_default_strategies_pass_the_lookahead_guard_past_their_warm_up():
    bars = generate_bars(days=3)
    for name in SMALL:
        report = check_lookahead(name, bars, cut_points=4, seed=1)
        assert report.passed, report.summary()


def next_bar_peek(bars: pd.DataFrame) -> pd.DataFrame:
    close = bars.pivot(index="ts", columns="symbol", values="close")
    return np.sign(close.shift(-1) - close).fillna(0.0)


def centred_window(bars: pd.DataFrame) -> pd.DataFrame:
    close = bars.pivot(index="ts", columns="symbol", values="close")
    return np.sign(close - close.rolling(31, center=True, min_periods=1).mean()).fillna(0.0)


def whole_history_normalisation(bars: pd.DataFrame) -> pd.DataFrame:
    close = bars.pivot(index="ts", columns="symbol", values="close")
    return (close > close.mean()).astype(float)


@pytest.mark.parametrize("leak", [next_bar_peek, centred_window, whole_history_normalisation])
def test_the_lookahead_guard_catches_leaking_strategies(leak):
    bars = generate_bars(days=2)
    report = check_lookahead(leak, bars, cut_points=5, seed=0)
    assert not report.passed
    cut, symbol, ts, full, truncated = report.violations[0]
    assert symbol in {"BTCUSDT", "ETHUSDT", "SOLUSDT"}
    assert ts <= cut and cut in report.cuts and full != truncated
    assert "lookahead" in report.summary()


class _PeekingPanelStrategy(PanelStrategy):
    """An array-form strategy that reads the next close: the panel path must catch it."""

    name = "peeking"

    def target_weights(self, panel):
        close = panel.close
        ahead = np.vstack([close[1:], close[-1:]])
        return np.sign(ahead - close)


def test_the_panel_path_catches_a_leaking_array_strategy_and_accepts_a_prepared_panel():
    bars = generate_bars(days=2)
    panel, _ = prepare_panel(bars)
    report = check_lookahead(_PeekingPanelStrategy(), panel, cut_points=5, seed=0)
    assert not report.passed and len(report.violations) >= 5
    cut, _, ts, full, truncated = report.violations[0]
    assert ts == cut and full != truncated  # the last bar before each cut is where the peek shows
    clean = check_lookahead(get_strategy("trend", **SMALL["trend"]), panel, cut_points=5, seed=0)
    assert clean.passed and clean.cuts == report.cuts


def test_cut_points_cover_the_history_and_never_the_last_bar():
    times = pd.date_range("2024-01-01", periods=1_000, freq="1min", tz="UTC")
    cuts = sample_cuts(times, 8, seed=5)
    assert len(cuts) == 8 and cuts == sorted(cuts) and times[-1] not in cuts
    assert cuts[0] < times[125] and cuts[-1] >= times[874]
    assert sample_cuts(times, 8, seed=5) == cuts
    assert sample_cuts(times[:4], 8, seed=5) == list(times[:3])


# ------------------------------------------------------------------------------- default pace


def test_defaults_trade_tens_to_hundreds_of_round_trips_on_90_days():
    """The shipped 90 days of BTC/ETH/SOL (generated with the default seed, as the shipped files)."""
    panel, _ = prepare_panel(generate_bars(days=90))
    for name in SMALL:
        weights = get_strategy(name).target_weights(panel)
        entries = ((np.diff(weights, axis=0, prepend=0.0) != 0) & (weights != 0)).sum(axis=0)
        assert np.all((entries >= 20) & (entries <= 300)), (name, entries)
