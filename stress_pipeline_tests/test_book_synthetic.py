"""Synthetic books: deterministic for a seed, calibrated from the bar (values pinned)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from stress_pipeline.book.dense import books_table, dense_books
from stress_pipeline.book.kernels import walk
from stress_pipeline.book.synthetic import synthetic_books
from stress_pipeline.market.synthetic import generate_bars


def _bars(**columns) -> pd.DataFrame:
    base = {"ts": pd.date_range("2024-01-01", periods=2, freq="1min", tz="UTC"), "symbol": "BTCUSDT",
            "open": 100.0, "high": 101.0, "low": 99.0, "close": 100.0, "volume": 1_000.0, "spread_bps": 10.0}
    base.update(columns)
    return pd.DataFrame(base)


def test_calibration_values_without_noise():
    book = synthetic_books(_bars(), levels=10, noise=0.0)["BTCUSDT"]
    sigma = 1e4 * math.log(101 / 99) / (2 * math.sqrt(math.log(2)))  # 120.1 bps
    step = sigma / 10
    assert book.ask_px[0, 0] == pytest.approx(100.05)  # the close + half of 10 bps
    assert book.bid_px[0, 0] == pytest.approx(99.95)
    assert book.ask_px[0, 3] == pytest.approx(math.ceil(100 * (1 + (5 + 3 * step) * 1e-4) / 0.01) * 0.01)
    np.testing.assert_allclose(book.ask_sz[0], 1_000 * (2 * np.arange(10) + 1) / 100)
    assert book.bid_sz[0].sum() == pytest.approx(1_000.0)  # one bar's volume per side
    # walking a quarter of the volume takes sqrt(1/4) of the levels: the square-root law
    filled, avg, taken = walk(book.ask_px[0], book.ask_sz[0], 250.0)
    assert (filled, taken) == (250.0, 5)
    # its last level is k sigma (sqrt(q / V) - 1 / L) past the touch (one tick of rounding)
    assert book.ask_px[0, 4] - book.ask_px[0, 0] == pytest.approx(100 * (0.5 - 0.1) * sigma * 1e-4, abs=0.01)
    assert avg == pytest.approx(np.dot(book.ask_px[0, :5], book.ask_sz[0, :5]) / 250.0)


def test_deterministic_for_a_seed_and_different_across_seeds():
    bars = generate_bars(["BTCUSDT", "ETHUSDT"], days=1, seed=3)
    a = synthetic_books(bars, seed=7)
    b = synthetic_books(bars, seed=7)
    c = synthetic_books(bars, seed=8)
    for name in a:
        for x, y in zip(a[name], b[name], strict=True):
            np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a["BTCUSDT"].ask_sz, c["BTCUSDT"].ask_sz)
    np.testing.assert_array_equal(a["BTCUSDT"].ask_px, c["BTCUSDT"].ask_px)  # noise is on sizes only
    # a symbol's book does not depend on the other symbols
    alone = synthetic_books(bars[bars["symbol"] == "ETHUSDT"], seed=7)["ETHUSDT"]
    np.testing.assert_array_equal(alone.bid_sz, a["ETHUSDT"].bid_sz)


def test_books_are_valid_depth_tables():
    bars = generate_bars(["BTCUSDT"], days=1, seed=1)
    books = synthetic_books(bars, levels=5, seed=1)
    table = books_table(books)  # validates: sorted levels, never crossed, sizes >= 0
    assert len(table) == 2 * 5 * len(bars)
    again = dense_books(table)["BTCUSDT"]
    np.testing.assert_allclose(again.ask_px, books["BTCUSDT"].ask_px)


def test_flat_bar_zero_volume_and_tick():
    bars = _bars(high=100.0, low=100.0, volume=0.0, spread_bps=0.0)
    book = synthetic_books(bars, levels=3, noise=0.0)["BTCUSDT"]
    assert book.ask_px[0, 0] - book.bid_px[0, 0] == pytest.approx(0.01)  # one tick, never crossed
    assert np.all(np.diff(book.ask_px[0]) >= 0.01 - 1e-9)
    assert (book.ask_sz == 0).all() and (book.bid_sz == 0).all()


def test_missing_spread_takes_the_symbol_default(tmp_path):
    symbols = tmp_path / "symbols.yaml"
    symbols.write_text("symbols:\n  BTCUSDT:\n    spread_bps: 20.0\n    tick_size: 0.5\n")
    book = synthetic_books(_bars(spread_bps=np.nan, close=1000.0, high=1010.0, low=990.0), noise=0.0,
                           symbols_file=symbols)["BTCUSDT"]  # fmt: skip
    assert book.ask_px[0, 0] == 1001.0 and book.bid_px[0, 0] == 999.0  # 1000 +- 10 bps, on the 0.5 tick
