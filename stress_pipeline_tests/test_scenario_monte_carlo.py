"""Monte Carlo paths and historical replay: layout, exact values, statistics, determinism, invariants."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stress_pipeline.market.synthetic import generate_bars
from stress_pipeline.scenarios.apply import select_symbols
from stress_pipeline.scenarios.arrays import BarArrays
from stress_pipeline.scenarios.model import SCENARIO_ADAPTER
from stress_pipeline.scenarios.transforms import TRANSFORMS
from stress_pipeline.scenarios.transforms.monte_carlo import path_scenario_name, split_paths
from stress_pipeline.scenarios.transforms.replay import historical_replay  # noqa: F401 (registers)
from stress_pipeline.scenarios.windows import WindowError

MINUTE = 60_000_000_000
SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
START = pd.Timestamp("2024-01-01", tz="UTC")
BASE = BarArrays.from_frame(generate_bars(SYMBOLS, days=2))
GRID_STEP = 1e-5  # returns of the grid base are distinct multiples of this


def run(scenario, bars: BarArrays = BASE):
    """What run_scenario does: select the scenario's symbols, call the registered transform."""
    selected = select_symbols(bars, scenario.symbols)
    return TRANSFORMS[scenario.type](scenario, selected, np.arange(len(scenario.symbols)))


def mc(symbols=SYMBOLS, seed: int = 1, window=None, **parameters):
    spec = {"name": "MC test", "type": "monte_carlo", "symbols": list(symbols), "seed": seed, "parameters": parameters}
    if window is not None:
        spec["window"] = window
    return SCENARIO_ADAPTER.validate_python(spec)


def replay(start, end, symbols=SYMBOLS):
    spec = {"name": "Replay test", "type": "historical_replay", "symbols": list(symbols),
            "parameters": {"start": start, "end": end}}  # fmt: skip
    return SCENARIO_ADAPTER.validate_python(spec)


def grid_base(n: int = 3_000, seed: int = 5, symbol: str = "GRIDUSDT") -> tuple[BarArrays, np.ndarray]:
    """One symbol whose returns are distinct multiples of GRID_STEP, so each generated bar names its source.

    Returns the bars and, per bar k >= 1, the integer return code (log(close_k / close_k-1) / GRID_STEP).
    """
    rng = np.random.default_rng(seed)
    codes = rng.permutation(n - 1) - (n - 1) // 2
    close = 100.0 * np.exp(np.concatenate([[0.0], np.cumsum(codes * GRID_STEP)]))
    open_ = np.concatenate([[100.0], close[:-1]])
    high = np.maximum(open_, close) * (1.0 + rng.uniform(0.0, 1e-3, n))
    low = np.minimum(open_, close) * (1.0 - rng.uniform(0.0, 1e-3, n))
    frame = pd.DataFrame(
        {
            "ts": pd.date_range(START, periods=n, freq="min"),
            "symbol": symbol,
            "open": open_,
            "high": high,
            "low": low,
            "close": close,
            "volume": rng.uniform(1.0, 50.0, n),
            "spread_bps": rng.uniform(0.5, 3.0, n),
        }
    )
    return BarArrays.from_frame(frame), codes


def source_bars(result_bars: BarArrays, codes: np.ndarray) -> np.ndarray:
    """Base bar index (1..n-1) each generated bar was drawn from, recovered from its return."""
    generated = np.rint(np.log(result_bars.close / result_bars.open) / GRID_STEP).astype(np.int64)
    lookup = np.full(codes.max() - codes.min() + 1, -1)
    lookup[codes - codes.min()] = np.arange(1, len(codes) + 1)
    return lookup[generated - codes.min()]


def assert_consistent(bars: BarArrays) -> None:
    o, h, low, c = bars.open, bars.high, bars.low, bars.close
    assert np.isfinite(np.stack([o, h, low, c, bars.volume, bars.spread_bps])).all()
    assert (h >= np.maximum(o, c)).all()
    assert (low <= np.minimum(o, c)).all()
    assert (low > 0).all()
    assert (bars.volume >= 0).all() and (bars.spread_bps >= 0).all()


# ------------------------------------------------------------------------------ Monte Carlo layout


