"""Liquidity stresses: thin volume and wide spreads on a window of bars, prices untouched.

A strategy that trades on stressed prices also needs the cost side of a stress: fewer contracts to
trade against and a wider spread to cross. These types isolate that side.

* ``liquidity_drop``: in the window, volume x (1 - drop_pct) and spread x (1 - drop_pct) **
  -spread_elasticity. With the default elasticity 0.5 the spread scales with 1 / sqrt(volume), the
  square-root law of market microstructure: 90% less volume widens the spread sqrt(10) = 3.16 times.
  Elasticity 0 leaves the spread alone, 1 makes it inversely proportional to volume.
* ``spread_explosion``: spread x spread_mult in the window; volume unchanged.

The window is ``duration_bars`` bars from the scenario's start (drawn from the seed when none is given).
The result gives, per symbol, ``windows`` (first and last bar of the window), ``pre_shock_ns`` (the bar
just before it) and no ``expected_drop``: these stresses promise no price move.
"""

from __future__ import annotations

import numpy as np

from stress_pipeline.scenarios.arrays import BarArrays
from stress_pipeline.scenarios.result import StressResult
from stress_pipeline.scenarios.transforms import register
from stress_pipeline.scenarios.transforms.path_factor import window_rows
from stress_pipeline.scenarios.transforms.volume_spread import scale_volume_spread
from stress_pipeline.scenarios.windows import resolve_starts

__all__ = ["liquidity_drop", "liquidity_factors", "spread_explosion"]


@register("liquidity_drop")
def liquidity_drop(scenario, bars: BarArrays, segments: np.ndarray) -> StressResult:
    """Volume x (1 - drop_pct) and spread x (1 - drop_pct) ** -spread_elasticity over the window."""
    p = scenario.parameters
    volume_factor, spread_factor = liquidity_factors(p.drop_pct, p.spread_elasticity)
    return _scale_window(scenario, bars, segments, p.duration_bars, volume_factor, spread_factor)


@register("spread_explosion")
def spread_explosion(scenario, bars: BarArrays, segments: np.ndarray) -> StressResult:
    """Spread x spread_mult over the window."""
    p = scenario.parameters
    return _scale_window(scenario, bars, segments, p.duration_bars, 1.0, p.spread_mult)


def liquidity_factors(drop_pct: float, spread_elasticity: float) -> tuple[float, float]:
    """The volume and spread multipliers of a liquidity drop: ``(1 - d, (1 - d) ** -elasticity)``."""
    kept = 1.0 - drop_pct
    return kept, kept**-spread_elasticity


def _scale_window(
    scenario, bars: BarArrays, segments: np.ndarray, span: int, volume_factor: float, spread_factor: float
) -> StressResult:
    starts = resolve_starts(scenario, bars, segments, span)
    rows = window_rows(starts, span)
    names = ("volume", "spread_bps", "stressed") if volume_factor != 1.0 else ("spread_bps", "stressed")
    arrays = bars.copy_arrays(*names)
    scale_volume_spread(arrays, rows.ravel(), volume_factor, spread_factor)
    symbols = [bars.symbols[s] for s in segments]
    first, last, before = bars.ts[starts].tolist(), bars.ts[starts + span - 1].tolist(), bars.ts[starts - 1].tolist()
    return StressResult(
        bars=bars.replace(**arrays),
        windows={s: (a, b) for s, a, b in zip(symbols, first, last, strict=True)},
        pre_shock_ns=dict(zip(symbols, before, strict=True)),
    )
