"""Price-path transforms and their realised statistics: exact magnitudes, invariants, determinism.

Hand-checkable values come from flat or zigzag bars (every price known); exactness and invariants are
checked on realistic synthetic bars, with hypothesis drawing the parameters.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, reject, settings
from hypothesis import strategies as st

from stress_pipeline.scenarios.arrays import PRICE_FIELDS
from stress_pipeline.scenarios.transforms import TRANSFORMS
from stress_pipeline.scenarios.transforms.path_depth import InfeasibleStressError
from stress_pipeline.scenarios.transforms.price_paths import LIQUIDITY_SPREAD_ELASTICITY
from stress_pipeline.scenarios.windows import WindowError
from stress_pipeline_tests.price_path_helpers import (
    EXACT,
    MINUTE_NS,
    PRICE_TYPES,
    SYMBOLS,
    arrays_equal,
    assert_sound,
    flat_bars,
    market,
    pre_close,
    realised_drop,
    run,
    run_or_reject,
    scenario,
    seg,
    seg_of,
    window_mask,
    zigzag_bars,
)

# ------------------------------------------------------------------------------------- registration


def test_every_price_path_type_is_registered():
    assert set(PRICE_TYPES) <= set(TRANSFORMS)


# -------------------------------------------------------------------------------------- flash crash


def test_flash_crash_linear_hand_values():
    bars = flat_bars()
    sc = scenario(
        "flash_crash",
        {"drop_pct": 0.3, "duration_bars": 3, "recovery_bars": 2, "volume_mult": 4, "spread_mult": 5},
        symbols=("BTCUSDT",),
        offset=5,
    )
    result = run(sc, bars)
    v = seg(result, "BTCUSDT")
    w = slice(5, 10)
    np.testing.assert_allclose(v["close"][w], [90, 80, 70, 85, 100], rtol=1e-12)
    np.testing.assert_allclose(v["open"][w], [100, 90, 80, 70, 85], rtol=1e-12)
    np.testing.assert_allclose(v["high"][w], [100, 90, 80, 85, 100], rtol=1e-12)
    np.testing.assert_allclose(v["low"][w], [90, 80, 70, 70, 85], rtol=1e-12)
    np.testing.assert_allclose(v["volume"][w], [40, 40, 40, 25, 10], rtol=1e-12)
    np.testing.assert_allclose(v["spread_bps"][w], [10, 10, 10, 6, 2], rtol=1e-12)
    assert v["stressed"].nonzero()[0].tolist() == [5, 6, 7, 8, 9]
    for name in PRICE_FIELDS:
        assert np.all(v[name][:5] == 100) and np.all(v[name][10:] == 100)
    ts = bars.ts
    assert result.windows == {"BTCUSDT": (int(ts[5]), int(ts[9]))}
    assert result.pre_shock_ns == {"BTCUSDT": int(ts[4])}
    assert result.expected_drop == {"BTCUSDT": 0.3}
    assert result.drop_measure == "pre_close_to_low"
    assert_sound(result, bars)


def test_flash_crash_exponential_recovery_leaves_one_percent_then_snaps():
    sc = scenario(
        "flash_crash",
        {"drop_pct": 0.3, "duration_bars": 1, "recovery_bars": 3, "recovery": "exponential"},
        symbols=("BTCUSDT",),
        offset=5,
    )
    v = seg(run(sc, flat_bars()), "BTCUSDT")
    # Gap of 30: 10% of it left after one recovery bar, 1% after two, none on the last.
    np.testing.assert_allclose(v["close"][5:10], [70, 97, 99.7, 100, 100], rtol=1e-12)


def test_flash_crash_without_recovery_shifts_the_level_for_good():
    sc = scenario(
        "flash_crash",
        {"drop_pct": 0.3, "duration_bars": 3, "recovery_bars": 2, "recovery": "none"},
        symbols=("BTCUSDT",),
        offset=5,
    )
    result = run(sc, flat_bars())
    v = seg(result, "BTCUSDT")
    np.testing.assert_allclose(v["close"][5:], [90, 80, *[70] * 33], rtol=1e-12)
    assert v["stressed"][5:].all() and not v["stressed"][:5].any()
    assert result.windows["BTCUSDT"][1] == int(v["ts"][9])  # the window is the path, not the shifted tail


def test_flash_crash_without_recovery_bars_includes_the_bar_that_reopens_at_the_trough():
    params = {"drop_pct": 0.3, "duration_bars": 2, "recovery_bars": 0}
    sc = scenario("flash_crash", params, symbols=("BTCUSDT",), offset=5)
    result = run(sc, flat_bars())
    v = seg(result, "BTCUSDT")
    np.testing.assert_allclose(v["close"][5:8], [85, 70, 100], rtol=1e-12)
    np.testing.assert_allclose(v["open"][7], 70, rtol=1e-12)
    np.testing.assert_allclose(v["low"][7], 70, rtol=1e-12)
    assert result.windows["BTCUSDT"] == (int(v["ts"][5]), int(v["ts"][7]))
    np.testing.assert_allclose(v["volume"][5:8], [50, 50, 10])


def test_flash_crash_drop_is_exact_on_noisy_bars():
    result = run(scenario("flash_crash", {"drop_pct": 0.3}), market())
    for symbol in SYMBOLS:
        assert realised_drop(result, symbol) == pytest.approx(0.3, abs=EXACT)
        assert result.expected_drop[symbol] == 0.3
    assert_sound(result, market())


@settings(max_examples=40, deadline=None)
@given(
    drop=st.floats(0.02, 0.95),
    duration=st.integers(1, 30),
    recovery_bars=st.integers(0, 90),
    recovery=st.sampled_from(["linear", "exponential", "none"]),
    volume_mult=st.floats(1, 50),
    spread_mult=st.floats(1, 50),
    seed=st.integers(0, 2**32 - 1),
)
def test_flash_crash_properties(drop, duration, recovery_bars, recovery, volume_mult, spread_mult, seed):
    params = {
        "drop_pct": drop,
        "duration_bars": duration,
        "recovery_bars": recovery_bars,
        "recovery": recovery,
        "volume_mult": volume_mult,
        "spread_mult": spread_mult,
    }
    base = market()
    result = run_or_reject(scenario("flash_crash", params, seed=seed), base)
    assert_sound(result, base)
    for symbol in SYMBOLS:
        assert realised_drop(result, symbol) == pytest.approx(drop, abs=EXACT)
        v, mask = seg(result, symbol), window_mask(result, symbol)
        b = seg_of(base, symbol)
        before = v["ts"] < result.windows[symbol][0]
        for name in (*PRICE_FIELDS, "volume", "spread_bps"):
            np.testing.assert_array_equal(v[name][before], b[name][before])
        after = ~before & ~mask
        ratio = v["close"][after] / b["close"][after]
        if recovery == "none":  # the trough level persists: one factor, near 1 - drop (the depth is solved)
            np.testing.assert_allclose(ratio, ratio[0], rtol=1e-12)
            assert ratio[0] == pytest.approx(1.0 - drop, abs=0.05)
        else:
            assert np.all(ratio == 1.0)
        assert mask.sum() == duration + (recovery_bars or (0 if recovery == "none" else 1))


def test_flash_crash_refuses_a_drop_the_bars_already_exceed():
    bars = flat_bars()
    low = bars.low.copy()
    low[5] = 90.0  # the first crash bar already trades 10% below the pre-shock close
    bars = bars.replace(low=low)
    with pytest.raises(InfeasibleStressError, match="BTCUSDT"):
        run(scenario("flash_crash", {"drop_pct": 0.05}, symbols=("BTCUSDT",), offset=5), bars)
    assert issubclass(InfeasibleStressError, WindowError)


def test_flash_crash_window_must_fit():
    with pytest.raises(WindowError):
        run(scenario("flash_crash", {"drop_pct": 0.1}, symbols=("BTCUSDT",), offset=30), flat_bars())


# --------------------------------------------------------------------------------- flash crash lite


def test_flash_crash_lite_sub_bar_shock_shows_in_the_low_only():
    bars = flat_bars()
    result = run(scenario("flash_crash_lite", {"price_shock_pct": -0.03}, symbols=("BTCUSDT",), offset=5), bars)
    v = seg(result, "BTCUSDT")
    assert v["low"][5] == pytest.approx(97.0, rel=1e-12)
    assert v["open"][5] == v["close"][5] == v["high"][5] == 100.0
    assert v["spread_bps"][5] == pytest.approx(6.0)
    assert v["stressed"].nonzero()[0].tolist() == [5]
    assert result.windows["BTCUSDT"] == (int(v["ts"][5]), int(v["ts"][5]))
    assert result.expected_drop == {"BTCUSDT": pytest.approx(0.03)}
    assert_sound(result, bars)


def test_flash_crash_lite_on_five_minute_bars():
    bars = flat_bars(freq="5min")
    params = {"price_shock_pct": -0.05, "duration_sec": 60}
    v = seg(run(scenario("flash_crash_lite", params, symbols=("BTCUSDT",), offset=5), bars), "BTCUSDT")
    assert v["low"][5] == pytest.approx(95.0, rel=1e-12)
    assert v["close"][5] == 100.0 and v["stressed"].sum() == 1


def test_flash_crash_lite_linear_recovery_over_five_bars():
    params = {"price_shock_pct": -0.03, "duration_sec": 300}
    result = run(scenario("flash_crash_lite", params, symbols=("BTCUSDT",), offset=5), flat_bars())
    v = seg(result, "BTCUSDT")
    np.testing.assert_allclose(v["close"][5:10], [97.6, 98.2, 98.8, 99.4, 100], rtol=1e-12)
    np.testing.assert_allclose(v["open"][5:10], [100, 97.6, 98.2, 98.8, 99.4], rtol=1e-12)
    np.testing.assert_allclose(v["low"][5:10], [97, 97.6, 98.2, 98.8, 99.4], rtol=1e-12)
    assert v["stressed"].nonzero()[0].tolist() == [5, 6, 7, 8, 9]
    assert realised_drop(result, "BTCUSDT") == pytest.approx(0.03, abs=1e-12)


def test_flash_crash_lite_exponential_recovery():
    params = {"price_shock_pct": -0.03, "duration_sec": 300, "recovery_type": "exponential"}
    v = seg(run(scenario("flash_crash_lite", params, symbols=("BTCUSDT",), offset=5), flat_bars()), "BTCUSDT")
    left = 0.01 ** (np.arange(1, 5) / 5)  # share of the shock left at each minute: 1% at 300 s, then 0
    np.testing.assert_allclose(v["close"][5:10], [*(100 * (1 - 0.03 * left)), 100], rtol=1e-12)


def test_flash_crash_lite_promises_the_deeper_drop_a_long_bar_already_shows():
    bars = flat_bars(SYMBOLS[:2], freq="1D")
    low = bars.low.copy()
    low[5] = 94.0  # BTC's daily bar already trades 6% under the previous close
    sc = scenario("flash_crash_lite", {"price_shock_pct": -0.03}, symbols=SYMBOLS[:2], offset=5)
    result = run(sc, bars.replace(low=low))
    assert result.expected_drop == {"BTCUSDT": pytest.approx(0.06, abs=1e-12), "ETHUSDT": 0.03}
    for symbol in SYMBOLS[:2]:
        assert realised_drop(result, symbol) == pytest.approx(result.expected_drop[symbol], abs=1e-12)


def test_flash_crash_lite_up_spike():
    result = run(scenario("flash_crash_lite", {"price_shock_pct": 0.05}, symbols=("BTCUSDT",), offset=5), flat_bars())
    v = seg(result, "BTCUSDT")
    assert v["high"][5] == pytest.approx(105.0, rel=1e-12) and v["low"][5] == 100.0
    assert result.expected_drop == {}


@settings(max_examples=40, deadline=None)
@given(
    shock=st.one_of(st.floats(-0.5, -0.005), st.floats(0.005, 0.5)),
    duration=st.floats(1, 3_600),
    recovery=st.sampled_from(["linear", "exponential"]),
    spread_mult=st.floats(1, 20),
    seed=st.integers(0, 2**32 - 1),
)
def test_flash_crash_lite_properties(shock, duration, recovery, spread_mult, seed):
    params = {"price_shock_pct": shock, "duration_sec": duration, "recovery_type": recovery, "spread_mult": spread_mult}
    base = market()
    result = run(scenario("flash_crash_lite", params, seed=seed), base)
    assert_sound(result, base)
    for symbol in SYMBOLS:
        v, mask, p0 = seg(result, symbol), window_mask(result, symbol), pre_close(result, symbol)
        assert mask.sum() == -(-round(duration * 1e9) // MINUTE_NS)
        if shock < 0:
            realised = 1.0 - v["low"][mask].min() / p0
            assert realised == pytest.approx(result.expected_drop[symbol], abs=EXACT)
            if seg_of(base, symbol)["low"][mask].min() >= p0 * (1.0 + shock):  # the base alone stays above
                assert result.expected_drop[symbol] == -shock
        elif seg_of(base, symbol)["high"][mask].max() <= p0 * (1.0 + shock):
            assert v["high"][mask].max() / p0 - 1.0 == pytest.approx(shock, abs=EXACT)
        else:  # the base already trades above the spike's level: the bars show the larger rise
            assert v["high"][mask].max() / p0 - 1.0 >= shock
        np.testing.assert_allclose(v["spread_bps"][mask] / seg_of(base, symbol)["spread_bps"][mask], spread_mult)
        assert not v["stressed"][~mask].any()
    if shock > 0:
        assert result.expected_drop == {}


# --------------------------------------------------------------------------------- volatility spike


def test_volatility_spike_hand_values_on_a_zigzag():
    bars = zigzag_bars()
    sc = scenario("volatility_spike", {"multiplier": 2, "duration_bars": 4}, symbols=("BTCUSDT",), offset=1)
    result = run(sc, bars)
    v = seg(result, "BTCUSDT")
    # Returns +-log(1.01) with mean 0 double: closes 102.01 and 100; the range beyond the body squares.
    np.testing.assert_allclose(v["close"][1:5], [102.01, 100, 102.01, 100], rtol=1e-12)
    np.testing.assert_allclose(v["open"][1:5], [100, 102.01, 100, 102.01], rtol=1e-12)
    np.testing.assert_allclose(v["high"][1:5], 102.01 * 1.001**2, rtol=1e-12)
    np.testing.assert_allclose(v["low"][1:5], 100 * 0.999**2, rtol=1e-12)
    np.testing.assert_allclose(v["close"][5:], bars.close[5:], rtol=1e-12)  # back on the base level
    assert result.expected_drop == {}
    assert_sound(result, bars)


@settings(max_examples=30, deadline=None)
@given(multiplier=st.floats(0.1, 20), duration=st.integers(2, 300), seed=st.integers(0, 2**32 - 1))
def test_volatility_spike_properties(multiplier, duration, seed):
    base = market()
    result = run(scenario("volatility_spike", {"multiplier": multiplier, "duration_bars": duration}, seed=seed), base)
    assert_sound(result, base)
    for symbol in SYMBOLS:
        v, b, mask = seg(result, symbol), seg_of(base, symbol), window_mask(result, symbol)
        assert mask.sum() == duration
        span = np.flatnonzero(mask)
        span = np.concatenate([[span[0] - 1], span])
        ratio = np.diff(np.log(v["close"][span])).std() / np.diff(np.log(b["close"][span])).std()
        # Exact up to the rounding of stored prices: ~1e-16 of a price against returns that, over two
        # bars of one tick each, can be as small as 1e-7, hence a relative tolerance of 1e-6 here.
        assert ratio == pytest.approx(multiplier, rel=1e-6)
        after = np.flatnonzero(v["ts"] > result.windows[symbol][1])
        np.testing.assert_allclose(np.diff(np.log(v["close"][after])), np.diff(np.log(b["close"][after])), atol=1e-12)
        first = after[0]
        np.testing.assert_allclose(v["open"][first], v["close"][first - 1] * b["open"][first] / b["close"][first - 1])


# ------------------------------------------------------------------------------------- mixed custom


def test_mixed_custom_crash_then_liquidity_then_spread():
    params = {
        "flash_crash_drop_pct": 0.2,
        "liquidity_drop_pct": 0.5,
        "spread_mult": 2,
        "duration_bars": 2,
        "recovery_bars": 2,
    }
    result = run(scenario("mixed_custom", params, symbols=("BTCUSDT",), offset=5), flat_bars())
    v = seg(result, "BTCUSDT")
    np.testing.assert_allclose(v["close"][5:9], [90, 80, 90, 100], rtol=1e-12)
    np.testing.assert_allclose(v["volume"][5:9], [5, 5, 10, 10])
    np.testing.assert_allclose(v["spread_bps"][5:9], [2 * 2 * 0.5**-0.5] * 2 + [2, 2])
    assert LIQUIDITY_SPREAD_ELASTICITY == 0.5
    assert result.expected_drop == {"BTCUSDT": 0.2}
    assert result.windows["BTCUSDT"] == (int(v["ts"][5]), int(v["ts"][8]))


def test_mixed_custom_volatility_alone_is_the_volatility_spike():
    base = market()
    mixed = run(scenario("mixed_custom", {"volatility_multiplier": 4, "duration_bars": 20}, seed=7), base)
    spike = run(scenario("volatility_spike", {"multiplier": 4, "duration_bars": 20}, seed=7), base)
    assert arrays_equal(mixed.bars, spike.bars)
    assert mixed.windows == spike.windows and mixed.expected_drop == {}


def test_mixed_custom_crash_stays_exact_on_volatile_bars():
    params = {"flash_crash_drop_pct": 0.25, "volatility_multiplier": 4, "duration_bars": 20, "recovery_bars": 10}
    base = market()
    result = run(scenario("mixed_custom", params, seed=7), base)
    assert_sound(result, base)
    for symbol in SYMBOLS:
        assert realised_drop(result, symbol) == pytest.approx(0.25, abs=EXACT)
        assert window_mask(result, symbol).sum() == 30


@settings(max_examples=30, deadline=None)
@given(
    crash=st.one_of(st.none(), st.floats(0.02, 0.9)),
    vol=st.one_of(st.none(), st.floats(0.2, 10)),
    spread=st.one_of(st.none(), st.floats(1.01, 50)),
    liquidity=st.one_of(st.none(), st.floats(0.01, 0.99)),
    duration=st.integers(2, 40),
    recovery=st.integers(0, 40),
    seed=st.integers(0, 2**32 - 1),
)
def test_mixed_custom_properties(crash, vol, spread, liquidity, duration, recovery, seed):
    parts = {
        "flash_crash_drop_pct": crash,
        "volatility_multiplier": vol,
        "spread_mult": spread,
        "liquidity_drop_pct": liquidity,
    }
    parts = {k: v for k, v in parts.items() if v is not None}
    if not parts:
        reject()
    base = market()
    params = {**parts, "duration_bars": duration, "recovery_bars": recovery}
    result = run_or_reject(scenario("mixed_custom", params, seed=seed), base)
    assert_sound(result, base)
    for symbol in SYMBOLS:
        v, b, mask = seg(result, symbol), seg_of(base, symbol), window_mask(result, symbol)
        core = np.flatnonzero(mask)[:duration]
        kept = 1.0 - (liquidity or 0.0)
        np.testing.assert_allclose(v["volume"][core], b["volume"][core] * kept, rtol=1e-12)
        np.testing.assert_allclose(
            v["spread_bps"][core], b["spread_bps"][core] * kept**-0.5 * (spread or 1.0), rtol=1e-12
        )
        if crash is not None:
            assert realised_drop(result, symbol) == pytest.approx(crash, abs=EXACT)
            assert result.expected_drop[symbol] == crash
    if crash is None:
        assert result.expected_drop == {}
