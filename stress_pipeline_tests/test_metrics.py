"""Metrics on hand-computed series, and round trips from fills (partial, adds, flips, open ends)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stress_pipeline.simulation.metrics import (
    MIN_DAILY_RETURNS,
    compute_metrics,
    equity_frame,
    estimate_bars_per_day,
    historical_var,
    infer_periods_per_year,
    periods_per_year,
    profit_factor,
    sample_curve,
    sharpe_ratio,
    sortino_ratio,
)
from stress_pipeline.simulation.result import RESULT_FIELDS
from stress_pipeline.simulation.trades import TRADE_COLUMNS, round_trips

DAY = pd.Timedelta(days=1)
T0 = pd.Timestamp("2024-01-01", tz="UTC")
EXTRA = ("sortino_ratio", "avg_win", "avg_loss", "var_95", "cvar_95", "var_99", "cvar_99", "exposure", "turnover")


def stamps(n: int, step: pd.Timedelta = DAY) -> np.ndarray:
    return pd.date_range(T0, periods=n, freq=step).as_unit("ns").asi8


def curve(values, step=DAY, gross=None) -> pd.DataFrame:
    values = np.asarray(values, dtype=np.float64)
    ts = stamps(len(values), step)
    return equity_frame(ts, values, values, np.zeros(len(values)) if gross is None else gross, float(values[0]))


def trades_with(pnl) -> pd.DataFrame:
    return pd.DataFrame({"symbol": ["S"] * len(pnl), "pnl": np.asarray(pnl, dtype=np.float64)})


def metrics(equity, trades=None, fills=None, **kwargs):
    defaults = {"initial_capital": 100.0, "periods_per_year": 365, "scenario_name": "hand", "duration_sec": 1.5}
    empty = pd.DataFrame({"pnl": []})
    return compute_metrics(equity, empty if trades is None else trades, fills, **{**defaults, **kwargs})


# ------------------------------------------------------------------------------- metrics


def test_equity_100_110_99_120_has_a_10_percent_drawdown_and_known_returns():
    equity = curve([100.0, 110.0, 99.0, 120.0])
    np.testing.assert_allclose(equity["drawdown"], [0.0, 0.0, 0.1, 0.0])
    np.testing.assert_allclose(equity["pnl"], [0.0, 10.0, -1.0, 20.0])
    m = metrics(equity)
    assert m["max_drawdown"] == pytest.approx(10.0)
    assert m["total_pnl"] == pytest.approx(20.0) and m["total_pnl_pct"] == pytest.approx(20.0)
    # Four days are too few for daily statistics: bar returns, here one bar a day, x 365.
    returns = np.array([0.0, 0.1, -0.1, 21 / 99])
    assert m["returns_basis"] == "bar"
    assert m["sharpe_ratio"] == pytest.approx(returns.mean() / returns.std(ddof=1) * math.sqrt(365))
    downside = math.sqrt(np.mean(np.minimum(returns, 0) ** 2))
    assert m["sortino_ratio"] == pytest.approx(returns.mean() / downside * math.sqrt(365))
    assert m["equity_curve_sample"] == [100.0, 100.0, 110.0, 99.0, 120.0]


def test_sharpe_and_sortino_by_hand():
    returns = np.array([0.01, -0.01, 0.02, 0.0])
    assert sharpe_ratio(returns, 252) == pytest.approx(0.005 / math.sqrt(0.0005 / 3) * math.sqrt(252))
    assert sortino_ratio(returns, 252) == pytest.approx(0.005 / math.sqrt(0.0001 / 4) * math.sqrt(252))
    assert sharpe_ratio(np.array([0.01]), 252) == 0.0
    assert sharpe_ratio(np.full(5, 0.01), 252) == 0.0  # no dispersion
    assert sortino_ratio(np.full(5, 0.01), 252) == 0.0  # no downside


def test_daily_returns_take_the_last_equity_of_each_utc_day():
    hours = 24 * (MIN_DAILY_RETURNS + 5)
    rng = np.random.default_rng(0)
    values = 100.0 * np.cumprod(1 + rng.normal(0, 0.002, hours))
    equity = equity_frame(stamps(hours, pd.Timedelta(hours=1)), values, values, np.zeros(hours), 100.0)
    m = metrics(equity, periods_per_year=252)
    closes = np.concatenate([[100.0], values[23::24]])
    daily = np.diff(closes) / closes[:-1]
    assert m["returns_basis"] == "daily"
    assert m["sharpe_ratio"] == pytest.approx(daily.mean() / daily.std(ddof=1) * math.sqrt(252))
    assert m["var_95"] == pytest.approx(-100 * np.sort(daily)[1])  # k = ceil(35 x 0.05) = 2


def test_trades_10_minus_5_20_give_profit_factor_6_and_win_rate_two_thirds():
    m = metrics(curve([100.0, 125.0]), trades_with([10.0, -5.0, 20.0]))
    assert m["profit_factor"] == pytest.approx(6.0)
    assert m["winrate"] == pytest.approx(66.67, abs=0.01)
    assert (m["total_trades"], m["winning_trades"], m["losing_trades"]) == (3, 2, 1)
    assert m["avg_win"] == pytest.approx(15.0) and m["avg_loss"] == pytest.approx(-5.0)


def test_profit_factor_edges_and_zero_pnl_trades():
    assert profit_factor(np.array([5.0, 1.0])) == math.inf
    assert profit_factor(np.array([-5.0])) == 0.0
    assert profit_factor(np.zeros(0)) == 0.0
    m = metrics(curve([100.0, 100.0]), trades_with([0.0, 2.0, -1.0]))
    assert (m["total_trades"], m["winning_trades"], m["losing_trades"]) == (3, 1, 1)
    assert m["winrate"] == pytest.approx(100 / 3)


def test_historical_var_and_cvar_on_a_known_sample():
    returns = np.array([-0.05, -0.03, *np.linspace(-0.02, 0.03, 38)])
    assert historical_var(returns, 0.95) == pytest.approx((3.0, 4.0))  # k = 2: -(-3%), mean of -5% and -3%
    assert historical_var(returns, 0.99) == pytest.approx((5.0, 5.0))  # k = 1
    sample = np.arange(1, 101) / 100 - 0.5  # -0.49 .. 0.50
    var, cvar = historical_var(sample, 0.95)  # k = 5: -0.45, mean of -0.49 .. -0.45
    assert var == pytest.approx(45.0) and cvar == pytest.approx(47.0)
    assert historical_var(np.zeros(0), 0.95) == (0.0, 0.0)


def test_exposure_turnover_fees_and_execution_costs():
    equity = curve([100.0, 100.0, 100.0, 100.0], gross=np.array([0.0, 50.0, 100.0, 50.0]))
    fills = pd.DataFrame(
        {
            "qty": [1.0, -2.0],
            "price": [50.0, 25.0],
            "fee": [0.1, 0.2],
            "spread_cost": [0.05, np.nan],
            "impact_cost": [0.01, 0.02],
        }
    )
    m = metrics(equity, fills=fills)
    assert m["exposure"] == pytest.approx(0.5)
    assert m["turnover"] == pytest.approx(1.0)  # 100 traded / 100 mean equity
    assert m["fees"] == pytest.approx(0.3)
    assert m["slippage_cost"] == pytest.approx(0.08)


def test_the_record_has_every_seed_field_in_order_then_the_extras():
    m = metrics(curve([100.0, 101.0]), notes="ok", emergency_stops=2, execution_failures=3)
    assert tuple(m)[: len(RESULT_FIELDS)] == RESULT_FIELDS
    assert set(EXTRA) <= set(m) and {"fees", "slippage_cost"} <= set(m)
    assert m["scenario_name"] == "hand" and m["success"] is True and m["duration_sec"] == 1.5
    assert (m["emergency_stops"], m["execution_failures"], m["notes"]) == (2, 3, "ok")
    assert m["failed_models"] == [] and m["failed_strategies"] == []
    assert all(isinstance(v, float) for v in m["equity_curve_sample"])
    failed = metrics(curve([100.0]), success=False, failed_strategies=["trend"])
    assert failed["success"] is False and failed["failed_strategies"] == ["trend"]


def test_equity_curve_sample_is_evenly_spaced_and_keeps_both_ends():
    values = np.arange(1_000, dtype=np.float64)
    sample = sample_curve(values, 50)
    assert len(sample) == 50 and sample[0] == 0.0 and sample[-1] == 999.0
    assert np.ptp(np.diff(sample)) <= 1.0


def test_bars_per_day_for_round_the_clock_and_session_markets():
    minutes = stamps(600, pd.Timedelta(minutes=1))
    assert estimate_bars_per_day(minutes, 365) == pytest.approx(1_440)
    session = np.concatenate([minutes[:390], minutes[:390] + DAY.value])
    assert estimate_bars_per_day(session, 252) == 390


def test_bars_per_day_takes_the_given_bar_interval():
    minutes = stamps(600, pd.Timedelta(minutes=1))
    assert estimate_bars_per_day(minutes, 365, interval_ns=300_000_000_000) == pytest.approx(288)
    assert estimate_bars_per_day(minutes[:1], 365) == 1.0


def test_periods_per_year_is_the_configured_value_when_set():
    weekdays = stamps(5)  # 2024-01-01 is a Monday
    assert periods_per_year(weekdays, 100) == 100
    assert periods_per_year(weekdays, None) == infer_periods_per_year(weekdays)


def test_periods_per_year_is_inferred_from_weekend_bars():
    minutes = pd.Timedelta(minutes=1)
    assert infer_periods_per_year(stamps(7 * 1_440, minutes)) == 365  # round the clock, a whole week
    saturday = pd.Timestamp("2024-01-06 10:00", tz="UTC").value
    assert infer_periods_per_year(np.array([saturday])) == 365  # one weekend bar is enough
    sessions = [pd.date_range(f"2024-01-{d:02d} 14:30", periods=390, freq="1min", tz="UTC") for d in (4, 5, 8, 9)]
    weekday_only = np.concatenate([s.as_unit("ns").asi8 for s in sessions])  # Thu, Fri, Mon, Tue
    assert infer_periods_per_year(weekday_only) == 252  # spans a weekend with no bar on it
    daily = pd.bdate_range("2024-01-01", periods=30, tz="UTC").as_unit("ns").asi8
    assert infer_periods_per_year(daily) == 252
    assert infer_periods_per_year(weekday_only[:390]) == 365  # one weekday cannot tell: round the clock
    assert infer_periods_per_year(np.zeros(0, dtype=np.int64)) == 365


@settings(max_examples=50, deadline=None)
@given(start=st.integers(0, 3_000), days=st.integers(1, 60), weekend=st.booleans())
def test_inferred_periods_follow_the_weekend_rule(start, days, weekend):
    day = pd.Timedelta(days=1).value
    ts = (np.arange(days, dtype=np.int64) + 19_000 + start) * day + 3_600_000_000_000
    weekdays = (ts // day + 3) % 7
    if not weekend:
        ts = ts[weekdays < 5]
    if len(ts) == 0:
        return
    got = infer_periods_per_year(ts)
    has_weekend_bar = bool(((ts // day + 3) % 7 >= 5).any())
    span_has_weekend = any((d + 3) % 7 >= 5 for d in range(int(ts[0] // day), int(ts[-1] // day) + 1))
    assert got == (365 if has_weekend_bar or not span_has_weekend else 252)


# ------------------------------------------------------------------------------- round trips


def fills_frame(rows) -> pd.DataFrame:
    """rows: (minute, symbol, qty, price, fee)."""
    minute, symbol, qty, price, fee = zip(*rows, strict=True)
    return pd.DataFrame(
        {
            "ts": T0 + pd.Timedelta(minutes=1) * np.array(minute),
            "symbol": list(symbol),
            "qty": np.array(qty, dtype=np.float64),
            "price": np.array(price, dtype=np.float64),
            "fee": np.array(fee, dtype=np.float64),
        }
    )


def test_a_round_trip_with_adds_and_partial_closes_is_one_trade():
    trades = round_trips(
        fills_frame(
            [(0, "A", 1.0, 10.0, 0.1), (1, "A", 1.0, 11.0, 0.1), (2, "A", -0.5, 12.0, 0.1), (3, "A", -1.5, 13.0, 0.1)]
        )
    )
    assert tuple(trades.columns) == TRADE_COLUMNS and len(trades) == 1
    trade = trades.iloc[0]
    assert trade["side"] == 1 and trade["qty"] == pytest.approx(2.0)
    assert trade["entry_price"] == pytest.approx(10.5) and trade["exit_price"] == pytest.approx(12.75)
    assert trade["gross_pnl"] == pytest.approx(4.5) and trade["fees"] == pytest.approx(0.4)
    assert trade["pnl"] == pytest.approx(4.1)
    assert trade["entry_ts"] == T0 and trade["exit_ts"] == T0 + pd.Timedelta(minutes=3)


def test_a_flip_closes_one_round_trip_and_opens_the_next_with_the_fee_split():
    trades = round_trips(fills_frame([(0, "A", 1.0, 10.0, 0.0), (1, "A", -3.0, 12.0, 0.3), (2, "A", 2.0, 11.0, 0.0)]))
    assert trades["side"].tolist() == [1, -1]
    np.testing.assert_allclose(trades["qty"], [1.0, 2.0])
    np.testing.assert_allclose(trades["entry_price"], [10.0, 12.0])
    np.testing.assert_allclose(trades["exit_price"], [12.0, 11.0])
    np.testing.assert_allclose(trades["fees"], [0.1, 0.2])
    np.testing.assert_allclose(trades["pnl"], [1.9, 1.8])
    assert trades["entry_ts"].iloc[1] == T0 + pd.Timedelta(minutes=1)


def test_open_episodes_are_not_trades_and_symbols_are_kept_apart():
    trades = round_trips(
        fills_frame(
            [
                (0, "B", -1.0, 50.0, 0.0),
                (0, "A", 2.0, 10.0, 0.0),
                (1, "B", 1.0, 45.0, 0.0),
                (2, "A", -1.0, 9.0, 0.0),  # A is still long 1 at the end: no closed trade
                (3, "C", 1.0, 5.0, 0.0),
            ]
        )
    )
    assert trades["symbol"].tolist() == ["B"]
    assert trades["pnl"].iloc[0] == pytest.approx(5.0) and trades["side"].iloc[0] == -1


def test_float_residue_counts_as_flat():
    trades = round_trips(fills_frame([(0, "A", 0.1, 10.0, 0.0), (1, "A", 0.2, 10.0, 0.0), (2, "A", -0.3, 11.0, 0.0)]))
    assert len(trades) == 1 and trades["pnl"].iloc[0] == pytest.approx(0.3)


def test_no_fills_no_trades():
    trades = round_trips(pd.DataFrame({"ts": [], "symbol": [], "qty": [], "price": [], "fee": []}))
    assert trades.empty and tuple(trades.columns) == TRADE_COLUMNS
    assert str(trades["exit_ts"].dtype) == "datetime64[ns, UTC]"


@settings(max_examples=50, deadline=None)
@given(
    steps=st.lists(
        st.tuples(
            st.sampled_from(["A", "B"]),
            st.sampled_from([-3.0, -2.0, -1.0, -0.5, 0.5, 1.0, 2.0, 3.0]),
            st.floats(1.0, 100.0),
            st.floats(0.0, 1.0),
        ),
        min_size=1,
        max_size=30,
    )
)
def test_closed_round_trips_account_for_every_fill_of_a_book_that_ends_flat(steps):
    rows = [(i, symbol, qty, price, fee) for i, (symbol, qty, price, fee) in enumerate(steps)]
    end = len(rows)
    for symbol in ("A", "B"):  # close whatever is left, so every episode ends
        position = sum(qty for _, s, qty, _, _ in rows if s == symbol)
        if abs(position) > 1e-12:
            rows.append((end, symbol, -position, 50.0, 0.0))
            end += 1
    fills = fills_frame(rows)
    trades = round_trips(fills)
    cash = -(fills["qty"] * fills["price"]).sum() - fills["fee"].sum()
    assert trades["pnl"].sum() == pytest.approx(cash, abs=1e-6)
    assert trades["fees"].sum() == pytest.approx(fills["fee"].sum(), abs=1e-9)
    assert (trades["exit_ts"] >= trades["entry_ts"]).all() and trades["exit_ts"].is_monotonic_increasing
    np.testing.assert_allclose(trades["gross_pnl"] - trades["fees"], trades["pnl"])
    for _, trade in trades.iterrows():  # entry and exit prices stay within the prices traded
        assert fills["price"].min() - 1e-9 <= trade["entry_price"] <= fills["price"].max() + 1e-9
        assert fills["price"].min() - 1e-9 <= trade["exit_price"] <= fills["price"].max() + 1e-9
