"""Simulation benchmarks: the public calls users make, timed end to end from a canonical bars
DataFrame, with the compiled kernel's figure beside each.

Input: ``bench_bars(30, 90)``, the three calibrated symbols tiled into 30 symbols x 129,600
one-minute bars (90 days; 3,888,000 bar-symbols), as a canonical bars DataFrame, built once outside
the timed region. The strategy is the trend reference strategy with its default windows.

* ``run_backtest(bars, "trend")``: cleaning the bars into a panel (the market-data guard), the
  strategy's signals, the bar loop, the fills and trades tables, every metric. Kernel: the compiled
  backtest pass on the prepared panel and weights (``backtest.simulate``).
* ``run_paper(bars, "trend")``: the same with the event-driven paper engine (default policy, every
  realism source on), the event log and fills tables included. Kernel: the compiled engine with the
  market stress detection on the prepared panel (``paper.simulate``).

Figures are best of ``repeat`` calls after an untimed warm-up (which also compiles or loads the
compiled code); bar-symbols per second = 3,888,000 / best time. Targets (this repository's 2-core
development machine): ``BACKTEST_TARGET_BAR_SYMBOLS_PER_S`` and ``PAPER_TARGET_BAR_SYMBOLS_PER_S``
end to end. On a shared machine the median shows how noisy the run was.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import pandas as pd

from stress_pipeline.bench.timing import Measurement, measure
from stress_pipeline.bench.transforms import bench_bars
from stress_pipeline.market.panel import MarketPanel, prepare_panel
from stress_pipeline.simulation import backtest, paper
from stress_pipeline.simulation.config import SimConfig
from stress_pipeline.trading import get_strategy
from stress_pipeline.trading.risk.policy import TradingPolicy

BACKTEST_TARGET_BAR_SYMBOLS_PER_S = 10_000_000
PAPER_TARGET_BAR_SYMBOLS_PER_S = 4_000_000
BENCH_SYMBOLS = 30
BENCH_DAYS = 90
STRATEGY = "trend"
UNIT = "bar-symbols"


@dataclass(frozen=True)
class SimBench:
    """One public call timed end to end, its kernel's figure, and the target."""

    name: str
    call: Measurement  # the public call from the bars DataFrame
    kernel: Measurement  # the compiled pass on prepared inputs
    target_items_per_s: float

    @property
    def met(self) -> bool:
        return (self.call.items_per_second or 0.0) >= self.target_items_per_s

    def as_dict(self) -> dict[str, object]:
        return {
            **self.call.as_dict(),
            "kernel": self.kernel.as_dict(),
            "target_bar_symbols_per_s": self.target_items_per_s,
            "met": self.met,
        }


def run_backtest_bench(repeat: int = 5, *, n_symbols: int = BENCH_SYMBOLS, days: int = BENCH_DAYS) -> list[SimBench]:
    """``run_backtest(bars, "trend")`` end to end, and the backtest kernel."""
    bars, panel = bench_inputs(n_symbols, days)
    config = SimConfig()
    strategy = get_strategy(STRATEGY)
    weights = backtest.strategy_weights(strategy, panel)
    call = measure(f'run_backtest(bars, "{STRATEGY}")', lambda: backtest.run_backtest(bars, STRATEGY, config),
                   repeat=repeat, items=panel.bar_symbols, unit=UNIT)  # fmt: skip
    kernel = measure("backtest kernel", lambda: backtest.simulate(panel, weights, config), repeat=repeat,
                     items=panel.bar_symbols, unit=UNIT)  # fmt: skip
    return [SimBench(call.name, call, kernel, BACKTEST_TARGET_BAR_SYMBOLS_PER_S)]


def run_paper_bench(repeat: int = 5, *, n_symbols: int = BENCH_SYMBOLS, days: int = BENCH_DAYS) -> list[SimBench]:
    """``run_paper(bars, "trend")`` end to end, and the paper engine."""
    bars, panel = bench_inputs(n_symbols, days)
    config = SimConfig()
    policy = TradingPolicy()
    weights = paper.paper_weights(get_strategy(STRATEGY), panel, config)
    call = measure(f'run_paper(bars, "{STRATEGY}")', lambda: paper.run_paper(bars, STRATEGY, config),
                   repeat=repeat, items=panel.bar_symbols, unit=UNIT)  # fmt: skip
    kernel = measure("paper engine", lambda: paper.simulate(panel, weights, config, policy), repeat=repeat,
                     items=panel.bar_symbols, unit=UNIT)  # fmt: skip
    return [SimBench(call.name, call, kernel, PAPER_TARGET_BAR_SYMBOLS_PER_S)]


@lru_cache(maxsize=2)
def bench_inputs(n_symbols: int = BENCH_SYMBOLS, days: int = BENCH_DAYS) -> tuple[pd.DataFrame, MarketPanel]:
    """The bench bars as a canonical DataFrame, and the panel the simulations clean them into."""
    bars = bench_bars(n_symbols, days).to_frame()
    panel, _ = prepare_panel(bars)
    return bars, panel


def backtest_target_met(bench: SimBench) -> bool:
    return bench.met


def paper_target_met(bench: SimBench) -> bool:
    return bench.met


def format_backtest_bench(rows: list[SimBench]) -> str:
    return format_sim_bench(rows)


def format_paper_bench(rows: list[SimBench]) -> str:
    return format_sim_bench(rows)


def format_sim_bench(rows: list[SimBench]) -> str:
    """The bench as a table: call, best, median, throughput end to end, kernel throughput, target, met."""
    header = (f"{'public call (from a bars DataFrame)':<30} {'best':>10} {'median':>10} {'end to end':>18} "
              f"{'kernel':>18} {'target':>16} {'met':>4}")  # fmt: skip
    lines = [header]
    for row in rows:
        call, kernel = row.call, row.kernel
        lines.append(
            f"{row.name:<30} {_ms(call.seconds):>10} {_ms(call.median_seconds):>10} {_rate(call):>18} "
            f"{_rate(kernel):>18} {'>= ' + _millions(row.target_items_per_s):>16} {'yes' if row.met else 'NO':>4}"
        )
    if rows:
        first = rows[0].call
        lines.append(f"({first.items:,} {UNIT} per call, best of {first.repeat}; kernel: compiled pass on the panel)")
    return "\n".join(lines)


def _rate(m: Measurement) -> str:
    return f"{_millions(m.items_per_second or 0.0)}/s"


def _millions(value: float) -> str:
    return f"{value / 1e6:,.1f} M"


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:,.1f} ms"
