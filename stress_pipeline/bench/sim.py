"""Simulation benchmarks: the vectorised backtest here (the event-driven paper run joins later, in
its own function), judged in bar-symbols per second.

Input: the transforms bench's bars (``bench_bars``: the three calibrated symbols tiled into 100
symbols x 1 day of 1-minute bars, 144,000 bar-symbols), cleaned into a :class:`MarketPanel` once,
outside the timed region, as the simulations assets do before running several strategies.

Each timed call is a whole ``run_backtest`` on that panel: the strategy's signals, the bar loop,
the fills table, the round trips and every metric. The reference strategies' default windows are a
day or longer (sized for 90-day runs), which on a one-day input would leave nothing but the
warm-up; the bench scales them to intraday windows (``BENCH_PARAMS``) so the call does real
trading work (a few hundred fills). Target: ``BACKTEST_TARGET_BAR_SYMBOLS_PER_S`` for each
strategy, best of ``repeat``. Numba kernels are compiled (or loaded from the disk cache) in the
untimed warm-up call.
"""

from __future__ import annotations

from stress_pipeline.bench.timing import Measurement, measure
from stress_pipeline.bench.transforms import bench_bars
from stress_pipeline.market.panel import MarketPanel, prepare_panel
from stress_pipeline.simulation.backtest import run_backtest
from stress_pipeline.simulation.config import SimConfig
from stress_pipeline.trading import get_strategy

BACKTEST_TARGET_BAR_SYMBOLS_PER_S = 25_000_000
BENCH_PARAMS: dict[str, dict[str, object]] = {
    "trend": {"fast": 30, "slow": 180, "band": 0.001},
    "mean_reversion": {"window": 180, "entry_z": 2.5, "exit_z": 0.5},
    "breakout": {"entry_window": 180, "exit_window": 90},
}
UNIT = "bar-symbols"


def run_backtest_bench(repeat: int = 5, *, n_symbols: int = 100, days: int = 1) -> list[Measurement]:
    """One measurement per reference strategy: ``run_backtest`` on ``n_symbols`` x ``days`` of bars."""
    panel = bench_panel(n_symbols, days)
    config = SimConfig(periods_per_year=365)
    measurements = []
    for name, params in BENCH_PARAMS.items():
        strategy = get_strategy(name, **params)
        measurements.append(
            measure(
                f"backtest {name}",
                lambda s=strategy: run_backtest(panel, s, config, scenario_name="bench"),
                repeat=repeat,
                items=panel.bar_symbols,
                unit=UNIT,
            )
        )
    return measurements


def bench_panel(n_symbols: int = 100, days: int = 1) -> MarketPanel:
    """The bench bars, cleaned as the simulations clean them."""
    panel, _ = prepare_panel(bench_bars(n_symbols, days).to_frame())
    return panel


def backtest_target_met(measurement: Measurement) -> bool:
    return (measurement.items_per_second or 0.0) >= BACKTEST_TARGET_BAR_SYMBOLS_PER_S


def format_backtest_bench(measurements: list[Measurement]) -> str:
    """The backtest bench as a table: strategy, best, median, throughput, target, met."""
    target = f">= {BACKTEST_TARGET_BAR_SYMBOLS_PER_S / 1e6:g} M {UNIT}/s"
    lines = [f"{'benchmark':<28} {'best':>10} {'median':>10} {'throughput':>24} {'target':>26} {'met':>5}"]
    for m in measurements:
        rate = f"{(m.items_per_second or 0.0) / 1e6:,.1f} M {UNIT}/s"
        met = "yes" if backtest_target_met(m) else "NO"
        best, median = f"{m.seconds * 1000:.2f} ms", f"{m.median_seconds * 1000:.2f} ms"
        lines.append(f"{m.name:<28} {best:>10} {median:>10} {rate:>24} {target:>26} {met:>5}")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------- paper half

PAPER_TARGET_BAR_SYMBOLS_PER_S = 1_000_000
PAPER_BASELINE_TARGET_S = 1.0
PAPER_BASELINE_DAYS = 90


def run_paper_bench(repeat: int = 5, *, days: int = PAPER_BASELINE_DAYS, strategy: str = "trend") -> list[Measurement]:
    """The paper engine on the baseline: ``days`` of the three calibrated symbols (``generate_bars``,
    the shipped data; 388,800 bar-symbols for 90 days), every realism source on, default policy.

    * ``paper loop``: the compiled bar loop with the market stress detection (``paper.simulate``), the
      engine alone: no result tables, no state I/O. Target: ``PAPER_TARGET_BAR_SYMBOLS_PER_S``.
    * ``paper run (panel)``: the whole ``run_paper`` on the prepared panel (signals, loop, event log,
      fills, round trips, metrics). Target: under ``PAPER_BASELINE_TARGET_S``.
    * ``paper run (bars)``: the same from canonical bars, the data guard (``prepare_panel``) included.

    Numba kernels are compiled (or loaded from the disk cache) in the untimed warm-up call.
    """
    from stress_pipeline.market.synthetic import generate_bars
    from stress_pipeline.simulation.paper import paper_weights, run_paper, simulate
    from stress_pipeline.trading.risk.policy import load_policy

    bars = generate_bars(days=days)
    panel, _ = prepare_panel(bars)
    config = SimConfig()
    policy = load_policy()
    strat = get_strategy(strategy)
    weights = paper_weights(strat, panel, config)
    calls = {
        "paper loop": lambda: simulate(panel, weights, config, policy),
        "paper run (panel)": lambda: run_paper(panel, strat, config, policy=policy),
        "paper run (bars)": lambda: run_paper(bars, strat, config, policy=policy),
    }
    return [measure(name, call, repeat=repeat, items=panel.bar_symbols, unit=UNIT) for name, call in calls.items()]


def paper_target_met(measurement: Measurement) -> bool:
    """The loop is judged on throughput, the whole runs on the baseline's wall time."""
    if measurement.name == "paper loop":
        return (measurement.items_per_second or 0.0) >= PAPER_TARGET_BAR_SYMBOLS_PER_S
    return measurement.seconds < PAPER_BASELINE_TARGET_S


def format_paper_bench(measurements: list[Measurement]) -> str:
    """The paper bench as a table: benchmark, best, median, throughput, target, met."""
    lines = [f"{'benchmark':<28} {'best':>10} {'median':>10} {'throughput':>24} {'target':>26} {'met':>5}"]
    for m in measurements:
        rate = f"{(m.items_per_second or 0.0) / 1e6:,.1f} M {UNIT}/s"
        if m.name == "paper loop":
            target = f">= {PAPER_TARGET_BAR_SYMBOLS_PER_S / 1e6:g} M {UNIT}/s"
        else:
            target = f"< {PAPER_BASELINE_TARGET_S:g} s"
        met = "yes" if paper_target_met(m) else "NO"
        best, median = f"{m.seconds * 1000:.1f} ms", f"{m.median_seconds * 1000:.1f} ms"
        lines.append(f"{m.name:<28} {best:>10} {median:>10} {rate:>24} {target:>26} {met:>5}")
    return "\n".join(lines)
