"""The rules both simulations share (``simulation/booking.py``): sizing, fill booking, round trips.

Property tests on random fill sequences (hypothesis): the account's value is conserved by a fill up
to its fee, fees never go negative, a position brought back to flat has realised exactly the
round trip's PnL, and the round trips equal an independent walk over the same fills. Then the two
simulations are held to the same functions: the backtest, the paper engine and the trades table
call the one sizing and booking function, and their numbers agree with it.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stress_pipeline.market.panel import prepare_panel
from stress_pipeline.market.synthetic import generate_bars
from stress_pipeline.simulation import backtest, booking, trades
from stress_pipeline.simulation.booking import Sizing, book_fill, new_book, sized_weight, target_quantity
from stress_pipeline.simulation.config import SimConfig
from stress_pipeline.simulation.engine import routing, venue
from stress_pipeline.simulation.paper import RealismToggles, paper_weights, run_paper
from stress_pipeline.trading import get_strategy

QTY = st.floats(-50, 50, allow_nan=False).filter(lambda q: abs(q) > 1e-3)
FILLS = st.lists(
    st.tuples(QTY, st.floats(1.0, 500.0), st.floats(0.0, 2.0)),  # (signed qty, price, fee)
    min_size=1,
    max_size=40,
)


def _book(fills, *, close_out: bool = False):
    """Book ``fills`` on one symbol; returns (entry, cash after each fill, round trips)."""
    book = new_book(1)
    entry = book[0]
    cash, cashes, trips = 1_000.0, [], []
    if close_out:
        total = sum(q for q, _, _ in fills)
        if abs(total) > 1e-6:
            fills = [*fills, (-total, fills[-1][1], 0.0)]
    for i, (q, price, fee) in enumerate(fills):
        before = cash + entry["position"] * price
        cash, trip = book_fill(entry, cash, i, q, price, fee)
        after = cash + entry["position"] * price
        cashes.append((before, after, fee))
        if trip.closed:
            trips.append(trip)
    return entry, cashes, trips


@settings(max_examples=200, deadline=None)
@given(fills=FILLS)
def test_a_fill_conserves_cash_plus_position_value_up_to_its_fee(fills):
    _, values, _ = _book(fills)
    for before, after, fee in values:
        assert after == pytest.approx(before - fee, rel=1e-9, abs=1e-6)


@settings(max_examples=200, deadline=None)
@given(fills=FILLS)
def test_fees_are_never_negative_and_add_up(fills):
    entry, _, trips = _book(fills)
    assert entry["fees"] == pytest.approx(sum(fee for _, _, fee in fills), abs=1e-9)
    assert all(trip.fees >= 0.0 for trip in trips)


@settings(max_examples=200, deadline=None)
@given(fills=FILLS)
def test_flat_after_a_round_trip_means_its_pnl_was_realised_in_cash(fills):
    entry, _, trips = _book(fills, close_out=True)
    assert entry["position"] == 0.0 and entry["side"] == 0
    # Every round trip closed; their PnL is the whole change of cash, and realised less fees.
    gained = sum(trip.pnl for trip in trips)
    all_fills = [*fills]
    total = sum(q for q, _, _ in fills)
    if abs(total) > 1e-6:
        all_fills.append((-total, fills[-1][1], 0.0))
    cash_change = -sum(q * p + f for q, p, f in all_fills)
    assert gained == pytest.approx(cash_change, rel=1e-9, abs=1e-6)
    assert entry["realised"] - entry["fees"] == pytest.approx(gained, rel=1e-9, abs=1e-6)
    for trip in trips:
        assert trip.pnl == pytest.approx(trip.gross_pnl - trip.fees)
        assert trip.side in (-1, 1) and trip.qty > 0


@settings(max_examples=200, deadline=None)
@given(fills=FILLS)
def test_round_trips_are_position_episodes(fills):
    """An independent walk: an episode runs from flat to flat (a flip closes one and opens the next);
    its PnL is its cash flow less fees, the flip's fill split pro rata."""
    _, _, trips = _book(fills)
    expected, position, flow, fees = [], 0.0, 0.0, 0.0
    for q, price, fee in fills:
        after = position + q
        if abs(after) <= 1e-9 * max(abs(position), abs(q)):
            after = 0.0
        crosses = position != 0.0 and after * position < 0.0
        part = abs(position) / abs(q) if crosses else 1.0
        flow -= part * q * price
        fees += part * fee
        if position != 0.0 and (after == 0.0 or crosses):
            expected.append(flow - fees)
            flow, fees = -(1 - part) * q * price, (1 - part) * fee
        position = after
    np.testing.assert_allclose([t.pnl for t in trips], expected, rtol=1e-9, atol=1e-6)
    table = trades.round_trips(
        pd.DataFrame({"ts": pd.to_datetime(np.arange(len(fills)), unit="s", utc=True), "symbol": "S",
                      "qty": [q for q, _, _ in fills], "price": [p for _, p, _ in fills],
                      "fee": [f for _, _, f in fills]})
    )  # fmt: skip
    np.testing.assert_allclose(table["pnl"].to_numpy(), [t.pnl for t in trips])


