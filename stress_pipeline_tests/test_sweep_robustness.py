"""Robustness figures: trade resampling bands, parameter sensitivity points, results per market regime."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stress_pipeline.simulation.result import SimResult
from stress_pipeline.sweeps.robustness import (
    market_regimes,
    parameter_sensitivity,
    path_figures,
    regime_table,
    resample_trades,
    run_bands,
    sensitivity_points,
    trade_returns,
)

returns_lists = st.lists(st.floats(min_value=-0.5, max_value=0.5, allow_nan=False), min_size=1, max_size=60)


@settings(max_examples=60, deadline=None)
@given(returns=returns_lists, seed=st.integers(0, 2**32 - 1), method=st.sampled_from(["bootstrap", "shuffle"]))
def test_bands_are_ordered_and_the_same_for_a_seed(returns: list[float], seed: int, method: str) -> None:
    first = resample_trades(np.array(returns), samples=200, seed=seed, method=method)
    again = resample_trades(np.array(returns), samples=200, seed=seed, method=method)
    pd.testing.assert_frame_equal(first.table, again.table)
    table = first.table
    assert (table["p5"] <= table["p50"]).all() and (table["p50"] <= table["p95"]).all()
    assert (table.loc["max_drawdown", ["p5", "p50", "p95"]] >= 0).all()
    assert (table.loc["max_drawdown", ["p5", "p50", "p95"]] < 1).all()
    # the worst and best paths bound every band: no path loses more than all the worst trades compounded
    worst = min(returns)
    assert table.loc["total_return", "p5"] >= (1 + min(worst, 0)) ** len(returns) - 1 - 1e-12


@settings(max_examples=40, deadline=None)
@given(returns=returns_lists, seed=st.integers(0, 1000))
def test_a_shuffle_keeps_the_total_return_and_cannot_beat_no_drawdown(returns: list[float], seed: int) -> None:
    bands = resample_trades(np.array(returns), samples=50, seed=seed, method="shuffle")
    total = np.prod(1 + np.array(returns)) - 1
    assert bands.band("total_return") == pytest.approx((total, total, total), rel=1e-9, abs=1e-12)
    # the drawdown of the losses taken in a row is the worst any order can give
    losses = np.array([r for r in returns if r < 0])
    assert bands.table.loc["max_drawdown", "p95"] <= 1 - np.prod(1 + losses) + 1e-12


def test_path_figures_of_a_known_path() -> None:
    figures = path_figures(np.array([[0.10, -0.20, 0.05]]), annual=1.0)
    total, drawdown, sharpe = figures[:, 0]
    assert total == pytest.approx(1.10 * 0.80 * 1.05 - 1)
    assert drawdown == pytest.approx(0.20)  # from the peak 1.10 to 0.88
    r = np.array([0.10, -0.20, 0.05])
    assert sharpe == pytest.approx(r.mean() / r.std(ddof=1))
    # a first loss is a drawdown from the capital
    assert path_figures(np.array([[-0.1, 0.5]]), 1.0)[1, 0] == pytest.approx(0.1)


def test_a_different_seed_moves_the_bands_and_bootstrap_spreads_the_return() -> None:
    returns = np.random.default_rng(3).normal(0.002, 0.02, 150)
    a = resample_trades(returns, samples=500, seed=1)
    b = resample_trades(returns, samples=500, seed=2)
    assert not a.table.equals(b.table)
    low, mid, high = a.band("total_return")
    assert low < a.table.loc["total_return", "actual"] < high
    assert low < mid < high
    assert a.trades == 150 and a.samples == 500


def test_trade_returns_compound_back_to_the_closed_trade_equity() -> None:
    trades = pd.DataFrame({
        "exit_ts": pd.to_datetime(["2024-01-03", "2024-01-01", "2024-01-02"], utc=True),
        "pnl": [50.0, 100.0, -220.0],
    })  # fmt: skip
    returns = trade_returns(trades, 1_000.0)
    assert returns == pytest.approx([100 / 1000, -220 / 1100, 50 / 880])
    assert np.prod(1 + returns) * 1000 == pytest.approx(1000 + 100 - 220 + 50)
    with pytest.raises(ValueError, match=r"trade 1 .* not positive"):
        trade_returns(trades.assign(pnl=[0.0, -1000.0, 5.0]), 1_000.0)
    with pytest.raises(ValueError, match="above -100%"):
        resample_trades(np.array([0.1, -1.0]))


def test_sensitivity_points_move_each_numeric_parameter_alone() -> None:
    points = sensitivity_points({"fast": 240, "band": 0.003, "long_only": False, "slow": "1d"})
    assert [(p.parameter, p.step, p.value) for p in points] == [
        ("band", -0.2, pytest.approx(0.0024)), ("band", -0.1, pytest.approx(0.0027)),
        ("band", -0.05, pytest.approx(0.00285)), ("band", 0.05, pytest.approx(0.00315)),
        ("band", 0.1, pytest.approx(0.0033)), ("band", 0.2, pytest.approx(0.0036)),
        ("fast", -0.2, 192), ("fast", -0.1, 216), ("fast", -0.05, 228),
        ("fast", 0.05, 252), ("fast", 0.1, 264), ("fast", 0.2, 288),
    ]  # fmt: skip
    assert all(isinstance(p.value, int) for p in points if p.parameter == "fast")
    assert points[0].params == {"fast": 240, "band": pytest.approx(0.0024), "long_only": False, "slow": "1d"}


def test_parameter_sensitivity_tabulates_each_point_and_keeps_refusals() -> None:
    def evaluate(params):
        if params["fast"] > 250:
            raise ValueError("fast too slow")
        return {"pnl": params["fast"] * 10.0 + params["band"] * 1e4}

    table = parameter_sensitivity({"fast": 240, "band": 0.003}, evaluate, steps=(0.1,))
    assert list(table["parameter"]) == ["(base)", "band", "band", "fast", "fast"]
    assert table["pnl"].iloc[0] == pytest.approx(2430.0)
    assert table["pnl_change"].tolist()[:4] == pytest.approx([0.0, -3.0, 3.0, -240.0])
    refused = table.iloc[4]
    assert refused["value"] == 264 and math.isnan(refused["pnl"]) and refused["error"] == "fast too slow"


def _bars(returns: np.ndarray) -> pd.DataFrame:
    ts = pd.date_range("2024-01-01", periods=len(returns) + 1, freq="1min", tz="UTC")
    close = 100 * np.exp(np.concatenate(([0.0], np.cumsum(returns))))
    return pd.DataFrame({"ts": ts, "symbol": "X", "close": close})


def test_regimes_split_volatility_in_terciles_and_name_trends() -> None:
    calm = np.tile([0.001, -0.001], 50)
    wild = np.tile([0.01, -0.01], 50)
    rising = np.full(100, 0.002) + np.tile([0.0005, -0.0005], 50)
    regimes = market_regimes(_bars(np.concatenate([calm, wild, rising])), window=10)
    assert (regimes.iloc[:10] == "warmup").all().all()
    vol = regimes["volatility"].to_numpy()
    assert set(vol[20:100]) == {"mid_vol"}  # the rising leg swings least: it is the calm third
    assert set(vol[120:200]) == {"high_vol"}
    assert set(vol[220:]) == {"low_vol"}
    trend = regimes["trend"].to_numpy()
    assert set(trend[120:200]) == {"range"}
    assert set(trend[220:]) == {"trend_up"}
    counts = regimes["volatility"].value_counts()
    assert counts["warmup"] == 10 and sum(counts[["low_vol", "mid_vol", "high_vol"]]) == 291


def test_regime_table_groups_the_run_by_regime() -> None:
    ts = pd.date_range("2024-01-01", periods=6, freq="1min", tz="UTC")
    regimes = pd.DataFrame(
        {"volatility": ["warmup", "low_vol", "low_vol", "high_vol", "high_vol", "high_vol"],
         "trend": ["warmup", "range", "range", "trend_up", "trend_up", "range"]}, index=ts,
    )  # fmt: skip
    equity = pd.DataFrame({"equity": [100.0, 110.0, 99.0, 99.0, 108.9, 108.9]}, index=ts)
    equity["drawdown"] = 1 - equity["equity"] / equity["equity"].cummax()
    trades = pd.DataFrame({"entry_ts": [ts[1], ts[3] + pd.Timedelta("20s")], "pnl": [-1.0, 9.9]})
    result = SimResult("paper", "x", trades, pd.DataFrame(), equity, {})
    table = regime_table(result, regimes, periods_per_year=1.0).set_index(["kind", "regime"])
    low = table.loc[("volatility", "low_vol")]
    assert low["bars"] == 2 and low["return"] == pytest.approx(1.10 * 0.90 - 1)
    assert low["max_drawdown"] == pytest.approx(0.1) and low["trades"] == 1 and low["pnl"] == -1.0
    high = table.loc[("volatility", "high_vol")]
    assert high["return"] == pytest.approx(0.10) and high["trades"] == 1 and high["winrate"] == 1.0
    assert table.loc[("volatility", "mid_vol"), "bars"] == 0
    assert table.loc[("trend", "range"), "bars"] == 3
    assert table["bars"].groupby(level="kind").sum().tolist() == [6, 6]


def test_run_bands_reads_a_sim_result() -> None:
    ts = pd.date_range("2024-01-01", periods=366, freq="1D", tz="UTC")
    equity = pd.DataFrame({"equity": np.full(366, 1000.0)}, index=ts)
    trades = pd.DataFrame({"exit_ts": ts[1:5], "pnl": [10.0, -5.0, 20.0, 1.0]})
    bands = run_bands(SimResult("paper", "x", trades, pd.DataFrame(), equity, {}), samples=100, seed=4)
    r = trade_returns(trades, 1000.0)
    assert bands.table.loc["sharpe", "actual"] == pytest.approx(r.mean() / r.std(ddof=1) * math.sqrt(4))
    assert bands.trades == 4
