"""depth_collapse: the factor path, the bars' spread, the books' sizes, the pack and the catalog."""

from __future__ import annotations

import json
from functools import lru_cache

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from stress_pipeline.book.stress import collapse_path
from stress_pipeline.book.synthetic import synthetic_books
from stress_pipeline.market.synthetic import generate_bars
from stress_pipeline.scenarios.apply import run_scenario
from stress_pipeline.scenarios.arrays import PRICE_FIELDS, BarArrays
from stress_pipeline.scenarios.depth_books import scenario_books, stressed_books
from stress_pipeline.scenarios.model import SCENARIO_ADAPTER
from stress_pipeline.simulation.config import SimConfig
from stress_pipeline.simulation.scenario_sims import simulate_scenario
from stress_pipeline.trading.risk.policy import TradingPolicy

SYMBOLS = ("BTCUSDT", "ETHUSDT")


@lru_cache(maxsize=1)
def market() -> BarArrays:
    return BarArrays.from_frame(generate_bars(SYMBOLS, days=1, seed=5))


def collapse(seed: int = 3, **parameters):
    spec = {"name": "depth test", "type": "depth_collapse", "symbols": list(SYMBOLS), "seed": seed,
            "parameters": {"drop_pct": 0.8, **parameters}}  # fmt: skip
    return SCENARIO_ADAPTER.validate_python(spec)


def test_collapse_path_values():
    np.testing.assert_allclose(collapse_path(0.8, 2, 3), [0.2, 0.2, 0.4, 0.6, 0.8])
    np.testing.assert_allclose(collapse_path(0.5, 1, 0), [0.5])


def test_parameters_are_validated():
    with pytest.raises(ValidationError, match="side"):
        collapse(side="middle")
    with pytest.raises(ValidationError, match="drop_pct"):
        collapse(drop_pct=1.0)


def test_bars_spread_moves_with_depth_and_nothing_else():
    base = market()
    scenario = collapse(duration_bars=4, recovery_bars=3, spread_elasticity=0.5)
    result = run_scenario(scenario, base)
    factors = collapse_path(0.8, 4, 3)
    for i, symbol in enumerate(SYMBOLS):
        seg = base.segment(i)
        start = int(np.searchsorted(base.ts[seg], result.windows[symbol][0]))
        rows = seg.start + start + np.arange(7)
        np.testing.assert_allclose(result.bars.spread_bps[rows], base.spread_bps[rows] * factors**-0.5)
        assert result.bars.stressed[rows].all()
        outside = np.ones(seg.stop - seg.start, dtype=bool)
        outside[start:start + 7] = False
        np.testing.assert_array_equal(result.bars.spread_bps[seg][outside], base.spread_bps[seg][outside])
        assert not result.bars.stressed[seg][outside].any()
        assert result.windows[symbol][1] == base.ts[rows[-1]]
    for name in (*PRICE_FIELDS, "volume"):
        np.testing.assert_array_equal(getattr(result.bars, name), getattr(base, name))


@settings(max_examples=30, deadline=None)
@given(drop=st.floats(0.01, 0.99), duration=st.integers(1, 20), recovery=st.integers(0, 40),
       side=st.sampled_from(["both", "bid", "ask"]), seed=st.integers(0, 1_000))  # fmt: skip
def test_book_collapse_invariants(drop, duration, recovery, side, seed):
    scenario = collapse(seed=seed, drop_pct=drop, duration_bars=duration, recovery_bars=recovery, side=side)
    result = run_scenario(scenario, market())
    books = scenario_books(scenario, result, levels=5)
    plain = synthetic_books(result.bars.to_frame(copy=False), levels=5, seed=seed)
    factors = collapse_path(drop, duration, recovery)
    assert factors.min() >= 1 - drop - 1e-12 and factors.max() < 1.0
    assert np.all(np.diff(factors) >= -1e-12)  # never deeper after the trough: the recovery only rises
    for symbol in SYMBOLS:
        book, ref = books[symbol], plain[symbol]
        first = int(np.searchsorted(book.ts, result.windows[symbol][0]))
        window = np.zeros(len(book.ts), dtype=bool)
        window[first:first + len(factors)] = True
        scaled = np.ones(len(book.ts))
        scaled[window] = factors
        for name, hit in (("bid_sz", side in ("both", "bid")), ("ask_sz", side in ("both", "ask"))):
            expected = getattr(ref, name) * (scaled[:, None] if hit else 1.0)
            np.testing.assert_allclose(getattr(book, name), expected)
        np.testing.assert_array_equal(book.bid_px, ref.bid_px)  # prices: the stressed bars' own book
        np.testing.assert_array_equal(book.ask_px, ref.ask_px)


def test_other_types_get_plain_books():
    spec = {"name": "spread", "type": "spread_explosion", "symbols": ["BTCUSDT"], "seed": 1,
            "parameters": {"spread_mult": 4.0}}  # fmt: skip
    scenario = SCENARIO_ADAPTER.validate_python(spec)
    result = run_scenario(scenario, market())
    books = scenario_books(scenario, result, levels=3)
    ref = synthetic_books(result.bars.to_frame(copy=False), levels=3, seed=1)
    np.testing.assert_array_equal(books["BTCUSDT"].ask_sz, ref["BTCUSDT"].ask_sz)


def test_books_read_back_from_stored_stressed_bars_match():
    scenario = collapse(duration_bars=6, recovery_bars=4, side="bid")
    result = run_scenario(scenario, market())
    stored = result.bars.to_frame()
    direct, again = scenario_books(scenario, result, levels=4), stressed_books(scenario, stored, levels=4)
    for symbol in SYMBOLS:
        for x, y in zip(direct[symbol], again[symbol], strict=True):
            np.testing.assert_array_equal(x, y)
    stored.loc[stored.index[5], "stressed"] = True  # a flag that is not the scenario's window
    with pytest.raises(ValueError, match="BTCUSDT has 11 stressed bars, expected one window of 10"):
        stressed_books(scenario, stored, levels=4)


def test_paper_run_of_a_depth_collapse_walks_the_collapsing_book():
    scenario = collapse(seed=2, drop_pct=0.95, duration_bars=30, recovery_bars=30)
    stressed = run_scenario(scenario, market()).bars.to_frame()
    config = SimConfig(strategy="trend", strategy_params={"fast": 20, "slow": 120, "band": 0.0005})
    paper = simulate_scenario("paper", stressed, scenario, config, TradingPolicy())
    fills = paper.events[paper.events.kind == "fill"]
    assert len(fills) > 0
    assert all("levels" in json.loads(d) for d in fills.details if json.loads(d)["liquidity"] == "taker")


def test_lengths_in_time_mean_the_same_bars():
    in_bars = collapse(duration_bars=10, recovery_bars=30)
    in_time = collapse(duration_bars="10min", recovery_bars="30min")
    a, b = run_scenario(in_bars, market()), run_scenario(in_time, market())
    np.testing.assert_array_equal(a.bars.spread_bps, b.bars.spread_bps)
    stored = b.bars.to_frame()
    for symbol in SYMBOLS:
        np.testing.assert_array_equal(scenario_books(in_time, b, levels=3)[symbol].ask_sz,
                                      scenario_books(in_bars, a, levels=3)[symbol].ask_sz)  # fmt: skip
        np.testing.assert_array_equal(stressed_books(in_time, stored, levels=3)[symbol].bid_sz,
                                      scenario_books(in_bars, a, levels=3)[symbol].bid_sz)  # fmt: skip
