"""Price-path transforms and their realised statistics: exact magnitudes, invariants, determinism.

Hand-checkable values come from flat or zigzag bars (every price known); exactness and invariants are
checked on realistic synthetic bars, with hypothesis drawing the parameters.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, reject, settings
from hypothesis import strategies as st

from stress_pipeline.market.synthetic import generate_bars
from stress_pipeline.scenarios.apply import select_symbols
from stress_pipeline.scenarios.arrays import PRICE_FIELDS, BarArrays
from stress_pipeline.scenarios.model import SCENARIO_ADAPTER
from stress_pipeline.scenarios.result import StressResult
from stress_pipeline.scenarios.stats import STATS_COLUMNS, realised_stats
from stress_pipeline.scenarios.transforms import TRANSFORMS
from stress_pipeline.scenarios.transforms.path_depth import InfeasibleStressError, solve_depth
from stress_pipeline.scenarios.transforms.price_paths import LIQUIDITY_SPREAD_ELASTICITY
from stress_pipeline.scenarios.transforms.volume_spread import scale_volume_spread
from stress_pipeline.scenarios.windows import WindowError

SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
PRICE_TYPES = (
    "flash_crash",
    "flash_crash_lite",
    "volatility_spike",
    "mixed_custom",
    "correlation_cascade",
    "trading_halt",
    "episode_replica",
)
EXACT = 1e-9
MINUTE_NS = 60_000_000_000


# ------------------------------------------------------------------------------------------ helpers


@lru_cache(maxsize=1)
def market() -> BarArrays:
    """Two days of realistic 1-minute bars for the three symbols."""
    return BarArrays.from_frame(generate_bars(SYMBOLS, days=2))


def flat_bars(symbols=("BTCUSDT",), n=40, *, price=100.0, high=None, low=None, freq="1min") -> BarArrays:
    """Bars at one price (open = close = ``price``), volume 10, spread 2 bps: every stressed value is known."""
    ts = pd.date_range("2024-01-01", periods=n, freq=freq, tz="UTC")
    frames = [
        pd.DataFrame(
            {
                "ts": ts,
                "symbol": symbol,
                "open": price,
                "high": price if high is None else high,
                "low": price if low is None else low,
                "close": price,
                "volume": 10.0,
                "spread_bps": 2.0,
            }
        )
        for symbol in symbols
    ]
    return BarArrays.from_frame(pd.concat(frames, ignore_index=True))


def zigzag_bars(n=20) -> BarArrays:
    """Closes 100, 101, 100, 101, ...; each bar opens at the previous close; ranges 0.1% beyond."""
    close = np.where(np.arange(n) % 2 == 0, 100.0, 101.0)
    open_ = np.concatenate([[100.0], close[:-1]])
    frame = pd.DataFrame(
        {
            "ts": pd.date_range("2024-01-01", periods=n, freq="1min", tz="UTC"),
            "symbol": "BTCUSDT",
            "open": open_,
            "high": np.maximum(open_, close) * 1.001,
            "low": np.minimum(open_, close) * 0.999,
            "close": close,
            "volume": 10.0,
            "spread_bps": 2.0,
        }
    )
    return BarArrays.from_frame(frame)


def scenario(kind: str, parameters: dict, *, symbols=SYMBOLS, offset: int | None = None, **extra):
    data = {"name": f"test {kind}", "type": kind, "symbols": list(symbols), "parameters": parameters, **extra}
    if offset is not None:
        data["window"] = {"offset_bars": offset}
    return SCENARIO_ADAPTER.validate_python(data)


def run(sc, bars: BarArrays) -> StressResult:
    """The registered transform on the scenario's symbols, in the scenario's order (as run_scenario does)."""
    selected = select_symbols(bars, sc.symbols)
    return TRANSFORMS[sc.type](sc, selected, np.arange(len(sc.symbols)))


def seg(result: StressResult, symbol: str) -> dict[str, np.ndarray]:
    """The stressed arrays of one symbol."""
    bars = result.bars
    s = bars.segment(bars.symbols.index(symbol))
    names = ("ts", *PRICE_FIELDS, "volume", "spread_bps", "stressed", "corrupted", "halted")
    return {name: getattr(bars, name)[s] for name in names}


def seg_of(bars: BarArrays, symbol: str) -> dict[str, np.ndarray]:
    """The base arrays of one symbol."""
    s = bars.segment(bars.symbols.index(symbol))
    return {name: getattr(bars, name)[s] for name in ("ts", *PRICE_FIELDS, "volume", "spread_bps")}


def window_mask(result: StressResult, symbol: str) -> np.ndarray:
    start, end = result.windows[symbol]
    ts = seg(result, symbol)["ts"]
    return (ts >= start) & (ts <= end)


def pre_close(result: StressResult, symbol: str) -> float:
    values = seg(result, symbol)
    return float(values["close"][values["ts"] == result.pre_shock_ns[symbol]][0])


def realised_drop(result: StressResult, symbol: str) -> float:
    """The drop the bars realise by the result's measure, computed here independently of stats.py."""
    values, mask, p0 = seg(result, symbol), window_mask(result, symbol), pre_close(result, symbol)
    if result.drop_measure == "high_to_low":
        return 1.0 - values["low"][mask].min() / values["high"][mask].max()
    if result.drop_measure == "gap_open":
        return 1.0 - values["open"][mask & ~values["halted"]][0] / p0
    return 1.0 - values["low"][mask].min() / p0