def test_book_fill_by_hand_average_cost_and_a_flip():
    book = new_book(1)
    entry = book[0]
    cash, trip = book_fill(entry, 10_000.0, 1, 10.0, 100.0, 1.0)  # buy 10 at 100
    assert cash == 10_000.0 - 1_001.0 and not trip.closed
    cash, trip = book_fill(entry, cash, 2, 10.0, 110.0, 1.0)  # add 10 at 110: average 105
    assert entry["avg_price"] == pytest.approx(105.0) and entry["position"] == 20.0
    cash, trip = book_fill(entry, cash, 3, -30.0, 120.0, 3.0)  # sell 30: close 20 (+300), open short 10
    assert trip.closed and trip.side == 1 and trip.qty == 20.0
    assert trip.gross_pnl == pytest.approx(300.0) and trip.fees == pytest.approx(1 + 1 + 2)
    assert trip.entry_price == pytest.approx(105.0) and trip.exit_price == pytest.approx(120.0)
    assert entry["position"] == -10.0 and entry["avg_price"] == 120.0 and entry["side"] == -1
    assert entry["trip_fees"] == pytest.approx(1.0)  # the short's share of the flip's fee
    assert entry["realised"] == pytest.approx(300.0)


def test_sizing_by_hand():
    sizing = Sizing(position_scale=0.5, max_weight=0.8, n_symbols=4)
    assert sized_weight(1.0, sizing) == 0.5
    assert sized_weight(3.0, sizing) == 0.8 and sized_weight(-3.0, sizing) == -0.8
    assert sized_weight(np.nan, sizing) == 0.0 and sized_weight(np.inf, sizing) == 0.5
    assert target_quantity(0.5, 120_000.0, 100.0, sizing, 1.0) == pytest.approx(0.5 * 30_000 / 100)
    assert target_quantity(0.5, 120_000.0, 100.0, sizing, 0.5) == pytest.approx(0.25 * 30_000 / 100)
    assert target_quantity(0.5, -1.0, 100.0, sizing, 1.0) == 0.0  # a ruined account sizes to 0
    assert target_quantity(0.5, 120_000.0, 0.0, sizing, 1.0) == 0.0  # no price, no position


# ------------------------------------------------------------------------ one rule for both sims


def test_both_simulations_and_the_trades_table_call_the_same_compiled_rules():
    def calls(dispatcher) -> dict:
        return dispatcher.py_func.__globals__

    assert calls(backtest._simulate)["book_fill"] is booking.book_fill
    assert calls(venue.execute)["book_fill"] is booking.book_fill
    assert calls(trades._episodes)["book_fill"] is booking.book_fill
    assert calls(backtest._simulate)["target_quantity"] is booking.target_quantity
    assert calls(routing.decide)["target_quantity"] is booking.target_quantity
    assert calls(backtest._simulate)["sized_weight"] is booking.sized_weight
    assert calls(booking.sized_weights)["sized_weight"] is booking.sized_weight


def test_backtest_and_paper_fills_are_the_shared_sizing_and_booking():
    panel, _ = prepare_panel(generate_bars(days=2, seed=3))
    config = SimConfig(backtest_fee_bps=0.0, backtest_slippage_bps=0.0, position_scale=0.7)
    strategy = get_strategy("trend", fast=20, slow=120, band=0.0005)
    sims = {
        "backtest": backtest.run_backtest(panel, strategy, config),
        "paper": run_paper(panel, strategy, config, toggles=RealismToggles.none()),
    }
    weights = paper_weights(strategy, panel, config)
    sizing = booking.sizing_of(config, panel.shape[1])
    for name, result in sims.items():
        fills = result.fills
        assert len(fills) > 10, name
        # Replay the fills through book_fill: the same cash, and every fill takes the position to
        # target_quantity of the sized weight on the equity marked before it.
        book = new_book(panel.shape[1])
        cash = config.initial_capital
        bar = np.searchsorted(panel.ts, fills["ts"].array.asi8 - (60_000_000_000 if name == "paper" else 0))
        for (_, fill), k in zip(fills.iterrows(), bar, strict=True):
            j = panel.symbols.index(fill["symbol"])
            before = cash + book["position"] @ panel.close[k]  # fills at the close keep it unchanged
            target = target_quantity(weights[k, j], before, panel.close[k, j], sizing, 1.0)
            assert book[j]["position"] + fill["qty"] == pytest.approx(target, rel=1e-9), name
            cash, _ = book_fill(book[j], cash, int(k), fill["qty"], fill["price"], fill["fee"])
        assert cash == pytest.approx(result.equity["cash"].iloc[-1], rel=1e-12), name


def test_the_win_rate_controller_counts_the_round_trips_the_metrics_count():
    bars = generate_bars(days=4, seed=8)
    config = SimConfig(strategy_params={"fast": 10, "slow": 60, "band": 0.0})
    result = run_paper(bars, None, config)
    window = 20  # the default policy controller's window
    changes = result.events[result.events["kind"] == "policy_change"]
    assert len(changes) >= 1 and len(result.trades) >= 20
    pnl = result.trades.sort_values("exit_ts", kind="stable")["pnl"].to_numpy()
    exits = result.trades.sort_values("exit_ts", kind="stable")["exit_ts"]
    for _, change in changes.iterrows():
        detail = json.loads(change["details"])
        closed = int(detail["closed_trades"])
        assert closed == int((exits <= change["ts"]).sum())  # the same trades, closed by then
        recent = pnl[:closed][-window:]
        assert float(detail["winrate"]) == pytest.approx((recent > 0).mean())
