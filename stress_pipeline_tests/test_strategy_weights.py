"""Weights from user strategies: NaN or out-of-range values are errors naming bar and symbol (never
zeroed or clipped), and the lookahead guard checks the weights the simulations trade."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stress_pipeline.market.synthetic import generate_bars
from stress_pipeline.simulation import run_backtest, run_paper
from stress_pipeline.simulation.config import SimConfig
from stress_pipeline.trading import WeightError, check_lookahead, get_strategy
from stress_pipeline.trading.strategies import as_strategy
from stress_pipeline.trading.strategies.base import check_weights, checked_target_weights, conform_weights

from .test_strategies import make_panel, random_walk

BARS = generate_bars(symbols=("BTCUSDT", "ETHUSDT"), days=1)


def trend_positions(bars: pd.DataFrame) -> pd.DataFrame:
    return get_strategy("trend", fast=5, slow=20, band=0.001).target_positions(bars)


class PeeksOnlyInTheArrayForm:
    """Clean ``target_positions``; ``target_weights`` (what the simulations trade) reads the next close."""

    name = "peeks_in_weights"

    def target_positions(self, bars: pd.DataFrame) -> pd.DataFrame:
        return trend_positions(bars)

    def target_weights(self, panel) -> np.ndarray:
        close = panel.close
        return np.sign(np.vstack([close[1:], close[-1:]]) - close)


def test_the_guard_checks_target_weights_a_peek_only_there_fails_it() -> None:
    strategy = PeeksOnlyInTheArrayForm()
    assert as_strategy(strategy) is strategy
    report = check_lookahead(strategy, BARS, cut_points=5, seed=0)
    assert not report.passed and report.strategy == "peeks_in_weights"
    cut, symbol, ts, full, truncated = report.violations[0]
    assert symbol in {"BTCUSDT", "ETHUSDT"} and ts == cut and full != truncated


def test_a_positions_only_strategy_is_checked_through_the_weights_the_simulations_derive() -> None:
    def peeking(bars: pd.DataFrame) -> pd.DataFrame:
        close = bars.pivot(index="ts", columns="symbol", values="close")
        return np.sign(close.shift(-1) - close).fillna(0.0)

    assert not check_lookahead(peeking, BARS, cut_points=4, seed=2).passed
    assert check_lookahead(trend_positions, BARS, cut_points=4, seed=2).passed


@pytest.mark.parametrize(
    ("value", "shown"), [(np.nan, "nan"), (1e6, "1000000.0"), (-1.5, "-1.5"), (np.inf, "inf")],
    ids=["nan", "huge", "below", "inf"],
)  # fmt: skip
def test_a_bad_weight_from_a_positions_strategy_names_bar_and_symbol(value: float, shown: str) -> None:
    panel = make_panel(random_walk(1, 8, 2))
    stamps = panel.timestamps()

    def strategy(bars: pd.DataFrame) -> pd.DataFrame:
        frame = pd.DataFrame(0.5, index=stamps, columns=["S0", "S1"])
        frame.iloc[5, 1] = value
        return frame

    with pytest.raises(WeightError) as info:
        as_strategy(strategy, name="mine").target_weights(panel)
    assert str(info.value) == (
        f"strategy 'mine': weight {shown} for S1 at bar {stamps[5]} is not a number in [-1, 1] "
        "(1 such weight(s) in all)"
    )


def test_a_bad_weight_from_an_array_strategy_stops_both_simulations_naming_bar_and_symbol() -> None:
    class NanAtBar40:
        name = "nan_at_40"

        def target_positions(self, bars):
            return trend_positions(bars)

        def target_weights(self, panel):
            weights = np.zeros(panel.shape)
            weights[40, 1] = np.nan
            weights[90, 0] = 7.0
            return weights

    stamp = pd.Timestamp(np.sort(BARS["ts"].unique())[40])
    expected = f"strategy 'nan_at_40': weight nan for ETHUSDT at bar {stamp} is not a number in [-1, 1] (2 such"
    for run in (run_backtest, run_paper):
        with pytest.raises(WeightError, match=re.escape(expected)):
            run(BARS, NanAtBar40(), SimConfig())
    with pytest.raises(WeightError, match="weight nan for ETHUSDT"):
        check_lookahead(NanAtBar40(), BARS, cut_points=2)


def test_a_wrong_shape_is_an_error() -> None:
    class Short:
        name = "short"

        def target_positions(self, bars):
            return trend_positions(bars)

        def target_weights(self, panel):
            return np.zeros((3, 1))

    panel = make_panel(random_walk(2, 10, 2))
    with pytest.raises(WeightError, match=r"strategy 'short' returned weights of shape \(3, 1\), expected \(10, 2\)"):
        checked_target_weights(Short(), panel)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(-1.0, 1.0, allow_nan=False), min_size=12, max_size=12),
    st.integers(0, 11),
    st.sampled_from([np.nan, np.inf, -np.inf, 1.0000001, -3.0, 1e300]),
    st.booleans(),
)
def test_weights_pass_unchanged_or_the_first_bad_one_is_named(values, bad_at, bad, inject) -> None:
    panel = make_panel(random_walk(3, 6, 2))
    stamps = panel.timestamps()
    grid = np.array(values).reshape(6, 2)
    if inject:
        grid[bad_at // 2, bad_at % 2] = bad
    frame = pd.DataFrame(grid, index=stamps, columns=["S0", "S1"])
    if not inject:
        np.testing.assert_array_equal(conform_weights(frame, panel), grid)  # nothing zeroed or clipped
        check_weights(grid, stamps, panel.symbols, "p")
        return
    with pytest.raises(WeightError) as info:
        conform_weights(frame, panel, "p")
    symbol = f"S{bad_at % 2}"
    assert f" for {symbol} at bar {stamps[bad_at // 2]} " in str(info.value)
