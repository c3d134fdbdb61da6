"""The books a scenario's paper run fills against: synthetic books from its stressed bars, with a
``depth_collapse`` scenario's collapse applied over the windows its transform chose.

Books are built from the stressed bars (so a crash's wider spread and range already shape them:
``book.synthetic``), then, for ``depth_collapse``, each symbol's resting size on the scenario's side
is multiplied by the factor path from the first bar of its window (``book.stress.collapse_book``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from stress_pipeline.book.schema import DenseBook
from stress_pipeline.book.stress import collapse_book
from stress_pipeline.book.synthetic import synthetic_books
from stress_pipeline.scenarios.arrays import BarArrays
from stress_pipeline.scenarios.lengths import in_bars
from stress_pipeline.scenarios.result import StressResult
from stress_pipeline.scenarios.transforms.depth import depth_factors
from stress_pipeline.scenarios.windows import bar_interval_ns


def scenario_books(
    scenario, result: StressResult, *, levels: int = 20, impact_k: float = 1.0, noise: float = 0.25,
    symbols_file: Path | None = None, calendar: str | None = None,
) -> dict[str, DenseBook]:  # fmt: skip
    """One book per bar and symbol of ``result`` (the scenario applied), seeded by the scenario's seed.
    ``calendar``: the market's, for lengths given in time (as ``run_scenario`` took them)."""
    books = synthetic_books(result.bars.to_frame(copy=False), levels=levels, seed=scenario.seed, impact_k=impact_k,
                            noise=noise, symbols_file=symbols_file)  # fmt: skip
    if scenario.type != "depth_collapse":
        return books
    factors = depth_factors(_in_bars(scenario, result.bars, calendar).parameters)
    for symbol, (start_ns, _end_ns) in result.windows.items():
        book = books[symbol]
        first = int(np.searchsorted(book.ts, start_ns))
        books[symbol] = collapse_book(book, first + np.arange(len(factors)), factors, scenario.parameters.side)
    return books


def stressed_books(
    scenario, stressed: pd.DataFrame, *, levels: int = 20, impact_k: float = 1.0, noise: float = 0.25,
    symbols_file: Path | None = None, calendar: str | None = None,
) -> dict[str, DenseBook]:  # fmt: skip
    """:func:`scenario_books` from the stored stressed bars alone (what the simulation assets hold):
    a ``depth_collapse`` window is where its transform flagged the bars ``stressed`` (it flags exactly
    the window), so it is read back from the flags; a count that does not match the scenario's window
    is an error, never guessed around."""
    books = synthetic_books(stressed, levels=levels, seed=scenario.seed, impact_k=impact_k, noise=noise,
                            symbols_file=symbols_file)  # fmt: skip
    if scenario.type != "depth_collapse":
        return books
    factors = depth_factors(_in_bars(scenario, BarArrays.from_frame(stressed), calendar).parameters)
    flags = stressed["stressed"].to_numpy(dtype=bool)
    names = stressed["symbol"].to_numpy(dtype=object)
    for symbol, book in books.items():
        window = np.flatnonzero(flags[names == symbol])
        if len(window) != len(factors) or (len(window) and window[-1] - window[0] + 1 != len(window)):
            raise ValueError(f"scenario '{scenario.name}': {symbol} has {len(window)} stressed bars, expected one "
                             f"window of {len(factors)} (duration_bars + recovery_bars)")  # fmt: skip
        books[symbol] = collapse_book(book, window, factors, scenario.parameters.side)
    return books


def _in_bars(scenario, bars: BarArrays, calendar: str | None):
    """The scenario with lengths given in time as bars of ``bars`` (what its transform was given)."""
    return in_bars(scenario, bar_interval_ns(bars), calendar, bars.ts)
