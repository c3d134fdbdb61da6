"""Synthetic order books for bars that come without depth data, deterministic for a seed.

Each bar gets a book of ``levels`` levels per side around its close, calibrated from the bar itself
so that walking the book costs what the bars-only simulator's square-root impact charges:

* **Mid and spread**: the mid is the bar's close; the touch sits half the bar's ``spread_bps`` away on
  each side (a bar without a spread takes its symbol's ``spread_bps`` from data/symbols.yaml, through
  ``market.symbols.symbol_market``). Prices are on the symbol's tick (bids rounded down, asks up,
  levels at least a tick apart, the book never crossed).
* **Volatility and spacing**: sigma is the bar's Parkinson volatility in bps, 1e4 ln(high/low) /
  (2 sqrt(ln 2)) (``trading.exchange.fills.parkinson_bps``), floored at the spread and one tick so
  that a flat bar still has a book. Levels are ``impact_k`` sigma / ``levels`` bps apart, so the book
  reaches ``impact_k`` sigma beyond the touch.
* **Depth from volume**: the depth within level i is V ((i + 1) / L)^2 on each side (V the bar's
  volume, L the levels), i.e. level i holds V (2 i + 1) / L^2 and each side holds one bar's volume in
  all. A market order for q then walks ``impact_k`` sigma (sqrt(q / V) - 1 / L) past the touch: the
  square-root law (Toth et al. 2011) that ``FillConfig.impact_k`` prices in the bars-only model, to
  within one level, here as the marginal price (the average over the walk is about 2/3 of it).
  Orders of more than V exhaust the side: a partial fill. A bar with no volume has an
  empty book, and bid levels that would be priced at or below zero are left empty.
* **Noise**: each level's size is multiplied by exp(``noise`` z - ``noise``^2 / 2), z standard normal
  from ``numpy.random.default_rng((seed, crc32(symbol)))``, so a symbol's book depends on its own bars
  and the seed only (mean preserved; ``noise=0`` gives the exact profile).

Vectorised over all bars of a symbol; the only loop is over symbols.
"""

from __future__ import annotations

import math
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from stress_pipeline.book.schema import DenseBook
from stress_pipeline.market.schema import conform_bars, symbol_codes
from stress_pipeline.market.symbols import SymbolMarket, symbol_market

_PARKINSON = 2.0 * math.sqrt(math.log(2.0))


def synthetic_books(
    bars: pd.DataFrame,
    *,
    levels: int = 20,
    seed: int = 0,
    impact_k: float = 1.0,
    noise: float = 0.25,
    symbols_file: Path | None = None,
) -> dict[str, DenseBook]:
    """A :class:`DenseBook` per symbol of canonical ``bars``, one book per bar (calibration above).

    ``symbols_file`` (data/symbols.yaml) gives each symbol's tick size and default spread; None uses
    the defaults of ``SymbolMarket`` (tick 0.01, spread 5 bps).
    """
    if levels < 1:
        raise ValueError(f"levels must be >= 1 (got {levels})")
    if impact_k <= 0 or noise < 0:
        raise ValueError(f"impact_k must be > 0 and noise >= 0 (got {impact_k}, {noise})")
    bars = conform_bars(bars)
    codes, names = symbol_codes(bars)
    out = {}
    for code in np.unique(codes):
        rows = np.flatnonzero(codes == code)
        name = str(names[code])
        market = symbol_market(symbols_file, name) if symbols_file is not None else SymbolMarket()
        out[name] = symbol_book(
            np.asarray(bars["ts"].array.asi8)[rows], bars["high"].to_numpy()[rows], bars["low"].to_numpy()[rows],
            bars["close"].to_numpy()[rows], bars["volume"].to_numpy()[rows], bars["spread_bps"].to_numpy()[rows],
            levels=levels, tick=market.tick_size, default_spread_bps=market.spread_bps, impact_k=impact_k,
            noise=noise, rng=np.random.default_rng((seed, zlib.crc32(name.encode()))),
        )  # fmt: skip
    return out


def symbol_book(ts, high, low, close, volume, spread_bps, *, levels: int, tick: float, default_spread_bps: float,
                impact_k: float, noise: float, rng: np.random.Generator) -> DenseBook:  # fmt: skip
    """One symbol's books from its bar columns (see the module docstring)."""
    n = len(ts)
    spread = np.where(np.isfinite(spread_bps), spread_bps, default_spread_bps)
    with np.errstate(divide="ignore", invalid="ignore"):
        sigma = np.where((low > 0) & (high > low), 1e4 * np.log(high / low) / _PARKINSON, 0.0)
    tick_bps = 1e4 * tick / close
    sigma = np.maximum(np.maximum(sigma, spread), tick_bps)
    step = impact_k * sigma / levels  # bps between levels
    offset = spread[:, None] / 2.0 + step[:, None] * np.arange(levels)  # bps from the mid, level 0 first
    raw_bid = np.floor(close[:, None] * (1.0 - offset * 1e-4) / tick + 1e-9)
    raw_ask = np.ceil(close[:, None] * (1.0 + offset * 1e-4) / tick - 1e-9)
    steps = np.arange(levels)
    ask_ticks = np.maximum.accumulate(raw_ask - steps, axis=1) + steps  # strictly rising, never below the raw
    bid_ticks = np.minimum.accumulate(raw_bid + steps, axis=1) - steps  # strictly falling
    lift = np.maximum(bid_ticks[:, :1] + 1 - ask_ticks[:, :1], 0)  # a zero spread still leaves one tick
    ask_ticks = ask_ticks + lift
    profile = volume[:, None] * (2.0 * steps + 1.0) / levels**2
    shocks = np.exp(noise * rng.standard_normal((2, n, levels)) - noise**2 / 2.0) if noise > 0 else np.ones((2, 1, 1))
    bid_px, bid_sz = bid_ticks * tick, profile * shocks[0]
    below_zero = bid_ticks <= 0  # a bar so wild that deep bids would be priced at or below 0: no such level
    bid_px[below_zero], bid_sz[below_zero] = np.nan, 0.0
    return DenseBook(ts=np.asarray(ts, dtype=np.int64), bid_px=bid_px, bid_sz=bid_sz, ask_px=ask_ticks * tick,
                     ask_sz=profile * shocks[1])  # fmt: skip
