"""Apply a scenario to bars: the public entry point of the scenario library."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from stress_pipeline.scenarios.arrays import BarArrays
from stress_pipeline.scenarios.exchange_rules import apply_rules
from stress_pipeline.scenarios.lengths import in_bars
from stress_pipeline.scenarios.result import StressResult
from stress_pipeline.scenarios.transforms import load_all
from stress_pipeline.scenarios.windows import bar_interval_ns


class ScenarioDataError(ValueError):
    """The bars do not hold what the scenario needs."""


def select_symbols(bars: BarArrays, symbols: tuple[str, ...]) -> BarArrays:
    """The scenario's symbols only, in the scenario's order (a view when they already are)."""
    if tuple(bars.symbols) == tuple(symbols):
        return bars
    position = {symbol: i for i, symbol in enumerate(bars.symbols)}
    missing = [s for s in symbols if s not in position]
    if missing:
        raise ScenarioDataError(f"no bars for {', '.join(missing)} (have {', '.join(bars.symbols) or 'none'})")
    segments = [bars.segment(position[s]) for s in symbols]
    index = np.concatenate([np.arange(s.start, s.stop) for s in segments])
    lengths = np.array([s.stop - s.start for s in segments], dtype=np.int64)
    arrays = {
        name: getattr(bars, name)[index]
        for name in ("ts", "open", "high", "low", "close", "volume", "spread_bps", "stressed", "corrupted", "halted")
    }
    return BarArrays(
        symbols=tuple(symbols),
        offsets=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
        path=None if bars.path is None else bars.path[index],
        **arrays,
    )


def run_scenario(scenario, bars: pd.DataFrame | BarArrays, calendar: str | None = None) -> StressResult:
    """Apply ``scenario`` to the bars of its symbols; the result says where and how much.

    ``calendar`` (``24/7``, ``XNYS``...; None: 24/7) is the market's: lengths given in time
    (``duration_bars: 15min``, ``horizon_bars: 3d``) become bars of the data's interval, a day being
    one regular session (scenarios/lengths.py). The scenario's ``exchange_rules`` (LULD bands, circuit
    breakers: scenarios/exchange_rules.py) are laid on the transform's bars; what they did is in
    ``result.rules``.
    """
    arrays = bars if isinstance(bars, BarArrays) else BarArrays.from_frame(bars)
    selected = select_symbols(arrays, scenario.symbols)
    interval = bar_interval_ns(selected)
    scenario = in_bars(scenario, interval, calendar, selected.ts)
    transform = load_all()[scenario.type]
    result = transform(scenario, selected, np.arange(len(scenario.symbols)))
    if scenario.exchange_rules is not None:
        result, report = apply_rules(result, scenario.exchange_rules, interval, scenario.name)
        result = replace(result, rules=report.record())
    return result


def apply_scenario(scenario, bars: pd.DataFrame, calendar: str | None = None) -> pd.DataFrame:
    """Stressed canonical bars (with ``stressed``, ``corrupted``, ``halted``) of the scenario's symbols."""
    return run_scenario(scenario, bars, calendar).bars.to_frame(copy=False)