def assert_sound(result: StressResult, base: BarArrays) -> None:
    """Consistent bars, same rows as the base, every changed row flagged, the base itself untouched."""
    bars = result.bars
    selected = select_symbols(base, bars.symbols)
    assert bars.symbols == selected.symbols
    np.testing.assert_array_equal(bars.offsets, selected.offsets)
    np.testing.assert_array_equal(bars.ts, selected.ts)
    ok = ~bars.corrupted
    assert np.all(bars.high[ok] >= np.maximum(bars.open, bars.close)[ok])
    assert np.all(bars.low[ok] <= np.minimum(bars.open, bars.close)[ok])
    assert np.all(bars.low[ok] > 0)
    assert np.all(bars.volume[ok] >= 0) and np.all(bars.spread_bps[ok] >= 0)
    changed = np.zeros(bars.rows, dtype=bool)
    for name in (*PRICE_FIELDS, "volume", "spread_bps"):
        changed |= getattr(bars, name) != getattr(selected, name)
    assert not np.any(changed & ~bars.stressed), "a changed row is not flagged stressed"
    assert not np.any(bars.halted & ~bars.stressed)
    assert not np.any(selected.stressed), "the base bars were modified"
    for symbol in bars.symbols:
        assert symbol in result.windows and symbol in result.pre_shock_ns
        start, end = result.windows[symbol]
        assert result.pre_shock_ns[symbol] < start <= end


def arrays_equal(a: BarArrays, b: BarArrays) -> bool:
    names = ("ts", *PRICE_FIELDS, "volume", "spread_bps", "stressed", "corrupted", "halted")
    return a.symbols == b.symbols and all(np.array_equal(getattr(a, n), getattr(b, n)) for n in names)


def run_or_reject(sc, bars: BarArrays) -> StressResult:
    """Run; a window where the base bars alone already fall as far as the target is not an example."""
    try:
        return run(sc, bars)
    except InfeasibleStressError:
        reject()


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


# ------------------------------------------------------------------------------ correlation cascade


