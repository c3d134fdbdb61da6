"""``depth_collapse``: the bars' side of an order-book depth stress.

The book's side (resting size x the factor path, on one or both sides) is applied where books are
built, by ``scenarios.depth_books.scenario_books``, from this transform's windows. On the bars, the
spread is multiplied by ``factor ** -spread_elasticity`` over the same window (``book.stress.
collapse_path``: the full drop for ``duration_bars``, a linear recovery over ``recovery_bars``), so
spread and depth move together; prices and volume are untouched. Every window bar is flagged
``stressed`` (the depth moves there even when the spread does not). The result gives per symbol the
window's first and last bar and the bar before it; no ``expected_drop``: no price move is promised.
"""

from __future__ import annotations

import numpy as np

from stress_pipeline.book.stress import collapse_path
from stress_pipeline.scenarios.arrays import BarArrays
from stress_pipeline.scenarios.result import StressResult
from stress_pipeline.scenarios.transforms import register
from stress_pipeline.scenarios.transforms.path_factor import window_rows
from stress_pipeline.scenarios.transforms.volume_spread import scale_volume_spread
from stress_pipeline.scenarios.windows import resolve_starts

__all__ = ["depth_collapse", "depth_factors"]


def depth_factors(parameters) -> np.ndarray:
    """The depth factor of each bar of a ``depth_collapse`` window."""
    return collapse_path(parameters.drop_pct, parameters.duration_bars, parameters.recovery_bars)


@register("depth_collapse")
def depth_collapse(scenario, bars: BarArrays, segments: np.ndarray) -> StressResult:
    """Spread x factor ** -spread_elasticity over the window; the window's bars flagged stressed."""
    p = scenario.parameters
    factors = depth_factors(p)
    span = len(factors)
    starts = resolve_starts(scenario, bars, segments, span)
    rows = window_rows(starts, span)
    arrays = bars.copy_arrays("spread_bps", "stressed")
    scale_volume_spread(arrays, rows.ravel(), 1.0, np.tile(factors ** -p.spread_elasticity, len(starts)))
    arrays["stressed"][rows.ravel()] = True
    symbols = [bars.symbols[s] for s in segments]
    first, last, before = bars.ts[starts].tolist(), bars.ts[starts + span - 1].tolist(), bars.ts[starts - 1].tolist()
    return StressResult(
        bars=bars.replace(**arrays),
        windows={s: (a, b) for s, a, b in zip(symbols, first, last, strict=True)},
        pre_shock_ns=dict(zip(symbols, before, strict=True)),
    )