@pytest.mark.parametrize("method", ["block_bootstrap", "gbm"])
def test_paths_layout_timestamps_and_flags(method):
    result = run(mc(n_paths=4, horizon_bars=50, method=method, block_bars=10))
    bars = result.bars
    assert bars.symbols == SYMBOLS
    assert bars.rows == 3 * 4 * 50
    assert bars.offsets.tolist() == [0, 200, 400, 600]
    assert bars.path.dtype == np.int32
    assert bars.path.tolist() == np.tile(np.repeat(np.arange(4), 50), 3).tolist()
    assert bars.stressed.all() and not bars.corrupted.any() and not bars.halted.any()
    last = BASE.ts[BASE.offsets[1] - 1]  # every symbol's base ends at the same minute
    expected_ts = last + MINUTE * np.arange(1, 51)
    assert (bars.ts.reshape(12, 50) == expected_ts).all()
    symbol_code = np.repeat(np.arange(3), 200)
    assert (np.lexsort((bars.ts, bars.path, symbol_code)) == np.arange(600)).all()  # symbol, path, ts
    for i, symbol in enumerate(SYMBOLS):
        anchor_close = BASE.close[BASE.offsets[i + 1] - 1]
        block = slice(200 * i, 200 * (i + 1))
        opens, closes = bars.open[block].reshape(4, 50), bars.close[block].reshape(4, 50)
        assert (opens[:, 0] == anchor_close).all()
        assert (opens[:, 1:] == closes[:, :-1]).all()
        assert result.windows[symbol] == (int(last + MINUTE), int(last + 50 * MINUTE))
        assert result.pre_shock_ns[symbol] == int(last)
    assert result.expected_drop == {}
    assert_consistent(bars)


@pytest.mark.parametrize("method", ["block_bootstrap", "gbm"])
def test_same_seed_same_paths_other_seed_other_paths(method):
    first = run(mc(seed=11, n_paths=3, horizon_bars=120, method=method)).bars
    again = run(mc(seed=11, n_paths=3, horizon_bars=120, method=method)).bars
    other = run(mc(seed=12, n_paths=3, horizon_bars=120, method=method)).bars
    for name in ("ts", "open", "high", "low", "close", "volume", "spread_bps", "path"):
        assert np.array_equal(getattr(first, name), getattr(again, name)), name
    assert not np.array_equal(first.close, other.close)
    assert np.array_equal(first.ts, other.ts)


# ---------------------------------------------------------------------------- block bootstrap


def test_bootstrap_returns_come_only_from_the_base_returns():
    result = run(mc(n_paths=20, horizon_bars=500, block_bars=30))
    for i, symbol in enumerate(SYMBOLS):
        base_close = BASE.close[BASE.segment(i)]
        base_returns = np.unique(np.log(base_close[1:] / base_close[:-1]))
        part = result.bars.segment(i)
        generated = np.log(result.bars.close[part] / result.bars.open[part])
        nearest = np.clip(np.searchsorted(base_returns, generated), 1, len(base_returns) - 1)
        distance = np.minimum(np.abs(generated - base_returns[nearest]), np.abs(generated - base_returns[nearest - 1]))
        assert distance.max() < 1e-9, symbol
        assert np.isin(result.bars.volume[part], BASE.volume[BASE.segment(i)]).all()


def test_bootstrap_bar_takes_the_whole_shape_of_its_source_bar():
    base, codes = grid_base()
    result = run(mc(symbols=["GRIDUSDT"], n_paths=10, horizon_bars=300, block_bars=25), base)
    bars, src = result.bars, source_bars(result.bars, codes)
    assert (src >= 1).all()
    body_high = np.maximum(bars.open, bars.close)
    body_low = np.minimum(bars.open, bars.close)
    base_high_ratio = base.high / np.maximum(base.open, base.close)
    base_low_ratio = base.low / np.minimum(base.open, base.close)
    np.testing.assert_allclose(bars.high / body_high, base_high_ratio[src], rtol=1e-12)
    np.testing.assert_allclose(bars.low / body_low, base_low_ratio[src], rtol=1e-12)
    assert np.array_equal(bars.volume, base.volume[src])
    assert np.array_equal(bars.spread_bps, base.spread_bps[src])


def test_bootstrap_blocks_are_consecutive_bars_of_mean_length_block_bars():
    base, codes = grid_base()
    n_paths, horizon, block = 200, 500, 20
    result = run(mc(symbols=["GRIDUSDT"], n_paths=n_paths, horizon_bars=horizon, block_bars=block), base)
    src = source_bars(result.bars, codes).reshape(n_paths, horizon) - 1  # position in the 2999 returns
    n_source = len(codes)
    continues = src[:, 1:] == (src[:, :-1] + 1) % n_source  # wrapping around the end is a continuation
    new_share = 1.0 - continues.mean()
    assert new_share == pytest.approx(1.0 / block, abs=0.005)  # geometric lengths: P(new block) = 1/block
    starts = np.concatenate([np.ones((n_paths, 1), bool), ~continues], axis=1)
    block_id = np.cumsum(starts.ravel()) - 1
    lengths = np.bincount(block_id)
    last_of_path = block_id.reshape(n_paths, horizon)[:, -1]
    complete = np.delete(lengths, last_of_path)  # blocks cut by the end of their path are shorter
    assert complete.mean() == pytest.approx(block, rel=0.08)
    assert (src[1:, 0] == (src[:-1, -1] + 1) % n_source).mean() < 0.05  # each path opens a new block
    wrapped = (src[:, 1:] == 0) & (src[:, :-1] == n_source - 1)
    assert wrapped.any()  # blocks do run over the end of the sample into its start


