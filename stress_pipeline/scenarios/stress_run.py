"""One scenario applied to its base bars, with everything a report needs about it."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from stress_pipeline.scenarios.apply import run_scenario, select_symbols
from stress_pipeline.scenarios.arrays import BarArrays
from stress_pipeline.scenarios.result import StressResult
from stress_pipeline.scenarios.stats import realised_stats


@dataclass(frozen=True)
class StressRun:
    scenario: object
    base: BarArrays  # the scenario's symbols only
    result: StressResult
    stressed: pd.DataFrame
    stats: pd.DataFrame  # one row per symbol (see stress_pipeline.scenarios.stats)
    calendar: str | None = None  # the market's calendar lengths given in time were converted with


def stress_scenario(scenario, base_bars: pd.DataFrame | BarArrays, calendar: str | None = None) -> StressRun:
    """Apply ``scenario`` to ``base_bars`` and measure what it did (``calendar``: the market's, for
    lengths given in time)."""
    arrays = base_bars if isinstance(base_bars, BarArrays) else BarArrays.from_frame(base_bars)
    base = select_symbols(arrays, scenario.symbols)
    result = run_scenario(scenario, base, calendar)
    return StressRun(
        scenario=scenario,
        base=base,
        result=result,
        stressed=result.bars.to_frame(),
        stats=realised_stats(base, result),
        calendar=calendar,
    )
