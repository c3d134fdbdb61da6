"""Shared helpers of the price-path transform tests: bars with known prices, runs, window reads."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd
from hypothesis import reject

from stress_pipeline.market.synthetic import generate_bars
from stress_pipeline.scenarios.apply import select_symbols
from stress_pipeline.scenarios.arrays import PRICE_FIELDS, BarArrays
from stress_pipeline.scenarios.model import SCENARIO_ADAPTER
from stress_pipeline.scenarios.result import StressResult
from stress_pipeline.scenarios.transforms import TRANSFORMS
from stress_pipeline.scenarios.transforms.path_depth import InfeasibleStressError

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