def test_bootstrap_draws_the_same_times_for_every_symbol_keeping_their_correlation():
    result = run(mc(n_paths=50, horizon_bars=1_000, block_bars=15))
    bars = result.bars
    generated = np.stack([np.log(bars.close / bars.open)[bars.segment(i)] for i in range(3)])
    base_returns = np.stack([np.diff(np.log(BASE.close[BASE.segment(i)])) for i in range(3)])
    np.testing.assert_allclose(np.corrcoef(generated), np.corrcoef(base_returns), atol=0.03)


def test_block_bars_one_draws_every_bar_independently():
    base, codes = grid_base()
    result = run(mc(symbols=["GRIDUSDT"], n_paths=50, horizon_bars=200, block_bars=1), base)
    src = source_bars(result.bars, codes).reshape(50, 200) - 1
    assert ((src[:, 1:] == (src[:, :-1] + 1) % len(codes)).mean()) < 0.01  # only chance continuations


# ---------------------------------------------------------------------------------------------- gbm


def test_gbm_matches_the_estimated_drift_volatility_and_correlation():
    result = run(mc(n_paths=200, horizon_bars=1_440, method="gbm", seed=3))
    base_returns = np.stack([np.diff(np.log(BASE.close[BASE.segment(i)])) for i in range(3)])
    generated = np.stack([np.log(result.bars.close / result.bars.open)[result.bars.segment(i)] for i in range(3)])
    n = generated.shape[1]
    for i, symbol in enumerate(SYMBOLS):
        sigma, mu = base_returns[i].std(ddof=1), base_returns[i].mean()
        assert generated[i].std() == pytest.approx(sigma, rel=0.01), symbol
        assert abs(generated[i].mean() - mu) < 4 * sigma / np.sqrt(n), symbol
    np.testing.assert_allclose(np.corrcoef(generated), np.corrcoef(base_returns), atol=0.01)


def test_gbm_bar_extremes_follow_the_brownian_bridge():
    """Given the bar's return r, a bridge's maximum m has P(M >= m) = exp(-2 m (m - r) / var): uniform when fed m.

    The same holds for the minimum (m <= min(0, r)); a wrong variance skews the transformed values.
    """
    result = run(mc(symbols=["BTCUSDT"], n_paths=200, horizon_bars=1_440, method="gbm"))
    bars = result.bars
    var = np.diff(np.log(BASE.close[BASE.segment(0)])).var(ddof=1)
    r = np.log(bars.close / bars.open)
    for extreme in (np.log(bars.high / bars.open), np.log(bars.low / bars.open)):
        u = np.exp(-2.0 * extreme * (extreme - r) / var)
        assert u.mean() == pytest.approx(0.5, abs=0.003)
        np.testing.assert_allclose(np.quantile(u, [0.1, 0.5, 0.9]), [0.1, 0.5, 0.9], atol=0.005)
    assert np.isin(bars.volume, BASE.volume[BASE.segment(0)]).all()


# ---------------------------------------------------------------------------------- the start point


def test_window_starts_paths_at_the_pre_shock_bar_fitted_on_the_past_only():
    base, codes = grid_base()
    scenario = mc(symbols=["GRIDUSDT"], n_paths=30, horizon_bars=200, block_bars=5, window={"offset_bars": 1_000})
    result = run(scenario, base)
    anchor = 999  # the bar before the window start
    assert (result.bars.open.reshape(30, 200)[:, 0] == base.close[anchor]).all()
    assert result.bars.ts[0] == base.ts[anchor] + MINUTE
    assert result.pre_shock_ns == {"GRIDUSDT": int(base.ts[anchor])}
    src = source_bars(result.bars, codes)
    assert src.min() >= 1 and src.max() <= anchor  # returns of bars 1..999 only


