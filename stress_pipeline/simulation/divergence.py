"""How far the paper run is from the backtest, and whether the paper run is suspiciously better.

Divergence of a metric: |paper - backtest| / max(|backtest|, floor). The floors keep a near-zero
backtest figure from turning a small absolute gap into a huge ratio:

- total_pnl: 1% of initial capital (1,000 on the default 100,000),
- winrate: 10 percentage points,
- max_drawdown: 1 percentage point,
- total_trades: 10 trades.

A scenario passes when every metric diverges by less than ``DIVERGENCE_LIMIT`` (20%).

Bias: across scenarios, a paper run that beats its backtest is a warning sign, since real execution
only adds costs and delays. The check fails when the paper PnL exceeds the backtest PnL (by more than
0.01% of capital) in most scenarios: a one-sided sign test with p < 0.05, or every scenario when there
are fewer than five.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

DIVERGENCE_LIMIT = 0.20
DIVERGENCE_METRICS = ("total_pnl", "winrate", "max_drawdown", "total_trades")
BIAS_TOLERANCE_OF_CAPITAL = 0.0001
BIAS_P_VALUE = 0.05
BIAS_MIN_SCENARIOS = 5


def divergence_floors(initial_capital: float) -> dict[str, float]:
    return {"total_pnl": 0.01 * initial_capital, "winrate": 10.0, "max_drawdown": 1.0, "total_trades": 10.0}


@dataclass(frozen=True)
class MetricDivergence:
    metric: str
    backtest: float
    paper: float
    floor: float
    divergence: float
    passed: bool


def compare_metrics(
    backtest: Mapping[str, object], paper: Mapping[str, object], *, initial_capital: float,
    limit: float = DIVERGENCE_LIMIT,
) -> list[MetricDivergence]:
    """One row per divergence metric, from two result records."""
    floors = divergence_floors(initial_capital)
    rows = []
    for metric in DIVERGENCE_METRICS:
        b, p = float(backtest[metric]), float(paper[metric])
        value = abs(p - b) / max(abs(b), floors[metric])
        rows.append(MetricDivergence(metric, b, p, floors[metric], value, value < limit))
    return rows


@dataclass(frozen=True)
class BiasReport:
    scenarios: int
    paper_better: int
    p_value: float
    passed: bool
    reason: str


def bias_check(pairs: Iterable[tuple[float, float]], *, initial_capital: float) -> BiasReport:
    """``pairs`` of (backtest total_pnl, paper total_pnl), one per scenario."""
    pairs = list(pairs)
    tolerance = BIAS_TOLERANCE_OF_CAPITAL * initial_capital
    better = sum(1 for b, p in pairs if p > b + tolerance)
    n = len(pairs)
    p_value = _sign_test(better, n)
    if n == 0:
        return BiasReport(0, 0, 1.0, True, "no scenarios to compare yet")
    if n < BIAS_MIN_SCENARIOS:
        passed = better < n
        reason = f"paper beat the backtest in {better} of {n} scenarios" + ("" if passed else " (all of them)")
    else:
        passed = p_value >= BIAS_P_VALUE
        reason = f"paper beat the backtest in {better} of {n} scenarios (sign test p = {p_value:.3g})"
    return BiasReport(n, better, p_value, passed, reason)


def _sign_test(successes: int, n: int) -> float:
    """P(X >= successes) for X ~ Binomial(n, 1/2)."""
    if n == 0:
        return 1.0
    return sum(math.comb(n, k) for k in range(successes, n + 1)) / 2**n
