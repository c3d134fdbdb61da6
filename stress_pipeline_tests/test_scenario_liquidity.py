"""Liquidity stresses (liquidity_drop, spread_explosion): exact factors, untouched prices, invariants, determinism.

The synthetic bars have a constant spread per symbol (BTC 1.0, ETH 1.5, SOL 3.0 bps), so every stressed
spread is a hand-checkable number.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stress_pipeline.market.synthetic import generate_bars
from stress_pipeline.scenarios.apply import apply_scenario, run_scenario
from stress_pipeline.scenarios.arrays import PRICE_FIELDS, BarArrays, array_field_names
from stress_pipeline.scenarios.model import SCENARIO_ADAPTER
from stress_pipeline.scenarios.transforms import TRANSFORMS, load_all
from stress_pipeline.scenarios.transforms.liquidity import liquidity_factors
from stress_pipeline.scenarios.windows import WindowError

SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
BASE_SPREAD = {"BTCUSDT": 1.0, "ETHUSDT": 1.5, "SOLUSDT": 3.0}
MINUTE_NS = 60_000_000_000
PROPERTY_SETTINGS = settings(max_examples=40, deadline=None)


@lru_cache(maxsize=1)
def market() -> BarArrays:
    """Two days of realistic 1-minute bars for the three symbols (2,880 per symbol)."""
    return BarArrays.from_frame(generate_bars(SYMBOLS, days=2))


def scenario(kind: str, parameters: dict, *, symbols=SYMBOLS, seed: int = 0, window: dict | None = None):
    spec = {"name": f"test {kind}", "type": kind, "symbols": list(symbols), "seed": seed, "parameters": parameters}
    if window is not None:
        spec["window"] = window
    return SCENARIO_ADAPTER.validate_python(spec)


def window_mask(bars: BarArrays, first_ts: dict[str, int], span: int) -> np.ndarray:
    """True on the ``span`` bars of each symbol from the bar at ``first_ts[symbol]``."""
    mask = np.zeros(bars.rows, dtype=bool)
    for i, symbol in enumerate(bars.symbols):
        segment = bars.segment(i)
        start = segment.start + int(np.searchsorted(bars.ts[segment], first_ts[symbol]))
        mask[start : start + span] = True
    return mask


def test_both_types_are_registered():
    transforms = load_all()
    assert transforms["liquidity_drop"] is TRANSFORMS["liquidity_drop"]
    assert "spread_explosion" in transforms


# ------------------------------------------------------------------------------------- exact values


def test_ninety_percent_less_volume_widens_the_spread_sqrt_ten_times():
    base = market()
    result = run_scenario(scenario("liquidity_drop", {"drop_pct": 0.9}, window={"offset_bars": 100}), base)
    out = result.bars
    # Default duration 15 bars, from bar 100 of each symbol.
    inside = window_mask(out, {s: int(base.ts[base.segment(i)][100]) for i, s in enumerate(SYMBOLS)}, 15)
    assert inside.sum() == 45
    np.testing.assert_allclose(out.volume[inside], base.volume[inside] * 0.1, rtol=1e-12)
    spreads = {s: out.spread_bps[out.segment(i)][100:115] for i, s in enumerate(SYMBOLS)}
    np.testing.assert_allclose(spreads["BTCUSDT"], 3.1622776601683795, rtol=1e-12)  # 1.0 * sqrt(10)
    np.testing.assert_allclose(spreads["ETHUSDT"], 4.743416490252569, rtol=1e-12)  # 1.5 * sqrt(10)
    np.testing.assert_allclose(spreads["SOLUSDT"], 9.486832980505138, rtol=1e-12)  # 3.0 * sqrt(10)
    # Nothing else moves.
    for name in PRICE_FIELDS:
        np.testing.assert_array_equal(getattr(out, name), getattr(base, name))
    np.testing.assert_array_equal(out.volume[~inside], base.volume[~inside])
    np.testing.assert_array_equal(out.spread_bps[~inside], base.spread_bps[~inside])
    np.testing.assert_array_equal(out.stressed, inside)
    assert not out.corrupted.any() and not out.halted.any()
    np.testing.assert_array_equal(out.offsets, base.offsets)


@pytest.mark.parametrize(
    ("drop_pct", "elasticity", "volume_factor", "spread_factor"),
    [
        (0.9, 0.5, 0.1, math.sqrt(10.0)),
        (0.75, 0.5, 0.25, 2.0),  # a quarter of the volume: twice the spread
        (0.75, 1.0, 0.25, 4.0),  # spread inversely proportional to volume
        (0.5, 2.0, 0.5, 4.0),
        (0.5, 0.0, 0.5, 1.0),  # volume only
    ],
)
def test_liquidity_factors(drop_pct, elasticity, volume_factor, spread_factor):
    assert liquidity_factors(drop_pct, elasticity) == pytest.approx((volume_factor, spread_factor), rel=1e-12)
    base = market()
    params = {"drop_pct": drop_pct, "duration_bars": 7, "spread_elasticity": elasticity}
    out = run_scenario(scenario("liquidity_drop", params, window={"offset_bars": 30}), base).bars
    rows = slice(30, 37)
    for i, symbol in enumerate(SYMBOLS):
        segment = out.segment(i)
        np.testing.assert_allclose(out.spread_bps[segment][rows], BASE_SPREAD[symbol] * spread_factor, rtol=1e-12)
        np.testing.assert_allclose(out.volume[segment][rows], base.volume[segment][rows] * volume_factor, rtol=1e-12)
        # Volume always falls, so every bar of the window is stressed, with or without a wider spread.
        assert out.stressed[segment].sum() == 7 and out.stressed[segment][rows].all()


def test_spread_explosion_multiplies_the_spread_only():
    base = market()
    sc = scenario(
        "spread_explosion", {"spread_mult": 10.0}, symbols=("SOLUSDT", "BTCUSDT"), window={"offset_bars": 500}
    )
    result = run_scenario(sc, base)
    out = result.bars
    assert out.symbols == ("SOLUSDT", "BTCUSDT")
    sol, btc = out.segment(0), out.segment(1)
    np.testing.assert_array_equal(out.spread_bps[sol][500:510], 30.0)
    np.testing.assert_array_equal(out.spread_bps[btc][500:510], 10.0)
    np.testing.assert_array_equal(out.spread_bps[sol][:500], 3.0)
    np.testing.assert_array_equal(out.spread_bps[sol][510:], 3.0)
    selected = {
        name: np.concatenate([getattr(base, name)[base.segment(2)], getattr(base, name)[base.segment(0)]])
        for name in (*PRICE_FIELDS, "volume", "ts")
    }
    for name, values in selected.items():
        np.testing.assert_array_equal(getattr(out, name), values)
    assert out.stressed.sum() == 20
    assert not out.corrupted.any()


def test_result_names_window_and_pre_shock_bar():
    base = market()
    start = pd.Timestamp("2024-01-01 12:00", tz="UTC")
    result = run_scenario(
        scenario("liquidity_drop", {"drop_pct": 0.5, "duration_bars": 30}, window={"start": start.isoformat()}), base
    )
    for symbol in SYMBOLS:
        assert result.windows[symbol] == (start.value, start.value + 29 * MINUTE_NS)
        assert result.pre_shock_ns[symbol] == start.value - MINUTE_NS
    assert result.expected_drop == {}
    spread = run_scenario(scenario("spread_explosion", {"spread_mult": 2.0}, window={"start": start.isoformat()}), base)
    assert spread.windows["ETHUSDT"] == (start.value, start.value + 9 * MINUTE_NS)
    assert spread.expected_drop == {}


def test_apply_scenario_returns_the_canonical_frame():
    frame = generate_bars(("ETHUSDT",), days=1)
    out = apply_scenario(scenario("liquidity_drop", {"drop_pct": 0.9}, symbols=("ETHUSDT",), seed=3), frame)
    assert list(out.columns) == [*frame.columns, "stressed", "corrupted", "halted"]
    assert len(out) == len(frame)
    pd.testing.assert_series_equal(out["close"], frame["close"])
    assert out["stressed"].sum() == 15
    np.testing.assert_allclose(out.loc[out["stressed"], "spread_bps"], 1.5 * math.sqrt(10.0), rtol=1e-12)


def test_base_bars_are_not_modified():
    base = market()
    before = {name: getattr(base, name).copy() for name in array_field_names() if getattr(base, name) is not None}
    run_scenario(scenario("liquidity_drop", {"drop_pct": 0.9}), base)
    run_scenario(scenario("spread_explosion", {"spread_mult": 5.0}), base)
    for name, values in before.items():
        np.testing.assert_array_equal(getattr(base, name), values)


def test_window_that_does_not_fit_is_rejected():
    with pytest.raises(WindowError):
        run_scenario(scenario("spread_explosion", {"spread_mult": 2.0}, window={"offset_bars": 2875}), market())


# ---------------------------------------------------------------------------------------- determinism


@pytest.mark.parametrize(
    ("kind", "params"), [("liquidity_drop", {"drop_pct": 0.6}), ("spread_explosion", {"spread_mult": 4.0})]
)
def test_same_seed_same_bars_other_seed_other_window(kind, params):
    base = market()
    first = run_scenario(scenario(kind, params, seed=11), base)
    again = run_scenario(scenario(kind, params, seed=11), base)
    for name in array_field_names():
        if getattr(first.bars, name) is not None:
            np.testing.assert_array_equal(getattr(first.bars, name), getattr(again.bars, name))
    assert first.windows == again.windows
    starts = {run_scenario(scenario(kind, params, seed=seed), base).windows["BTCUSDT"][0] for seed in range(5)}
    assert len(starts) > 1
    # A drawn window keeps the warm-up bars before it and is the same bars for every symbol.
    assert len({w[0] for w in first.windows.values()}) == 1
    assert first.windows["BTCUSDT"][0] >= int(base.ts[60])


# ------------------------------------------------------------------------------------------ properties


@PROPERTY_SETTINGS
@given(
    drop_pct=st.floats(min_value=0.01, max_value=0.99),
    elasticity=st.floats(min_value=0.0, max_value=2.0),
    duration=st.integers(min_value=1, max_value=2_000),
    symbols=st.lists(st.sampled_from(SYMBOLS), min_size=1, max_size=3, unique=True),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
)
def test_liquidity_drop_properties(drop_pct, elasticity, duration, symbols, seed):
    params = {"drop_pct": drop_pct, "duration_bars": duration, "spread_elasticity": elasticity}
    result = run_scenario(scenario("liquidity_drop", params, symbols=tuple(symbols), seed=seed), market())
    volume_factor, spread_factor = liquidity_factors(drop_pct, elasticity)
    assert_scaled_window(result, tuple(symbols), duration, volume_factor, spread_factor)


@PROPERTY_SETTINGS
@given(
    spread_mult=st.floats(min_value=1.001, max_value=1_000.0),
    duration=st.integers(min_value=1, max_value=2_000),
    symbols=st.lists(st.sampled_from(SYMBOLS), min_size=1, max_size=3, unique=True),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
)
def test_spread_explosion_properties(spread_mult, duration, symbols, seed):
    params = {"spread_mult": spread_mult, "duration_bars": duration}
    result = run_scenario(scenario("spread_explosion", params, symbols=tuple(symbols), seed=seed), market())
    assert_scaled_window(result, tuple(symbols), duration, 1.0, spread_mult)


def assert_scaled_window(result, symbols, duration, volume_factor, spread_factor):
    """Exactly the window's bars scale by the factors and are flagged; prices and all else stay."""
    base = market()
    out = result.bars
    assert out.symbols == symbols
    picked = np.concatenate(
        [np.arange(base.segment(base.segment_of(s)).start, base.segment(base.segment_of(s)).stop) for s in symbols]
    )
    inside = window_mask(out, {s: result.windows[s][0] for s in symbols}, duration)
    assert inside.sum() == duration * len(symbols)
    for i, symbol in enumerate(symbols):
        segment = out.segment(i)
        first, last = result.windows[symbol]
        assert last - first == (duration - 1) * MINUTE_NS
        assert result.pre_shock_ns[symbol] == first - MINUTE_NS
        assert out.ts[segment][inside[segment]][0] == first
    np.testing.assert_array_equal(out.stressed, inside)
    for name in (*PRICE_FIELDS, "ts", "corrupted", "halted"):
        np.testing.assert_array_equal(getattr(out, name), getattr(base, name)[picked])
    np.testing.assert_allclose(out.volume[inside], base.volume[picked][inside] * volume_factor, rtol=1e-12)
    np.testing.assert_allclose(out.spread_bps[inside], base.spread_bps[picked][inside] * spread_factor, rtol=1e-12)
    np.testing.assert_array_equal(out.volume[~inside], base.volume[picked][~inside])
    np.testing.assert_array_equal(out.spread_bps[~inside], base.spread_bps[picked][~inside])
    # Invariants of every stressed bar.
    assert (out.high >= np.maximum(out.open, out.close)).all()
    assert (out.low <= np.minimum(out.open, out.close)).all()
    assert (out.low > 0).all()
    assert (out.volume >= 0).all() and (out.spread_bps >= 0).all()
    assert result.expected_drop == {}