def test_unusable_rows_are_neither_sampled_nor_a_start():
    base, codes = grid_base(n=500)
    close, corrupted = base.close.copy(), base.corrupted.copy()
    corrupted[[100, 250]] = True  # e.g. a spike the corruption scenario flagged
    close[499] = np.nan  # the last bar is broken: start from the one before
    bars = base.replace(close=close, corrupted=corrupted)
    result = run(mc(symbols=["GRIDUSDT"], n_paths=50, horizon_bars=300, block_bars=3), bars)
    src = source_bars(result.bars, codes)
    assert not np.isin(src, [100, 101, 250, 251, 499]).any()  # neither the bar nor the return after it
    assert (result.bars.open.reshape(50, 300)[:, 0] == base.close[498]).all()
    assert result.bars.ts[0] == base.ts[498] + MINUTE


def test_symbols_are_fitted_on_common_bars_and_continue_from_their_own_end():
    frame = generate_bars(("BTCUSDT", "ETHUSDT"), days=1)
    is_eth = frame["symbol"] == "ETHUSDT"
    late = frame["ts"] < START + pd.Timedelta(minutes=100)
    early = frame["ts"] >= START + pd.Timedelta(minutes=1_400)
    bars = BarArrays.from_frame(frame[~(is_eth & (late | early))])
    result = run(mc(symbols=["BTCUSDT", "ETHUSDT"], n_paths=2, horizon_bars=10, method="gbm"), bars)
    assert result.pre_shock_ns["BTCUSDT"] == (START + pd.Timedelta(minutes=1_439)).value
    assert result.pre_shock_ns["ETHUSDT"] == (START + pd.Timedelta(minutes=1_399)).value
    assert result.bars.ts[result.bars.offsets[1]] == (START + pd.Timedelta(minutes=1_400)).value
    assert_consistent(result.bars)


def test_too_little_history_is_an_error_naming_the_scenario():
    bars = BarArrays.from_frame(generate_bars(("BTCUSDT",), days=1).iloc[:2])
    with pytest.raises(WindowError, match=r"scenario 'MC test'.*at least 2 usable returns"):
        run(mc(symbols=["BTCUSDT"]), bars)


def test_horizon_beyond_float_range_is_refused():
    n = 200
    close = 100.0 * np.exp(0.01 * np.arange(n) + np.random.default_rng(0).normal(0, 1e-4, n))
    frame = pd.DataFrame(
        {"ts": pd.date_range(START, periods=n, freq="min"), "symbol": "UPUSDT", "open": np.r_[100.0, close[:-1]],
         "high": close * 1.01, "low": np.minimum(np.r_[100.0, close[:-1]], close) * 0.99, "close": close,
         "volume": 1.0, "spread_bps": 1.0}
    )  # fmt: skip
    bars = BarArrays.from_frame(frame)
    for method in ("block_bootstrap", "gbm"):
        with pytest.raises(ValueError, match="shorten horizon_bars"):
            run(mc(symbols=["UPUSDT"], n_paths=1, horizon_bars=100_000, method=method), bars)


# ---------------------------------------------------------------------------------------- invariants


@settings(max_examples=40, deadline=None)
@given(
    method=st.sampled_from(["block_bootstrap", "gbm"]),
    n_paths=st.integers(1, 5),
    horizon=st.integers(2, 300),
    block_bars=st.integers(1, 5_000),
    seed=st.integers(0, 2**32 - 1),
    symbols=st.lists(st.sampled_from(SYMBOLS), min_size=1, max_size=3, unique=True),
)
def test_paths_keep_every_bar_invariant(method, n_paths, horizon, block_bars, seed, symbols):
    scenario = mc(symbols, seed, n_paths=n_paths, horizon_bars=horizon, method=method, block_bars=block_bars)
    bars = run(scenario).bars
    assert bars.symbols == tuple(symbols)
    assert bars.rows == len(symbols) * n_paths * horizon
    assert_consistent(bars)
    opens, closes = bars.open.reshape(-1, horizon), bars.close.reshape(-1, horizon)
    assert (opens[:, 1:] == closes[:, :-1]).all()
    assert (np.diff(bars.ts.reshape(-1, horizon), axis=1) == MINUTE).all()
    assert bars.stressed.all()


# -------------------------------------------------------------------------------------- sub-scenarios


