"""The lookahead guard: prove a strategy does not peek at bars it could not have seen yet.

A backtest that uses tomorrow's close looks brilliant and loses money live; it is the most common
bug in strategy code (``shift(-1)``, a centred rolling window, a normalisation over the whole
history, a ``bfill``). The test is the one freqtrade's lookahead analysis runs: cut the history at
a time t, recompute the strategy on the bars up to t only, and require every weight at or before
t to equal the weight computed on the full history. A causal strategy cannot tell the difference;
a leaking one changes its past when the future is removed.

Cut points are drawn with ``seed``, one in each of ``cut_points`` equal slices of the history (so
they cover early, middle and late bars) and never at the last bar (which would compare the full
history with itself). Weights are compared with a tolerance of ``ATOL`` + ``RTOL`` x |value|
(rolling statistics may round differently at the end of a shorter input).

The guard checks the weights the simulations use: ``target_weights`` on the cleaned panel, read
exactly as the simulations read them (:func:`checked_target_weights`; a strategy written against
``target_positions`` only reaches it through its array wrapper, so both forms are covered). The bars
are cleaned once and the panel is cut, so the test isolates the strategy from the data guard (which
may judge the last bar of a truncated history differently) and costs one cleaning instead of one per
cut. A NaN or out-of-range weight is an error naming its bar and symbol, as in the simulations.
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import pandas as pd

from stress_pipeline.market.panel import MarketPanel, prepare_panel
from stress_pipeline.trading.strategies import as_strategy
from stress_pipeline.trading.strategies.base import checked_target_weights
from stress_pipeline.trading.strategies.windows import at_interval

ATOL = 1e-9
RTOL = 1e-9


class LookaheadViolation(NamedTuple):
    """At cut ``cut_ts``, ``symbol``'s weight first differs at ``ts``: ``full`` vs ``truncated``."""

    cut_ts: pd.Timestamp
    symbol: str
    ts: pd.Timestamp
    full: float
    truncated: float


@dataclass(frozen=True)
class LookaheadReport:
    passed: bool
    violations: list[LookaheadViolation] = field(default_factory=list)
    cuts: list[pd.Timestamp] = field(default_factory=list)
    strategy: str = ""

    def record(self, shown: int = 5) -> dict[str, object]:
        """The report as plain data (what a stored result carries): verdict, strategy, cut count, the
        first ``shown`` violations and the summary line."""
        return {
            "passed": self.passed,
            "strategy": self.strategy,
            "cuts": len(self.cuts),
            "violations": [str(v) for v in self.violations[:shown]],
            "summary": self.summary(),
        }

    def summary(self) -> str:
        if self.passed:
            return f"{self.strategy}: no lookahead at {len(self.cuts)} cut points"
        first = self.violations[0]
        return (
            f"{self.strategy}: lookahead at {len(self.violations)} (cut, symbol) pairs; first: cut {first.cut_ts}, "
            f"{first.symbol} at {first.ts}: {first.full!r} with the full history, "
            f"{first.truncated!r} without the future"
        )


def check_lookahead(
    strategy, bars: pd.DataFrame | MarketPanel, cut_points: int = 8, seed: int = 0, calendar: str | None = None
) -> LookaheadReport:
    """Recompute ``strategy``'s ``target_weights`` (a spec for ``get_strategy``, a strategy object or
    a function) on ``bars`` (canonical bars or a prepared panel) truncated at ``cut_points`` sampled
    bar times; report every (cut, symbol) whose weights at or before the cut change. A weight that
    is NaN, infinite or outside [-1, 1] raises :class:`WeightError`, as it does in the simulations.
    Windows given in time are converted once on the whole data with ``calendar`` (strategies/windows.py)."""
    if isinstance(strategy, str):
        from stress_pipeline.trading import get_strategy

        strat = get_strategy(strategy)
    else:
        strat = as_strategy(strategy)
    if cut_points < 1:
        raise ValueError(f"cut_points must be >= 1, got {cut_points}")
    panel = bars if isinstance(bars, MarketPanel) else prepare_panel(bars)[0]
    times = panel.timestamps()
    strat = at_interval(strat, panel, calendar, check_warmup=False)  # windows in bars of the whole data, once
    full = checked_target_weights(strat, panel)
    cuts = sample_cuts(times, cut_points, seed)
    violations: list[LookaheadViolation] = []
    for cut in cuts:
        rows = int(np.searchsorted(panel.ts, cut.value, side="right"))
        seen = checked_target_weights(strat, head(panel, rows))
        differs = ~np.isclose(full[:rows], seen, rtol=RTOL, atol=ATOL)
        for j in np.flatnonzero(differs.any(axis=0)):
            i = int(np.argmax(differs[:, j]))
            violations.append(
                LookaheadViolation(cut, panel.symbols[j], times[i], float(full[i, j]), float(seen[i, j]))
            )
    return LookaheadReport(not violations, violations, list(cuts), str(getattr(strat, "name", strategy)))


def head(panel: MarketPanel, rows: int) -> MarketPanel:
    """The first ``rows`` bars of ``panel`` (views, no copy)."""
    length = len(panel.ts)
    sliced = {
        f.name: value[:rows]
        for f in dataclasses.fields(panel)
        if isinstance(value := getattr(panel, f.name), np.ndarray) and value.ndim >= 1 and len(value) == length
    }
    return dataclasses.replace(panel, **sliced)


def sample_cuts(times: pd.DatetimeIndex, cut_points: int, seed: int) -> list[pd.Timestamp]:
    """One time drawn in each of ``cut_points`` equal slices of ``times`` without its last element."""
    candidates = len(times) - 1
    if candidates <= 0:
        return []
    if candidates <= cut_points:
        return list(times[:candidates])
    rng = np.random.default_rng(seed)
    edges = np.linspace(0, candidates, cut_points + 1).astype(np.int64)
    picks = [int(rng.integers(lo, hi)) for lo, hi in itertools.pairwise(edges) if hi > lo]
    return [times[i] for i in sorted(set(picks))]
