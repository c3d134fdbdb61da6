"""The vectorised backtest: hand-computed books, the sizing convention shared with the paper run,
untradable bars, accounting identities, and the bench on a small input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stress_pipeline.bench.sim import (
    BACKTEST_TARGET_BAR_SYMBOLS_PER_S,
    PAPER_TARGET_BAR_SYMBOLS_PER_S,
    format_sim_bench,
    run_backtest_bench,
    run_paper_bench,
)
from stress_pipeline.market.panel import MarketPanel
from stress_pipeline.market.synthetic import generate_bars
from stress_pipeline.simulation.backtest import rebalance_mask, run_backtest, target_quantities
from stress_pipeline.simulation.config import SimConfig
from stress_pipeline.simulation.result import RESULT_FIELDS
from stress_pipeline_tests.test_strategies import make_panel, random_walk

FREE = SimConfig(backtest_fee_bps=0.0, backtest_slippage_bps=0.0, periods_per_year=365, position_scale=1.0)


class FixedWeights:
    """A strategy that returns given weights (the backtest's contract is about weights, not signals)."""

    name = "fixed"

    def __init__(self, weights) -> None:
        self.weights = np.asarray(weights, dtype=np.float64)

    def target_weights(self, panel: MarketPanel) -> np.ndarray:
        return self.weights.reshape(panel.shape)

    def target_positions(self, bars: pd.DataFrame) -> pd.DataFrame:  # pragma: no cover - not used here
        raise NotImplementedError


def test_a_long_round_trip_without_costs():
    panel = make_panel([100.0, 110.0, 121.0, 110.0])
    result = run_backtest(panel, FixedWeights([1, 1, 0, 0]), FREE, scenario_name="hand")
    assert result.kind == "backtest" and result.events is None and result.scenario_name == "hand"
    np.testing.assert_allclose(result.equity["equity"], [100_000, 110_000, 121_000, 121_000])
    np.testing.assert_allclose(result.equity["gross_exposure"], [100_000, 110_000, 0, 0])
    np.testing.assert_allclose(result.equity["pnl"], [0, 10_000, 21_000, 21_000])
    assert list(result.fills["qty"]) == pytest.approx([1_000.0, -1_000.0])
    assert list(result.fills["price"]) == [100.0, 121.0]
    trade = result.trades.iloc[0]
    assert len(result.trades) == 1 and trade["side"] == 1 and trade["symbol"] == "S0"
    assert trade["pnl"] == pytest.approx(21_000) and trade["qty"] == pytest.approx(1_000)
    assert trade["entry_ts"] == panel.timestamps()[0] and trade["exit_ts"] == panel.timestamps()[2]
    assert result.metrics["total_pnl"] == pytest.approx(21_000)
    assert result.metrics["total_pnl_pct"] == pytest.approx(21.0)
    assert result.metrics["total_trades"] == 1 and result.metrics["winrate"] == 100.0


def test_fees_and_slippage_are_paid_on_traded_notional():
    config = SimConfig(backtest_fee_bps=10.0, backtest_slippage_bps=5.0, position_scale=1.0)
    panel = make_panel([100.0, 110.0])
    result = run_backtest(panel, FixedWeights([-1, 0]), config)
    sell, buy = result.fills.iloc[0], result.fills.iloc[1]
    # Short 1,000 (sized on the close) filled 5 bps lower; covered at 110 + 5 bps.
    assert sell["qty"] == pytest.approx(-1_000) and sell["price"] == pytest.approx(99.95)
    assert sell["fee"] == pytest.approx(1_000 * 99.95 * 0.001)
    assert sell["slippage_cost"] == pytest.approx(1_000 * 100 * 0.0005)
    assert buy["price"] == pytest.approx(110.055) and buy["fee"] == pytest.approx(1_000 * 110.055 * 0.001)
    pnl = 1_000 * (99.95 - 110.055) - sell["fee"] - buy["fee"]
    assert result.trades["pnl"].iloc[0] == pytest.approx(pnl)
    assert result.metrics["total_pnl"] == pytest.approx(pnl)
    assert result.metrics["fees"] == pytest.approx(sell["fee"] + buy["fee"])
    assert result.metrics["slippage_cost"] == pytest.approx(50.0 + 55.0)
    first_equity = 100_000 - sell["fee"] - 50.0  # marked at the close after paying costs
    assert result.equity["equity"].iloc[0] == pytest.approx(first_equity)


def test_equal_allocation_and_the_weight_cap():
    panel = make_panel(np.array([[100.0, 50.0], [100.0, 50.0]]))
    config = FREE.model_copy(update={"max_weight": 0.5})
    result = run_backtest(panel, FixedWeights([[1.0, -0.25], [1.0, -0.25]]), config)
    # 100,000 / 2 symbols; S0 capped at 0.5 -> 25,000 / 100; S1 -0.25 -> -12,500 / 50.
    assert list(result.fills["qty"]) == pytest.approx([250.0, -250.0])
    assert len(result.fills) == 2  # held weights are not re-traded


def test_positions_follow_weight_changes_not_price_drift():
    close = np.array([100.0, 120.0, 90.0, 150.0, 80.0])
    result = run_backtest(make_panel(close), FixedWeights([1, 1, 1, 0.5, 0.5]), FREE)
    assert len(result.fills) == 2
    equity_before = 100_000 + 1_000 * (150 - 100)
    assert result.fills["qty"].iloc[1] == pytest.approx(0.5 * equity_before / 150 - 1_000)


def test_untradable_bars_hold_and_a_missed_change_trades_at_the_next_tradable_bar():
    tradable = np.array([True, True, False, False, True])[:, None]
    panel = make_panel([100.0, 101.0, 102.0, 103.0, 104.0], tradable=tradable)
    result = run_backtest(panel, FixedWeights([0, 1, 0, 1, -1]), FREE)
    stamps = panel.timestamps()
    assert list(result.fills["ts"]) == [stamps[1], stamps[4]]
    assert result.fills["qty"].iloc[1] < 0  # the flip from +1 straight to -1 at the tradable bar
    assert result.equity["gross_exposure"].iloc[2] > 0  # held through the halt


def test_target_quantities_is_the_sizing_the_backtest_applies():
    config = SimConfig(max_weight=0.8, position_scale=1.0)
    qty = target_quantities(np.array([1.0, -0.5, 0.0, 1.0]), 120_000.0, np.array([100.0, 50.0, 10.0, 0.0]), config, 4)
    np.testing.assert_allclose(qty, [0.8 * 30_000 / 100, -0.5 * 30_000 / 50, 0.0, 0.0])
    assert not target_quantities(np.array([1.0]), -5.0, np.array([100.0]), config, 1).any()
    mask = rebalance_mask(
        np.array([1.0, 2.0, 0.5, 0.0]), np.array([0.8, 0.8, 0.0, 1.0]), np.array([1, 1, 1, 0]), config
    )
    assert mask.tolist() == [False, False, True, False]


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), fee=st.sampled_from([0.0, 10.0]), slip=st.sampled_from([0.0, 7.0]))
def test_every_fill_is_sized_by_target_quantities_and_the_books_balance(seed, fee, slip):
    rng = np.random.default_rng(seed)
    t, s = 60, 3
    close = random_walk(seed, t, s, vol=0.02)
    weights = np.round(rng.uniform(-1.0, 1.0, (t, s)) * (rng.random((t, s)) < 0.2), 1)
    weights = pd.DataFrame(np.where(weights == 0, np.nan, weights)).ffill().fillna(0.0).to_numpy()
    tradable = rng.random((t, s)) > 0.1
    config = SimConfig(backtest_fee_bps=fee, backtest_slippage_bps=slip, periods_per_year=365)
    panel = make_panel(close, tradable=tradable)
    result = run_backtest(panel, FixedWeights(weights), config)
    fills, equity = result.fills, result.equity
    position, cash = np.zeros(s), config.initial_capital
    for i in range(t):
        decided = cash + position @ close[i]  # equity marked at the close, before this bar's trades
        for _, fill in fills[fills["ts"] == panel.timestamps()[i]].iterrows():
            j = int(fill["symbol"][1:])
            target = target_quantities(weights[i, j], decided, close[i, j], config, s)
            assert position[j] + fill["qty"] == pytest.approx(float(target), rel=1e-12, abs=1e-12)
            assert tradable[i, j]
            position[j] += fill["qty"]
            cash -= fill["qty"] * fill["price"] + fill["fee"]
        assert equity["cash"].iloc[i] == pytest.approx(cash)
        assert equity["equity"].iloc[i] == pytest.approx(cash + position @ close[i])
    assert fills["ts"].isin(panel.timestamps()).all()
    # Closed trades plus the open book's mark explain the whole PnL.
    open_value = position @ close[-1]
    open_cost = sum(
        -(fills.loc[fills["symbol"] == f"S{j}", "qty"] * fills.loc[fills["symbol"] == f"S{j}", "price"]).sum()
        - fills.loc[fills["symbol"] == f"S{j}", "fee"].sum()
        for j in range(s)
    )
    assert result.metrics["total_pnl"] == pytest.approx(open_cost + open_value, abs=1e-6)
    if not np.any(position):
        assert result.metrics["total_pnl"] == pytest.approx(result.trades["pnl"].sum(), abs=1e-6)