def test_correlation_cascade_hand_values():
    params = {"drop_pct": 0.2, "correlation": 0.5, "lag_bars": 2, "duration_bars": 2, "recovery_bars": 2}
    result = run(scenario("correlation_cascade", params, offset=5), flat_bars(SYMBOLS))
    ts = flat_bars().ts
    np.testing.assert_allclose(seg(result, "BTCUSDT")["close"][5:9], [90, 80, 90, 100], rtol=1e-12)
    np.testing.assert_allclose(seg(result, "ETHUSDT")["close"][5:11], [100, 100, 95, 90, 95, 100], rtol=1e-12)
    np.testing.assert_allclose(seg(result, "SOLUSDT")["close"][9:13], [95, 90, 95, 100], rtol=1e-12)
    assert result.windows["ETHUSDT"] == (int(ts[7]), int(ts[10]))
    assert result.pre_shock_ns["SOLUSDT"] == int(ts[8])
    assert result.expected_drop == {"BTCUSDT": 0.2, "ETHUSDT": pytest.approx(0.1), "SOLUSDT": pytest.approx(0.1)}


def test_correlation_cascade_leader_is_the_first_listed_and_lags_can_be_listed():
    params = {"drop_pct": 0.2, "correlation": 0.5, "lag_bars": [4, 1], "duration_bars": 2, "recovery_bars": 2}
    sc = scenario("correlation_cascade", params, symbols=("SOLUSDT", "BTCUSDT", "ETHUSDT"), offset=5)
    result = run(sc, flat_bars(SYMBOLS))
    ts = flat_bars().ts
    assert result.bars.symbols == ("SOLUSDT", "BTCUSDT", "ETHUSDT")
    assert {s: w[0] for s, w in result.windows.items()} == {
        "SOLUSDT": int(ts[5]),
        "BTCUSDT": int(ts[9]),
        "ETHUSDT": int(ts[6]),
    }
    assert result.expected_drop["SOLUSDT"] == 0.2


def test_correlation_cascade_followers_align_on_the_leaders_timestamp():
    bars = market()
    start = pd.Timestamp(bars.ts[100], unit="ns", tz="UTC").to_pydatetime()
    params = {"drop_pct": 0.2, "lag_bars": 3}
    result = run(scenario("correlation_cascade", params, window={"start": start.isoformat()}), bars)
    starts = [result.windows[s][0] for s in SYMBOLS]
    assert starts == [int(bars.ts[100]) + k * 3 * MINUTE_NS for k in range(3)]


@settings(max_examples=30, deadline=None)
@given(
    drop=st.floats(0.02, 0.9),
    correlation=st.floats(0.05, 1.0),
    lags=st.one_of(st.integers(0, 30), st.tuples(st.integers(0, 60), st.integers(0, 60))),
    duration=st.integers(1, 20),
    recovery=st.integers(0, 60),
    seed=st.integers(0, 2**32 - 1),
)
def test_correlation_cascade_properties(drop, correlation, lags, duration, recovery, seed):
    params = {
        "drop_pct": drop,
        "correlation": correlation,
        "lag_bars": list(lags) if isinstance(lags, tuple) else lags,
        "duration_bars": duration,
        "recovery_bars": recovery,
    }
    base = market()
    result = run_or_reject(scenario("correlation_cascade", params, seed=seed), base)
    assert_sound(result, base)
    lag_list = [0, *lags] if isinstance(lags, tuple) else [k * lags for k in range(3)]
    leader_start = result.windows[SYMBOLS[0]][0]
    for k, symbol in enumerate(SYMBOLS):
        target = drop if k == 0 else drop * correlation
        assert realised_drop(result, symbol) == pytest.approx(target, abs=EXACT)
        assert result.windows[symbol][0] == leader_start + lag_list[k] * MINUTE_NS


# ------------------------------------------------------------------------------------- trading halt


def test_trading_halt_hand_values():
    bars = flat_bars()
    sc = scenario("trading_halt", {"halt_minutes": 3, "gap_pct": -0.1}, symbols=("BTCUSDT",), offset=5)
    result = run(sc, bars)
    v = seg(result, "BTCUSDT")
    assert v["halted"].nonzero()[0].tolist() == [5, 6, 7]
    assert np.all(v["volume"][5:8] == 0) and np.all(v["spread_bps"][5:8] == 2.0)
    for name in PRICE_FIELDS:
        assert np.all(v[name][5:8] == 100.0)
        np.testing.assert_allclose(v[name][8:], 90.0, rtol=1e-12)
    assert v["open"][8] == 90.0
    assert result.windows["BTCUSDT"] == (int(bars.ts[5]), int(bars.ts[8]))
    assert result.drop_measure == "gap_open"
    assert result.expected_drop == {"BTCUSDT": pytest.approx(0.1)}
    assert realised_drop(result, "BTCUSDT") == pytest.approx(0.1, abs=1e-15)
    assert_sound(result, bars)