def test_split_paths_gives_one_canonical_frame_per_path():
    frame = run(mc(n_paths=3, horizon_bars=40)).bars.to_frame()
    parts = split_paths(frame)
    assert sorted(parts) == [0, 1, 2]
    for k, part in parts.items():
        assert "path" not in part.columns
        assert part.index.tolist() == list(range(120))
        assert part["symbol"].tolist() == [s for s in SYMBOLS for _ in range(40)]
        expected = frame[frame["path"] == k].drop(columns="path").reset_index(drop=True)
        pd.testing.assert_frame_equal(part, expected)
        assert part.groupby("symbol")["ts"].is_monotonic_increasing.all()
    assert path_scenario_name("Crash futures", 2) == "Crash futures/path-2"
    with pytest.raises(ValueError, match="no 'path' column"):
        split_paths(frame.drop(columns="path"))


def test_one_path_passes_the_bar_quality_suite():
    from stress_pipeline.market.quality import validate_bars

    frame = run(mc(symbols=["ETHUSDT"], n_paths=2, horizon_bars=500, block_bars=20)).bars.to_frame()
    report = validate_bars(split_paths(frame)[1])
    assert report.success, report.summary()


# ---------------------------------------------------------------------------------- historical replay


def test_replay_returns_the_window_unchanged():
    corrupted = BASE.corrupted.copy()
    corrupted[BASE.offsets[1] + 400] = True  # ETH, inside the window: kept as the data has it
    base = BASE.replace(corrupted=corrupted)
    start, end = START + pd.Timedelta(hours=6), START + pd.Timedelta(hours=12)
    result = run(replay(start.to_pydatetime(), end.to_pydatetime()), base)
    bars = result.bars
    assert bars.offsets.tolist() == [0, 360, 720, 1_080]
    rows = np.concatenate([np.arange(360, 720) + base.offsets[i] for i in range(3)])
    for name in ("ts", "open", "high", "low", "close", "volume", "spread_bps", "corrupted", "halted"):
        assert np.array_equal(getattr(bars, name), getattr(base, name)[rows]), name
    assert not bars.stressed.any()
    assert bars.corrupted.sum() == 1 and bars.path is None
    for symbol in SYMBOLS:
        assert result.windows[symbol] == (start.value, end.value - MINUTE)
        assert result.pre_shock_ns[symbol] == start.value
    assert result.expected_drop == {}


def test_replay_naive_times_are_utc_and_aware_ones_converted():
    naive = run(replay(datetime(2024, 1, 1, 6), datetime(2024, 1, 1, 7))).bars
    paris = timezone(timedelta(hours=1))
    aware = run(replay(datetime(2024, 1, 1, 7, tzinfo=paris), datetime(2024, 1, 1, 8, tzinfo=paris))).bars
    assert np.array_equal(naive.ts, aware.ts)
    assert naive.ts[0] == (START + pd.Timedelta(hours=6)).value and naive.rows == 3 * 60


def test_replay_window_partly_outside_the_data_replays_what_exists():
    result = run(replay(datetime(2023, 12, 31, tzinfo=UTC), datetime(2024, 1, 1, 0, 10, tzinfo=UTC)))
    assert result.bars.lengths().tolist() == [10, 10, 10]
    assert result.bars.ts[0] == START.value


def test_replay_of_an_empty_window_names_scenario_window_and_data_span():
    with pytest.raises(WindowError) as caught:
        run(replay(datetime(2024, 2, 1, tzinfo=UTC), datetime(2024, 2, 2, tzinfo=UTC)))
    message = str(caught.value)
    assert "scenario 'Replay test'" in message and "BTCUSDT" in message
    assert "[2024-02-01T00:00:00+00:00, 2024-02-02T00:00:00+00:00)" in message
    assert "spans 2024-01-01T00:00:00+00:00 to 2024-01-02T23:59:00+00:00" in message


@settings(max_examples=40, deadline=None)
@given(start_min=st.integers(-100, 3_000), length_min=st.integers(1, 3_000))
def test_replay_selects_exactly_the_bars_in_the_window(start_min, length_min):
    start = START + pd.Timedelta(minutes=start_min)
    end = start + pd.Timedelta(minutes=length_min)
    segments = [BASE.ts[BASE.segment(i)] for i in range(3)]
    expected = [(seg_ts >= start.value) & (seg_ts < end.value) for seg_ts in segments]
    scenario = replay(start.to_pydatetime(), end.to_pydatetime())
    if not expected[0].any():
        with pytest.raises(WindowError):
            run(scenario)
        return
    bars = run(scenario).bars
    rows = np.concatenate([np.flatnonzero(mask) + BASE.offsets[i] for i, mask in enumerate(expected)])
    assert bars.lengths().tolist() == [int(mask.sum()) for mask in expected]
    assert np.array_equal(bars.close, BASE.close[rows]) and np.array_equal(bars.ts, BASE.ts[rows])
    assert not bars.stressed.any()