def test_run_backtest_takes_bars_and_strategy_specs():
    bars = generate_bars(days=2)
    config = SimConfig(strategy="breakout", strategy_params={"entry_window": 60, "exit_window": 30})
    result = run_backtest(bars, None, config, scenario_name="base")
    assert result.details["strategy"] == "breakout" and result.details["data_guard"].total_rejected == 0
    assert result.metrics["total_trades"] == len(result.trades) > 0
    assert list(result.record())[: len(RESULT_FIELDS)] == list(RESULT_FIELDS)
    assert result.metrics["periods_per_year"] == 365 and result.metrics["returns_basis"] == "bar"
    assert len(result.metrics["equity_curve_sample"]) == config.equity_sample_points
    assert list(result.equity.columns) == ["equity", "cash", "gross_exposure", "pnl", "drawdown"]
    assert result.equity.index.name == "ts" and len(result.equity) == 2 * 1_440
    assert {"ts", "symbol", "order_id", "fill_id", "qty", "price", "fee"} <= set(result.fills.columns)
    again = run_backtest(bars, "breakout", config)
    pd.testing.assert_frame_equal(again.trades, result.trades)
    trend = run_backtest(bars, "trend", SimConfig(), scenario_name="x")
    assert trend.details["strategy"] == "trend"


