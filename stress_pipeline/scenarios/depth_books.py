"""The books a scenario's paper run fills against: synthetic books from its stressed bars, with a
``depth_collapse`` scenario's collapse applied over the windows its transform chose.

Books are built from the stressed bars (so a crash's wider spread and range already shape them:
``book.synthetic``), then, for ``depth_collapse``, each symbol's resting size on the scenario's side
is multiplied by the factor path from the first bar of its window (``book.stress.collapse_book``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from stress_pipeline.book.schema import DenseBook
from stress_pipeline.book.stress import collapse_book
from stress_pipeline.book.synthetic import synthetic_books
from stress_pipeline.scenarios.result import StressResult
from stress_pipeline.scenarios.transforms.depth import depth_factors


def scenario_books(
    scenario, result: StressResult, *, levels: int = 20, impact_k: float = 1.0, noise: float = 0.25,
    symbols_file: Path | None = None,
) -> dict[str, DenseBook]:  # fmt: skip
    """One book per bar and symbol of ``result`` (the scenario applied), seeded by the scenario's seed."""
    books = synthetic_books(result.bars.to_frame(copy=False), levels=levels, seed=scenario.seed, impact_k=impact_k,
                            noise=noise, symbols_file=symbols_file)  # fmt: skip
    if scenario.type != "depth_collapse":
        return books
    factors = depth_factors(scenario.parameters)
    for symbol, (start_ns, _end_ns) in result.windows.items():
        book = books[symbol]
        first = int(np.searchsorted(book.ts, start_ns))
        books[symbol] = collapse_book(book, first + np.arange(len(factors)), factors, scenario.parameters.side)
    return books
