"""Price-path transforms, continued: correlation cascade, trading halt, episode replica, determinism."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stress_pipeline.scenarios.arrays import PRICE_FIELDS, BarArrays
from stress_pipeline.scenarios.result import StressResult
from stress_pipeline.scenarios.stats import STATS_COLUMNS, realised_stats
from stress_pipeline.scenarios.transforms.path_depth import InfeasibleStressError, solve_depth
from stress_pipeline.scenarios.transforms.volume_spread import scale_volume_spread
from stress_pipeline_tests.price_path_helpers import (
    EXACT,
    MINUTE_NS,
    PRICE_TYPES,
    SYMBOLS,
    arrays_equal,
    assert_sound,
    flat_bars,
    market,
    realised_drop,
    run,
    run_or_reject,
    scenario,
    seg,
    seg_of,
    window_mask,
)

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