def test_a_strategy_with_the_wrong_shape_is_refused():
    with pytest.raises(ValueError, match="shape"):
        run_backtest(make_panel([1.0, 2.0, 3.0]), FixedWeights([1.0, 0.0]), FREE)


def test_sim_bench_times_the_public_calls_with_the_kernel_beside_them():
    # Two days: the trend's slow window (one day) warms up inside the data.
    rows = run_backtest_bench(repeat=1, n_symbols=2, days=2) + run_paper_bench(repeat=1, n_symbols=2, days=2)
    assert [row.name for row in rows] == ['run_backtest(bars, "trend")', 'run_paper(bars, "trend")']
    for row in rows:
        assert row.call.items == row.kernel.items == 2 * 2_880 and row.call.unit == "bar-symbols"
        assert row.call.seconds > 0 and row.kernel.seconds > 0
        assert row.met == (row.call.items_per_second >= row.target_items_per_s)
        summary = row.as_dict()
        assert summary["met"] == row.met and summary["kernel"]["bar-symbols"] == 2 * 2_880
    assert rows[0].target_items_per_s == BACKTEST_TARGET_BAR_SYMBOLS_PER_S == 10_000_000
    assert rows[1].target_items_per_s == PAPER_TARGET_BAR_SYMBOLS_PER_S == 4_000_000
    table = format_sim_bench(rows)
    assert table.splitlines()[0].split()[-3:] == ["kernel", "target", "met"]
    assert ">= 10.0 M" in table and ">= 4.0 M" in table