def test_trading_halt_on_a_ramp_and_a_partial_minute():
    n = 20
    close = 100.0 + np.arange(n)
    frame = pd.DataFrame(
        {
            "ts": pd.date_range("2024-01-01", periods=n, freq="1min", tz="UTC"),
            "symbol": "BTCUSDT",
            "open": close - 1,
            "high": close + 0.5,
            "low": close - 1.5,
            "close": close,
            "volume": 10.0,
            "spread_bps": 2.0,
        }
    )
    bars = BarArrays.from_frame(frame)
    result = run(scenario("trading_halt", {"halt_minutes": 2.5, "gap_pct": 0.05}, symbols=("BTCUSDT",), offset=5), bars)
    v = seg(result, "BTCUSDT")
    assert v["halted"].nonzero()[0].tolist() == [5, 6, 7]  # bars starting at 0, 1 and 2 minutes into the halt
    assert np.all(v["close"][5:8] == 104.0)  # the last close before the halt
    k = 104.0 * 1.05 / 107.0  # reopening open / base open of the reopening bar
    assert v["open"][8] == 104.0 * 1.05
    np.testing.assert_allclose(v["close"][8:], close[8:] * k, rtol=1e-12)
    assert result.expected_drop == {"BTCUSDT": -0.05}  # a gap up


