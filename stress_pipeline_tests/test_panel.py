"""The market-data guard both simulations share: what it rejects, and what it keeps tradable."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stress_pipeline.market.intervals import bar_interval_ns
from stress_pipeline.market.panel import prepare_panel
from stress_pipeline.market.synthetic import generate_bars


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    return generate_bars(symbols=("BTCUSDT", "ETHUSDT"), days=1)


def test_clean_bars_are_all_tradable(bars: pd.DataFrame) -> None:
    panel, report = prepare_panel(bars)
    assert panel.symbols == ("BTCUSDT", "ETHUSDT") and panel.shape == (1440, 2)
    assert panel.tradable.all() and report.total_rejected == 0 and panel.bar_seconds == 60.0
    btc = bars[bars["symbol"] == "BTCUSDT"]["close"].to_numpy()
    np.testing.assert_array_equal(panel.close[:, 0], btc)


def test_guard_rejects_bad_rows_and_serves_the_last_good_close(bars: pd.DataFrame) -> None:
    bad = bars.copy()
    btc = bad.index[bad["symbol"] == "BTCUSDT"]
    bad.loc[btc[100], "close"] = np.nan  # missing value
    bad.loc[btc[200], "high"] = bad.loc[btc[200], "high"] * 10  # bad tick in the high
    bad.loc[btc[300], ["open", "high", "low", "close"]] *= 8  # whole bar off by 8x
    duplicate = bad.loc[[btc[400]]]
    bad = pd.concat([bad, duplicate]).sort_values(["symbol", "ts"], kind="stable", ignore_index=True)
    panel, report = prepare_panel(bad)
    reasons = report.rejected["BTCUSDT"]
    assert reasons == {"out_of_order_or_duplicate": 1, "bad_value": 1, "inconsistent_ohlc": 0, "spike": 2}
    assert panel.shape == (1440, 2)
    for row in (100, 200, 300):
        assert not panel.tradable[row, 0]
        assert panel.close[row, 0] == panel.close[row - 1, 0]  # the last accepted close
        assert panel.volume[row, 0] == 0
    assert panel.tradable[:, 1].all()  # ETH untouched


def test_halted_and_missing_bars_are_not_tradable(bars: pd.DataFrame) -> None:
    stressed = bars.assign(stressed=False, corrupted=False, halted=False)
    eth = stressed.index[stressed["symbol"] == "ETHUSDT"]
    stressed.loc[eth[10:20], "halted"] = True
    stressed = stressed.drop(index=eth[500:503])
    panel, report = prepare_panel(stressed)
    assert report.halted_bars == 10 and report.missing_bars == 3
    assert (~panel.tradable[:, 1]).sum() == 13
    assert panel.volume[500:503, 1].sum() == 0


def test_monte_carlo_paths_must_be_simulated_one_at_a_time(bars: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="one path at a time"):
        prepare_panel(pd.concat([bars.assign(path=0), bars.assign(path=1)]))


# ------------------------------------------------------------------ the guard against a per-symbol reference


def _reference_panel(bars: pd.DataFrame, spike_threshold: float = 0.5):
    """The guard written the plain way: one symbol at a time with pandas (the implementation it replaced)."""
    bars = bars.assign(symbol=bars["symbol"].astype(str))
    symbols = tuple(sorted(bars["symbol"].unique()))
    per_symbol, rejected = {}, {}
    for symbol in symbols:
        per_symbol[symbol], rejected[symbol] = _reference_guard(bars[bars["symbol"] == symbol], spike_threshold)
    ts = np.unique(np.concatenate([frame.index.to_numpy(dtype=np.int64) for frame in per_symbol.values()]))
    shape = (len(ts), len(symbols))
    arrays = {name: np.empty(shape) for name in ("open", "high", "low", "close", "volume", "spread_bps")}
    tradable = np.zeros(shape, dtype=bool)
    missing = 0
    for j, symbol in enumerate(symbols):
        frame = per_symbol[symbol].reindex(ts)
        present = frame["close"].notna().to_numpy()
        missing += int((~present).sum())
        frame = frame.ffill().bfill()
        for name in arrays:
            arrays[name][:, j] = frame[name].to_numpy(dtype=np.float64)
        arrays["volume"][~present, j] = 0.0
        for name in ("open", "high", "low"):
            arrays[name][~present, j] = arrays["close"][~present, j]
        tradable[:, j] = present & frame["ok"].fillna(False).to_numpy(dtype=bool)
    halted = int(bars["halted"].sum()) if "halted" in bars.columns else 0
    return symbols, ts, arrays, tradable, rejected, halted, missing


def _reference_guard(rows: pd.DataFrame, threshold: float):
    ts = np.asarray(rows["ts"].array.asi8, dtype=np.int64)
    running_max = np.maximum.accumulate(ts)
    backwards = np.zeros(len(ts), dtype=bool)
    backwards[1:] = ts[1:] <= running_max[:-1]
    o, h, low, c = (rows[name].to_numpy(dtype=np.float64) for name in ("open", "high", "low", "close"))
    with np.errstate(invalid="ignore", divide="ignore"):
        bad_value = ~np.isfinite(o + h + low + c) | (np.minimum.reduce([o, h, low, c]) <= 0)
        inconsistent = ~bad_value & ((h < np.maximum(o, c)) | (low > np.minimum(o, c)))
        keep = ~backwards
        candidate = keep & ~bad_value & ~inconsistent
        wide_bar = candidate & (np.log(h / low) > threshold)
    spike = wide_bar | _reference_spikes(c, candidate & ~wide_bar, threshold)
    ok = candidate & ~spike
    halted = rows["halted"].to_numpy(dtype=bool) if "halted" in rows.columns else np.zeros(len(ts), dtype=bool)
    frame = pd.DataFrame(
        {"open": o, "high": h, "low": low, "close": c, "volume": rows["volume"].to_numpy(dtype=np.float64),
         "spread_bps": rows["spread_bps"].to_numpy(dtype=np.float64), "ok": ok & ~halted},
        index=ts,
    )[keep]
    accepted = ok[keep]
    for name in ("open", "high", "low", "close", "spread_bps"):
        frame.loc[~accepted, name] = np.nan
    frame.loc[~accepted, "volume"] = 0.0
    carried = ["open", "high", "low", "close", "spread_bps"]
    frame[carried] = frame[carried].ffill()
    frame.loc[~accepted, ["open", "high", "low"]] = frame.loc[~accepted, ["close"]].to_numpy().repeat(3, axis=1)
    reasons = {
        "out_of_order_or_duplicate": int(backwards.sum()),
        "bad_value": int((keep & bad_value).sum()),
        "inconsistent_ohlc": int((keep & inconsistent).sum()),
        "spike": int(spike.sum()),
    }
    return frame, reasons


def _reference_spikes(close: np.ndarray, candidate: np.ndarray, threshold: float) -> np.ndarray:
    spike = np.zeros(len(close), dtype=bool)
    idx = np.flatnonzero(candidate)
    if len(idx) < 2:
        return spike
    jump = np.abs(np.diff(np.log(close[idx]))) > threshold
    away = np.concatenate([[False], jump])
    back = np.concatenate([jump, [False]])
    isolated = away & back
    isolated[-1] = away[-1]
    spike[idx[isolated]] = True
    return spike


def _random_bars(seed: int) -> pd.DataFrame:
    """A few symbols' bars with every kind of trouble the guard handles, rows interleaved or grouped."""
    rng = np.random.default_rng(seed)
    frames = []
    for name in rng.choice(["AAA", "BBB", "CCC", "DDD"], size=rng.integers(1, 5), replace=False):
        n = int(rng.integers(1, 40))
        steps = rng.choice([1, 1, 1, 1, 2, 3, 0, -1, -3], size=n)
        ts = pd.Timestamp("2024-01-01", tz="UTC").value + np.cumsum(steps) * 60_000_000_000
        close = 100.0 * np.exp(np.cumsum(rng.normal(0, 0.02, n)))
        open_ = close * np.exp(rng.normal(0, 0.01, n))
        high = np.maximum(open_, close) * (1 + rng.uniform(0, 0.01, n))
        low = np.minimum(open_, close) * (1 - rng.uniform(0, 0.01, n))
        prices = {"open": open_, "high": high, "low": low, "close": close}
        for _ in range(int(rng.integers(0, 6))):
            i = int(rng.integers(n))
            kind = rng.integers(6)
            if kind == 0:
                prices[str(rng.choice(list(prices)))][i] = np.nan
            elif kind == 1:
                prices["low"][i] = -1.0 if rng.random() < 0.5 else 0.0
            elif kind == 2:
                prices["high"][i] = prices["low"][i] * 0.99  # high below the rest
            elif kind == 3:
                for column in prices.values():
                    column[i] *= 8.0  # a whole bar off
            elif kind == 4:
                prices["high"][i] *= 10.0  # a wide bar
            else:
                prices["close"][i] *= float(rng.choice([0.2, 3.0]))
        volume = rng.uniform(0, 10, n)
        volume[rng.random(n) < 0.05] = np.nan
        spread = np.full(n, 2.0)
        spread[rng.random(n) < 0.1] = np.nan
        frames.append(pd.DataFrame({"ts": pd.to_datetime(ts, utc=True), "symbol": name, **prices,
                                    "volume": volume, "spread_bps": spread, "halted": rng.random(n) < 0.1}))
    bars = pd.concat(frames, ignore_index=True)
    if rng.random() < 0.5:  # interleave the symbols, each keeping its own row order
        key = rng.random(len(bars))
        names = bars["symbol"].to_numpy()
        for name in set(names):
            rows = np.flatnonzero(names == name)
            key[rows] = np.sort(key[rows])
        bars = bars.iloc[np.argsort(key)].reset_index(drop=True)
    if rng.random() < 0.5:
        bars = bars.assign(symbol=bars["symbol"].astype("category"))
    if rng.random() < 0.3:
        bars = bars.drop(columns="halted")
    return bars


@settings(max_examples=150, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), threshold=st.sampled_from([0.5, 0.2, 1.0]))
def test_guard_on_all_symbols_equals_the_per_symbol_reference(seed: int, threshold: float) -> None:
    bars = _random_bars(seed)
    panel, report = prepare_panel(bars, spike_threshold=threshold)
    symbols, ts, arrays, tradable, rejected, halted, missing = _reference_panel(bars, threshold)
    assert panel.symbols == symbols
    np.testing.assert_array_equal(panel.ts, ts)
    for name, values in arrays.items():
        np.testing.assert_array_equal(getattr(panel, name), values, err_msg=name)
    np.testing.assert_array_equal(panel.tradable, tradable)
    assert report.rejected == rejected
    assert (report.halted_bars, report.missing_bars) == (halted, missing)
    assert panel.bar_seconds == bar_interval_ns(ts) / 1e9
