"""The synthetic bar generator and the Binance kline files it writes."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stress_pipeline.market.schema import BAR_COLUMNS, conform_bars
from stress_pipeline.market.symbols import load_symbol_info
from stress_pipeline.market.synthetic import (
    CALIBRATION,
    DEFAULT_SYMBOLS,
    binance_month_file_name,
    ensure_shipped_data,
    generate_bars,
    shipped_file_names,
    shipped_file_paths,
    write_binance_klines,
)

DATA_DIR = Path(__file__).resolve().parents[1] / "data"
SHIPPED_BARS = DATA_DIR / "bars"
KLINE_COLUMNS = [
    "open_time",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "close_time",
    "quote_volume",
    "trades",
    "taker_buy_base",
    "taker_buy_quote",
    "ignore",
]


@pytest.fixture(scope="module")
def short_bars() -> pd.DataFrame:
    return generate_bars(days=3)


@pytest.fixture(scope="module")
def full_bars() -> pd.DataFrame:
    """The default 90 days, as shipped."""
    return generate_bars()


@pytest.fixture(scope="module")
def full_returns(full_bars: pd.DataFrame) -> pd.DataFrame:
    closes = full_bars.pivot(index="ts", columns="symbol", values="close")
    return np.log(closes).diff().dropna()


def read_klines(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, header=None, names=KLINE_COLUMNS, compression="gzip")


def assert_ohlc_consistent(bars: pd.DataFrame) -> None:
    assert (bars["high"] >= bars[["open", "close"]].max(axis=1)).all()
    assert (bars["low"] <= bars[["open", "close"]].min(axis=1)).all()
    assert (bars[["open", "high", "low", "close"]] > 0).all().all()
    assert (bars["volume"] >= 0).all()
    assert bars[list(BAR_COLUMNS)].notna().all().all()
    for _, group in bars.groupby("symbol"):
        assert (group["open"].to_numpy()[1:] == group["close"].to_numpy()[:-1]).all()


# --- the table -------------------------------------------------------------------------------------


def test_canonical_table(short_bars: pd.DataFrame) -> None:
    assert list(short_bars.columns) == list(BAR_COLUMNS)
    assert str(short_bars["ts"].dtype) == "datetime64[ns, UTC]"
    pd.testing.assert_frame_equal(short_bars, conform_bars(short_bars))
    assert len(short_bars) == 3 * 3 * 1440
    ordered = short_bars.sort_values(["symbol", "ts"], kind="stable").reset_index(drop=True)
    pd.testing.assert_frame_equal(short_bars, ordered)
    assert list(short_bars["symbol"].unique()) == sorted(DEFAULT_SYMBOLS)


def test_same_seed_same_bars_other_seed_other_bars(short_bars: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(generate_bars(days=3), short_bars)
    other = generate_bars(days=3, seed=7)
    pd.testing.assert_frame_equal(other[["ts", "symbol"]], short_bars[["ts", "symbol"]])
    assert not np.array_equal(other["close"].to_numpy(), short_bars["close"].to_numpy())
    assert not np.array_equal(other["volume"].to_numpy(), short_bars["volume"].to_numpy())


def test_a_symbol_does_not_depend_on_its_companions_and_a_shorter_run_is_a_prefix(
    short_bars: pd.DataFrame,
) -> None:
    alone = generate_bars(symbols=("ethusdt",), days=3)
    eth = short_bars[short_bars["symbol"] == "ETHUSDT"].reset_index(drop=True)
    pd.testing.assert_frame_equal(alone, eth, check_categorical=False)  # eth keeps the other symbols' codes
    one_day = generate_bars(days=1)
    head = short_bars[short_bars["ts"] < pd.Timestamp("2024-01-02", tz="UTC")].reset_index(drop=True)
    pd.testing.assert_frame_equal(one_day, head)


def test_ohlc_invariants(short_bars: pd.DataFrame) -> None:
    assert_ohlc_consistent(short_bars)
    assert (short_bars["high"] > short_bars["low"]).mean() > 0.99  # bars have a range


def test_no_gaps_and_strictly_increasing(short_bars: pd.DataFrame) -> None:
    for _, group in short_bars.groupby("symbol"):
        steps = group["ts"].diff().dropna()
        assert (steps == pd.Timedelta(minutes=1)).all()
        assert group["ts"].iloc[0] == pd.Timestamp("2024-01-01", tz="UTC")
        assert group["ts"].iloc[-1] == pd.Timestamp("2024-01-03 23:59", tz="UTC")


@settings(max_examples=15, deadline=None)
@given(
    seed=st.integers(min_value=0, max_value=2**32 - 1),
    days=st.integers(min_value=1, max_value=3),
    interval=st.sampled_from(["1min", "5min", "15min", "1h"]),
    symbols=st.sets(st.sampled_from(DEFAULT_SYMBOLS), min_size=1),
)
def test_invariants_hold_for_any_seed_and_interval(seed, days, interval, symbols) -> None:
    bars = generate_bars(symbols=tuple(symbols), days=days, seed=seed, interval=interval)
    step = pd.Timedelta(interval)
    assert len(bars) == len(symbols) * days * pd.Timedelta(days=1) // step
    assert_ohlc_consistent(bars)
    for _, group in bars.groupby("symbol"):
        assert (group["ts"].diff().dropna() == step).all()


def test_spread_and_levels_follow_the_calibration(short_bars: pd.DataFrame) -> None:
    reference = load_symbol_info(DATA_DIR / "symbols.yaml")
    for symbol, group in short_bars.groupby("symbol"):
        cal = CALIBRATION[symbol]
        assert cal.spread_bps == reference[symbol].spread_bps
        assert (group["spread_bps"] == cal.spread_bps).all()
        assert group["open"].iloc[0] == cal.start_price
        assert 0.7 * cal.start_price < group["close"].iloc[-1] < 1.3 * cal.start_price
        ticks = group[["open", "high", "low", "close"]].to_numpy() * 10**cal.price_decimals
        np.testing.assert_allclose(ticks, np.round(ticks), atol=1e-6)


def test_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="no calibration"):
        generate_bars(symbols=("DOGEUSDT",), days=1)
    with pytest.raises(ValueError, match="boundary"):
        generate_bars(start="2024-01-01 00:02", days=1, interval="5min")
    with pytest.raises(ValueError, match="interval"):
        generate_bars(days=1, interval="7min")
    with pytest.raises(ValueError, match="days"):
        generate_bars(days=0)
    with pytest.raises(ValueError, match="duplicate"):
        generate_bars(symbols=("BTCUSDT", "btcusdt"), days=1)


# --- calibration (90 days) -------------------------------------------------------------------------

VOL_BANDS = {"BTCUSDT": (0.025, 0.030), "ETHUSDT": (0.030, 0.035), "SOLUSDT": (0.045, 0.055)}


def test_daily_volatility_within_the_calibrated_band(full_returns: pd.DataFrame) -> None:
    realised = np.sqrt((full_returns**2).resample("1D").sum().mean())
    closes = np.exp(full_returns.cumsum())
    close_to_close = np.log(closes.resample("1D").last()).diff().dropna().std()
    for symbol, (low, high) in VOL_BANDS.items():
        assert low <= realised[symbol] <= high, (symbol, realised[symbol])
        # 89 daily returns: a looser band for the sampling error
        assert 0.8 * low <= close_to_close[symbol] <= 1.2 * high, (symbol, close_to_close[symbol])


def test_correlations_of_one_minute_returns(full_returns: pd.DataFrame) -> None:
    corr = full_returns.corr()
    btc_eth = corr.loc["BTCUSDT", "ETHUSDT"]
    btc_sol = corr.loc["BTCUSDT", "SOLUSDT"]
    eth_sol = corr.loc["ETHUSDT", "SOLUSDT"]
    assert btc_eth > 0.5
    assert 0.70 <= btc_eth <= 0.85
    assert 0.55 <= btc_sol <= 0.70
    assert 0.55 <= eth_sol <= 0.70
    assert btc_eth > max(btc_sol, eth_sol)


def test_fat_tails_regimes_and_volume_shape(full_bars: pd.DataFrame, full_returns: pd.DataFrame) -> None:
    # jumps: 1-minute returns are far from normal
    assert (full_returns.kurt() > 10).all()
    # regimes: daily realised volatility varies a lot over the quarter
    daily = np.sqrt((full_returns**2).resample("1D").sum())
    assert (daily.max() / daily.min() > 2.5).all()
    btc = full_bars[full_bars["symbol"] == "BTCUSDT"].set_index("ts")
    hour = btc.index.hour
    us_session = btc["volume"][(hour >= 14) & (hour < 16)].mean()
    asian_lull = btc["volume"][(hour >= 4) & (hour < 6)].mean()
    assert us_session > 1.5 * asian_lull
    # volume rises with the size of the move
    abs_ret = full_returns["BTCUSDT"].abs()
    assert btc["volume"].reindex(abs_ret.index).corr(abs_ret, method="spearman") > 0.2


# --- Binance kline files ---------------------------------------------------------------------------


def test_binance_kline_format(tmp_path: Path) -> None:
    bars = generate_bars(start="2024-01-30", days=3)  # crosses a month end
    paths = write_binance_klines(bars, tmp_path, "btcusdt")
    assert [p.name for p in paths] == ["BTCUSDT-1m-2024-01.csv.gz", "BTCUSDT-1m-2024-02.csv.gz"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [p.name for p in paths]  # no leftovers

    first_line = gzip.decompress(paths[0].read_bytes()).decode("ascii").splitlines()[0]
    fields = first_line.split(",")
    assert len(fields) == 12
    assert fields[0] == "1706572800000"  # 2024-01-30 00:00 UTC in ms: no header
    assert all(re.fullmatch(r"\d+\.\d{2}", f) for f in fields[1:5])
    assert re.fullmatch(r"\d+\.\d{5}", fields[5])  # BTC lot 0.00001
    assert fields[11] == "0"

    frames = [read_klines(p) for p in paths]
    assert [len(f) for f in frames] == [2 * 1440, 1440]
    klines = pd.concat(frames, ignore_index=True)
    assert klines.shape[1] == 12
    for column in ("open_time", "close_time", "trades", "ignore"):
        assert pd.api.types.is_integer_dtype(klines[column])
    assert (klines["close_time"] == klines["open_time"] + 59_999).all()
    assert (klines["ignore"] == 0).all()
    assert (klines["trades"] >= 1).all()
    assert (klines["taker_buy_base"] <= klines["volume"]).all()
    assert (klines["taker_buy_quote"] <= klines["quote_volume"]).all()
    assert (klines["quote_volume"] >= klines["volume"] * klines["low"] * 0.999).all()

    btc = bars[bars["symbol"] == "BTCUSDT"].reset_index(drop=True)
    expected_ms = pd.DatetimeIndex(btc["ts"]).as_unit("ms").asi8
    np.testing.assert_array_equal(klines["open_time"].to_numpy(), expected_ms)
    for column in ("open", "high", "low", "close", "volume"):  # reading back gives the bars exactly
        np.testing.assert_array_equal(klines[column].to_numpy(), btc[column].to_numpy())


def test_binance_kline_file_names_follow_the_interval(tmp_path: Path) -> None:
    bars = generate_bars(symbols=("SOLUSDT",), days=2, interval="5min")
    (path,) = write_binance_klines(bars, tmp_path, "SOLUSDT")
    assert path.name == binance_month_file_name("SOLUSDT", "5m", 2024, 1) == "SOLUSDT-5m-2024-01.csv.gz"
    klines = read_klines(path)
    assert (klines["close_time"] == klines["open_time"] + 299_999).all()
    with pytest.raises(ValueError, match="no bars"):
        write_binance_klines(bars, tmp_path, "BTCUSDT")


def test_month_files_regenerate_byte_identical(tmp_path: Path, short_bars: pd.DataFrame) -> None:
    (first,) = write_binance_klines(short_bars, tmp_path / "a", "ETHUSDT")
    (second,) = write_binance_klines(generate_bars(days=3), tmp_path / "b", "ETHUSDT")
    assert first.read_bytes() == second.read_bytes()
    assert first.read_bytes()[4:8] == b"\x00\x00\x00\x00"  # gzip mtime 0
    (again,) = write_binance_klines(short_bars, tmp_path / "a", "ETHUSDT")  # overwrites in place
    assert again == first and again.read_bytes() == second.read_bytes()


# --- shipped data ----------------------------------------------------------------------------------


def test_ensure_shipped_data_only_writes_missing_files(tmp_path: Path) -> None:
    spec = {"symbols": ("BTCUSDT", "SOLUSDT"), "start": "2024-01-31", "days": 2, "seed": 5}
    names = shipped_file_names(spec["symbols"], spec["start"], spec["days"])
    assert names == [
        "BTCUSDT-1m-2024-01.csv.gz",
        "BTCUSDT-1m-2024-02.csv.gz",
        "SOLUSDT-1m-2024-01.csv.gz",
        "SOLUSDT-1m-2024-02.csv.gz",
    ]
    written = ensure_shipped_data(tmp_path, **spec)
    assert [p.name for p in written] == names
    originals = {p.name: p.read_bytes() for p in written}
    assert ensure_shipped_data(tmp_path, **spec) == []
    assert shipped_file_paths(tmp_path, **spec) == [tmp_path / n for n in names]

    (tmp_path / names[1]).unlink()
    (tmp_path / names[2]).unlink()
    kept = tmp_path / names[0]
    kept.write_bytes(b"edited by hand")
    mtime = kept.stat().st_mtime_ns
    rewritten = ensure_shipped_data(tmp_path, **spec)
    assert [p.name for p in rewritten] == [names[1], names[2]]
    assert kept.read_bytes() == b"edited by hand" and kept.stat().st_mtime_ns == mtime
    for path in rewritten:
        assert path.read_bytes() == originals[path.name]
    assert sorted(p.name for p in tmp_path.iterdir()) == names


def test_shipped_files_are_present_within_budget_and_reproducible(tmp_path: Path) -> None:
    names = shipped_file_names()
    assert len(names) == 9 and names[-1] == "SOLUSDT-1m-2024-03.csv.gz"
    present = [SHIPPED_BARS / n for n in names if (SHIPPED_BARS / n).exists()]
    assert sum(p.stat().st_size for p in present) < 25 * 2**20
    shipped = SHIPPED_BARS / "SOLUSDT-1m-2024-01.csv.gz"
    if not shipped.exists():
        pytest.skip("January SOLUSDT file not shipped")
    # A shorter run is a prefix of the 90-day one, so 31 days reproduce January exactly. The text is
    # compared, not the gzip bytes, which also depend on the zlib build.
    (regenerated,) = write_binance_klines(generate_bars(symbols=("SOLUSDT",), days=31), tmp_path, "SOLUSDT")
    assert gzip.decompress(regenerated.read_bytes()) == gzip.decompress(shipped.read_bytes())