@settings(max_examples=30, deadline=None)
@given(halt=st.floats(0.1, 600), gap=st.floats(-0.9, 5), seed=st.integers(0, 2**32 - 1))
def test_trading_halt_properties(halt, gap, seed):
    base = market()
    result = run(scenario("trading_halt", {"halt_minutes": halt, "gap_pct": gap}, seed=seed), base)
    assert_sound(result, base)
    for symbol in SYMBOLS:
        v, b = seg(result, symbol), seg_of(base, symbol)
        halted = np.flatnonzero(v["halted"])
        assert halted.size == -(-round(halt * 60e9) // MINUTE_NS)
        assert np.all(np.diff(halted) == 1)
        resume = halted[-1] + 1
        p0 = b["close"][halted[0] - 1]
        assert v["open"][resume] == p0 * (1.0 + gap)
        assert np.all(v["volume"][halted] == 0)
        np.testing.assert_allclose(v["close"][resume:] / b["close"][resume:], p0 * (1 + gap) / b["open"][resume])
        assert realised_drop(result, symbol) == pytest.approx(-gap, abs=EXACT)


# ---------------------------------------------------------------------------------- episode replica


@pytest.mark.parametrize(
    ("measure", "depth"), [("high_to_low", 1 - 0.8 * 101 / 99), ("prior_close_to_low", 1 - 80 / 99)]
)
def test_episode_replica_hand_values(measure, depth):
    bars = flat_bars(high=101.0, low=99.0)
    params = {"episode_bars": 4, "path": [[0, 0], [4, 1]], "target_drop_pct": 0.2, "measure": measure}
    result = run(scenario("episode_replica", params, symbols=("BTCUSDT",), offset=5), bars)
    v = seg(result, "BTCUSDT")
    shape = np.array([0.25, 0.5, 0.75, 1.0])
    np.testing.assert_allclose(v["close"][5:9], 100 * (1 - depth * shape), rtol=1e-12)
    np.testing.assert_allclose(v["low"][5:9], 99 * (1 - depth * shape), rtol=1e-12)
    np.testing.assert_allclose(v["high"][5:9], 101 * (1 - depth * (shape - 0.25)), rtol=1e-12)
    np.testing.assert_allclose(v["close"][9:], 100 * (1 - depth), rtol=1e-12)  # the last depth persists
    assert realised_drop(result, "BTCUSDT") == pytest.approx(0.2, abs=1e-12)
    expected_measure = "high_to_low" if measure == "high_to_low" else "pre_close_to_low"
    assert result.drop_measure == expected_measure


DOCUMENTED_EPISODES = [
    # 2020-03-12 BTC: two legs, -44.6% high to low over the day.
    {"episode_bars": 1440, "path": [[0, 0], [420, 0.55], [600, 0.4], [1300, 1], [1440, 0.9]], "target_drop_pct": 0.446},
    # 2021-05-19: -31.2% high to low.
    {"episode_bars": 720, "path": [[0, 0], [300, 0.3], [420, 1], [720, 0.6]], "target_drop_pct": 0.312},
    # 2010-05-06: -9.2% in about 36 minutes, most of it recovered.
    {"episode_bars": 36, "path": [[0, 0], [20, 1], [36, 0.3]], "target_drop_pct": 0.092},
    # 2023-10-17 NVDA: -7.84% from the prior close to the low (the day opens with a gap down).
    {
        "episode_bars": 390,
        "path": [[0, 0.3], [60, 1], [390, 0.55]],
        "target_drop_pct": 0.0784,
        "measure": "prior_close_to_low",
    },
]


@pytest.mark.parametrize("params", DOCUMENTED_EPISODES)
def test_episode_replica_documented_crashes_are_exact(params):
    base = market()
    result = run(scenario("episode_replica", params, seed=11), base)
    assert_sound(result, base)
    for symbol in SYMBOLS:
        assert realised_drop(result, symbol) == pytest.approx(params["target_drop_pct"], abs=1e-9)
        assert window_mask(result, symbol).sum() == params["episode_bars"]


def test_episode_replica_per_symbol_targets():
    targets = {"btcusdt": 0.1, "ETHUSDT": 0.2, "SOLUSDT": 0.3}
    params = {"episode_bars": 60, "path": [[0, 0], [30, 1], [60, 0.5]], "target_drop_pct": targets}
    result = run(scenario("episode_replica", params), market())
    assert result.expected_drop == {"BTCUSDT": 0.1, "ETHUSDT": 0.2, "SOLUSDT": 0.3}
    for symbol, target in result.expected_drop.items():
        assert realised_drop(result, symbol) == pytest.approx(target, abs=EXACT)


@st.composite
def episode_params(draw):
    episode_bars = draw(st.integers(2, 600))
    knot_bars = sorted(draw(st.sets(st.integers(0, episode_bars), min_size=2, max_size=6)))
    depths = draw(st.lists(st.floats(0, 1), min_size=len(knot_bars), max_size=len(knot_bars)))
    depths[draw(st.integers(0, len(depths) - 1))] = 1.0
    return {
        "episode_bars": episode_bars,
        "path": [[b, d] for b, d in zip(knot_bars, depths, strict=True)],
        "target_drop_pct": draw(st.floats(0.03, 0.9)),
        "measure": draw(st.sampled_from(["high_to_low", "prior_close_to_low"])),
    }


@settings(max_examples=40, deadline=None)
@given(params=episode_params(), seed=st.integers(0, 2**32 - 1))
def test_episode_replica_properties(params, seed):
    base = market()
    result = run_or_reject(scenario("episode_replica", params, seed=seed), base)
    assert_sound(result, base)
    for symbol in SYMBOLS:
        assert realised_drop(result, symbol) == pytest.approx(params["target_drop_pct"], abs=1e-9)


def test_episode_replica_refuses_a_target_the_bars_already_exceed():
    params = {"episode_bars": 1000, "path": [[0, 0], [500, 1]], "target_drop_pct": 0.001}
    with pytest.raises(InfeasibleStressError, match="target drop"):
        run(scenario("episode_replica", params), market())


# ------------------------------------------------------------------------------------- determinism


DETERMINISM_CASES = {
    "flash_crash": {"drop_pct": 0.2},
    "flash_crash_lite": {"price_shock_pct": -0.03, "duration_sec": 240},
    "volatility_spike": {"multiplier": 3},
    "mixed_custom": {"flash_crash_drop_pct": 0.2, "volatility_multiplier": 2, "spread_mult": 3},
    "correlation_cascade": {"drop_pct": 0.2},
    "trading_halt": {"halt_minutes": 10, "gap_pct": -0.05},
    "episode_replica": {"episode_bars": 36, "path": [[0, 0], [20, 1], [36, 0.3]], "target_drop_pct": 0.092},
}


@pytest.mark.parametrize("kind", PRICE_TYPES)
def test_same_seed_same_bars_other_seed_other_window(kind):
    base = market()
    first = run(scenario(kind, DETERMINISM_CASES[kind], seed=1), base)
    again = run(scenario(kind, DETERMINISM_CASES[kind], seed=1), base)
    other = run(scenario(kind, DETERMINISM_CASES[kind], seed=2), base)
    assert arrays_equal(first.bars, again.bars)
    assert first.windows == again.windows and first.expected_drop == again.expected_drop
    assert first.windows != other.windows
    assert not arrays_equal(first.bars, other.bars)


# ----------------------------------------------------------------------------------------- helpers


def test_solve_depth_matches_the_closed_form_for_a_drop_from_the_close():
    rng = np.random.default_rng(0)
    low = 100 * (1 - rng.random((50, 30)) * 0.01)
    shape = np.linspace(0.1, 1.0, 30)
    depth = solve_depth(low, shape, np.full((50, 1), 100.0), 0.0, np.full(50, 0.7))
    closed = np.min((1 - 70.0 / low) / shape, axis=1)
    np.testing.assert_allclose(depth, closed, rtol=1e-13)
    assert np.isnan(solve_depth(np.array([[60.0]]), 1.0, np.array([[100.0]]), 0.0, np.array([0.7])))[0]


def test_scale_volume_spread_scales_flags_and_skips_missing_arrays():
    bars = flat_bars()
    arrays = bars.copy_arrays("spread_bps", "stressed")
    scale_volume_spread(arrays, np.array([3, 4]), volume_factor=0.5, spread_factor=np.array([2.0, 1.0]))
    assert arrays["spread_bps"][[3, 4]].tolist() == [4.0, 2.0]
    assert arrays["stressed"].nonzero()[0].tolist() == [3]  # row 4 is not moved: no volume array to scale
    assert "volume" not in arrays and np.all(bars.spread_bps == 2.0)


@pytest.mark.parametrize("kind", ["flash_crash", "trading_halt", "episode_replica", "flash_crash_lite"])
def test_stressed_bars_pass_the_quality_suite(kind):
    from stress_pipeline.market.quality import validate_bars

    result = run(scenario(kind, DETERMINISM_CASES[kind], seed=3), market())
    frame = result.bars.to_frame()
    for symbol in SYMBOLS:
        report = validate_bars(frame[frame["symbol"] == symbol])
        assert report.success, report.summary()


# ------------------------------------------------------------------------------------ realised stats


def test_stats_flash_crash_hand_values():
    bars = flat_bars()
    params = {"drop_pct": 0.3, "duration_bars": 3, "recovery_bars": 2, "volume_mult": 4, "spread_mult": 5}
    stats = realised_stats(bars, run(scenario("flash_crash", params, symbols=("BTCUSDT",), offset=5), bars))
    assert list(stats.columns) == list(STATS_COLUMNS)
    row = stats.iloc[0]
    assert row["symbol"] == "BTCUSDT"
    assert row["window_start"] == "2024-01-01T00:05:00+00:00" and row["window_end"] == "2024-01-01T00:09:00+00:00"
    assert row["pre_shock_close"] == 100.0
    assert row["drop_pct"] == pytest.approx(0.3, abs=1e-12)
    assert row["expected_drop_pct"] == 0.3
    assert row["time_to_trough_bars"] == 2
    assert row["spread_mult"] == pytest.approx(5.0)
    assert row["volume_mult"] == pytest.approx((40 * 3 + 25 + 10) / 50)
    assert row["corrupted_rows"] == 0 and row["stressed_rows"] == 5


def test_stats_on_noisy_bars_match_the_promises():
    base = market()
    crash = realised_stats(base, run(scenario("flash_crash", {"drop_pct": 0.3, "spread_mult": 5}), base))
    np.testing.assert_allclose(crash["drop_pct"], 0.30, atol=EXACT)
    np.testing.assert_allclose(crash["expected_drop_pct"], 0.30)
    np.testing.assert_allclose(crash["spread_mult"], 5.0, rtol=1e-12)
    assert (crash["stressed_rows"] == 20).all()

    spike = realised_stats(base, run(scenario("volatility_spike", {"multiplier": 5}), base))
    np.testing.assert_allclose(spike["vol_ratio"], 5.0, rtol=EXACT)
    assert spike["expected_drop_pct"].isna().all()
    np.testing.assert_allclose(spike[["spread_mult", "volume_mult"]], 1.0)

    halt = realised_stats(base, run(scenario("trading_halt", {"halt_minutes": 10, "gap_pct": -0.08}), base))
    np.testing.assert_allclose(halt["drop_pct"], 0.08, atol=EXACT)
    np.testing.assert_allclose(halt["expected_drop_pct"], 0.08)

    params = DOCUMENTED_EPISODES[0]
    episode = realised_stats(base, run(scenario("episode_replica", params), base))
    np.testing.assert_allclose(episode["drop_pct"], 0.446, atol=EXACT)

    lite = realised_stats(base, run(scenario("flash_crash_lite", {"price_shock_pct": -0.03}), base))
    np.testing.assert_allclose(lite["drop_pct"], 0.03, atol=EXACT)
    assert (lite["vol_ratio"] == 1.0).all()  # closes unaltered by a sub-bar shock
    np.testing.assert_allclose(lite["spread_mult"], 3.0)


def test_stats_when_rows_are_removed_and_corrupted():
    base = market()
    result = run(scenario("flash_crash", {"drop_pct": 0.3, "spread_mult": 5}, seed=5), base)
    bars = result.bars
    btc = bars.segment(0)
    start = int(np.searchsorted(bars.ts[btc], result.windows["BTCUSDT"][0]))
    drop_rows = np.array([btc.start + start + 10, btc.start + 500])  # one row inside the window, one outside
    names = ("ts", *PRICE_FIELDS, "volume", "spread_bps", "stressed", "corrupted", "halted")
    kept = {name: np.delete(getattr(bars, name), drop_rows) for name in names}
    kept["corrupted"][btc.start + 700] = True
    kept["close"][btc.start + 700] = np.nan
    offsets = bars.offsets.copy()
    offsets[1:] -= 2
    shrunk = StressResult(
        bars=BarArrays(symbols=bars.symbols, offsets=offsets, **kept),
        windows=result.windows,
        pre_shock_ns=result.pre_shock_ns,
        expected_drop=result.expected_drop,
    )
    stats = realised_stats(base, shrunk).set_index("symbol")
    assert stats.loc["BTCUSDT", "corrupted_rows"] == 1
    assert math.isnan(stats.loc["BTCUSDT", "vol_ratio"])
    assert stats.loc["BTCUSDT", "spread_mult"] == pytest.approx(5.0)  # matched on timestamps
    assert stats.loc["BTCUSDT", "drop_pct"] == pytest.approx(0.3, abs=EXACT)
    assert stats.loc["ETHUSDT", "vol_ratio"] > 1.0  # other symbols keep their alignment


def test_stats_without_a_window():
    base = flat_bars()
    stats = realised_stats(base, StressResult(bars=base))
    row = stats.iloc[0]
    assert row["window_start"] is None and math.isnan(row["drop_pct"]) and pd.isna(row["time_to_trough_bars"])
    assert row["stressed_rows"] == 0
