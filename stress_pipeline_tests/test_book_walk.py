"""Fills that walk the book: the walk and queue kernels (hypothesis), and the paper engine against a
hand-built book (market orders walk levels and fill partially when depth runs out, limit orders
queue behind resting size); bars-only runs are untouched (the exchange tests pin their numbers)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stress_pipeline.book.dense import panel_books
from stress_pipeline.book.kernels import queue_ahead, queue_fill, walk
from stress_pipeline.book.schema import DenseBook
from stress_pipeline.simulation.paper import run_paper
from stress_pipeline.trading.exchange.config import RouterConfig
from stress_pipeline.trading.exchange.fills import path_mean
from stress_pipeline_tests.test_exchange import FULL, MIN, T0, FixedWeights, make_panel, only, policy

FLAT = [100.0, 100.0, 100.0, 100.0]


@st.composite
def books(draw):
    n = draw(st.integers(1, 12))
    best = draw(st.floats(1e3, 1e5))  # above the deepest gap sum: bids stay > 0
    gaps = draw(st.lists(st.floats(1e-4, 10.0), min_size=n, max_size=n))
    prices = best + np.concatenate([[0.0], np.cumsum(gaps[:-1])])
    sizes = np.array(draw(st.lists(st.floats(0.0, 1e4), min_size=n, max_size=n)))
    return prices, sizes


@settings(max_examples=300, deadline=None)
@given(book=books(), qty=st.floats(1e-6, 1e5), skip=st.floats(0.0, 1e4), buy=st.booleans())
def test_walk_fills_min_of_order_and_depth_at_prices_between_the_levels_taken(book, qty, skip, buy):
    prices, sizes = book
    if not buy:  # bids: falling prices from the touch
        prices = prices[0] - (prices - prices[0])
    filled, average, taken = walk(prices, sizes, qty, skip, np.nan, buy)
    depth = max(sizes.sum() - skip, 0.0)
    assert filled == pytest.approx(min(qty, depth), rel=1e-9, abs=1e-9)
    if filled <= 0:
        assert taken == 0 and np.isnan(average)
        return
    available, left = [], skip  # the levels with depth left after the skip, touch first
    for i, size in enumerate(sizes):
        if size > 0 and left >= size:
            left -= size
        elif size > 0:
            available.append(i)
            left = 0.0
    assert 1 <= taken <= len(available)
    best, worst = prices[available[0]], prices[available[taken - 1]]
    low, high = min(best, worst), max(best, worst)
    assert low * (1 - 1e-12) <= average <= high * (1 + 1e-12)
    # never better than the best level of the book
    assert (average >= prices[0] * (1 - 1e-12)) if buy else (average <= prices[0] * (1 + 1e-12))


def test_walk_hand_values_and_limit():
    prices = np.array([100.01, 100.02, 100.05])
    sizes = np.array([300.0, 300.0, 1_000.0])
    filled, average, taken = walk(prices, sizes, 1_000.0)
    assert (filled, taken) == (1_000.0, 3)
    assert average == pytest.approx((300 * 100.01 + 300 * 100.02 + 400 * 100.05) / 1_000)
    assert walk(prices, sizes, 1_000.0, 0.0, 100.02, True)[:2] == (600.0, pytest.approx(100.015))
    assert walk(prices, sizes, 100.0, 550.0) == (100.0, pytest.approx(100.035), 2)  # 50 left at 100.02, then 100.05


@settings(max_examples=200, deadline=None)
@given(queue=st.floats(0, 1e6), traded=st.floats(0, 1e6), qty=st.floats(0, 1e6))
def test_queue_fill_works_off_the_queue_first(queue, traded, qty):
    filled, left = queue_fill(queue, traded, qty)
    assert filled == pytest.approx(min(qty, max(traded - queue, 0.0)))
    assert left == pytest.approx(max(queue - traded, 0.0))


def test_queue_ahead_counts_size_at_or_better_than_the_limit():
    bids = np.array([99.99, 99.5, 99.0, 98.5])
    sizes = np.array([500.0, 500.0, 1_000.0, 7.0])
    assert queue_ahead(bids, sizes, 99.0, True) == 2_000.0
    asks = np.array([100.01, 100.5])
    assert queue_ahead(asks, np.array([3.0, 4.0]), 100.2, False) == 3.0


# ----------------------------------------------------------------------------------- the engine


def flat_book(n: int, bids, asks) -> dict[str, DenseBook]:
    (bp, bs), (ap, as_) = (np.array(x, dtype=float).T for x in (bids, asks))
    return {"BTCUSDT": DenseBook(T0 + np.arange(n, dtype=np.int64) * MIN, np.tile(bp, (n, 1)), np.tile(bs, (n, 1)),
                                 np.tile(ap, (n, 1)), np.tile(as_, (n, 1)))}  # fmt: skip


BIDS = [(99.99, 300.0), (99.98, 300.0), (99.95, 1_000.0)]
ASKS = [(100.01, 300.0), (100.02, 300.0), (100.05, 1_000.0)]


def test_market_order_walks_the_levels():
    panel = make_panel([FLAT] * 3)
    result = run_paper(panel, FixedWeights(1.0), FULL, policy=policy(), toggles=only("spread", "impact"),
                       books=flat_book(3, BIDS, ASKS))  # fmt: skip
    fill = result.fills.iloc[0]
    assert fill.qty == pytest.approx(1_000.0)
    avg_bps = (300 * 1 + 300 * 2 + 400 * 5) / 1_000  # 2.9 bps above the mid of 100
    assert fill.price == pytest.approx(100 * (1 + avg_bps * 1e-4))
    assert fill.spread_cost == pytest.approx(1_000 * 100 * 1e-4)  # the touch, 1 bp
    assert fill.impact_cost == pytest.approx(1_000 * 100 * 1.9e-4)  # the rest of the walk
    details = json.loads(result.events[result.events.kind == "fill"].details.iloc[0])
    assert details["levels"] == 3 and details["liquidity"] == "taker"
    # the spread switch removes the touch, the impact switch the walk
    only_spread = run_paper(panel, FixedWeights(1.0), FULL, policy=policy(), toggles=only("spread"),
                            books=flat_book(3, BIDS, ASKS)).fills.iloc[0]  # fmt: skip
    assert only_spread.price == pytest.approx(100.01) and only_spread.impact_cost == 0.0


def test_partial_fill_when_depth_runs_out_then_the_rest_works_on():
    panel = make_panel([FLAT, FLAT, [100.0, 101.0, 99.0, 100.5], FLAT])
    thin = flat_book(4, BIDS[:2], ASKS[:2])  # 600 on each side
    result = run_paper(panel, FixedWeights(1.0), FULL, policy=policy(), toggles=only("spread", "impact"), books=thin)
    fills = result.fills
    assert fills.qty.tolist() == pytest.approx([600.0, 400.0])  # the book, then the next bar's fresh book
    mean = path_mean(100.0, 100.0, 100.0, 100.0)
    assert fills.price.iloc[1] == pytest.approx(mean * (1 + (300 * 1 + 100 * 2) / 400 * 1e-4))
    assert fills.order_id.nunique() == 1


def test_limit_order_queues_behind_resting_size():
    down = [100.0, 100.2, 98.0, 98.5]
    panel = make_panel([FLAT, [100.0, 100.5, 99.5, 100.0], down, FLAT, down, FLAT], volume=5_000.0)
    bids = [(99.99, 500.0), (99.5, 500.0), (99.0, 1_000.0), (98.5, 7.0)]
    router = RouterConfig(order_type="limit", limit_offset_bps=100.0)  # a buy at 99.0
    result = run_paper(panel, FixedWeights(1.0), FULL, policy=policy(router=router), toggles=only("spread"),
                       books=flat_book(6, bids, [*ASKS, (100.1, 1_000.0)]))  # fmt: skip
    fills = result.fills
    touch = 1 / 3 + (1.2 / 2.2) / 3  # where the down bar's path reaches 99
    first = 5_000 * (1 - touch) - 2_000  # the volume after the touch, less the 2,000 ahead of us
    assert fills.qty.tolist() == pytest.approx([first, 1_000 - first])
    assert (fills.price == 99.0).all() and (fills.liquidity == "maker").all()
    assert [t.value for t in fills.ts] == [T0 + 2 * MIN + int(touch * MIN), T0 + 4 * MIN + int(touch * MIN)]


def test_panel_books_line_up_with_bars():
    book = flat_book(2, BIDS, ASKS)["BTCUSDT"]
    aligned = panel_books({"BTCUSDT": book}, ("BTCUSDT", "ETHUSDT"), T0 + np.arange(-1, 3) * MIN)
    assert aligned.booked[:, 0].tolist() == [False, True, True, True]  # the last bar keeps the latest book
    assert not aligned.booked[:, 1].any()
    np.testing.assert_allclose(aligned.ask_off[1, 0], [1.0, 2.0, 5.0])
    np.testing.assert_allclose(aligned.bid_off[1, 0], [1.0, 2.0, 5.0])
