"""The memory a scenario's generated bars need, judged against a budget when its pack loads.

Only Monte Carlo scenarios generate bars from their parameters alone: ``n_paths x horizon_bars``
bars for each of their symbols. Every other type transforms the market data it is given, so its size
follows the data, which the loader already bounds (``max_file_bytes``). A pack whose Monte Carlo
scenario would need more than the budget is rejected when it loads, naming the scenario and the
figures, instead of validating and then asking the machine for terabytes.

The estimate counts what the generator holds at once per generated bar and symbol: the seven float64
output columns (open, high, low, close, volume, spread, ts), the int32 path number, three bool
flags, and the float64 scratch and int64 source position of the (paths x horizon) draw matrices.
"""

from __future__ import annotations

GENERATED_BAR_BYTES = 7 * 8 + 4 + 3 + 8 + 8
"""Bytes held per generated bar and symbol while a Monte Carlo scenario is generated (79)."""


#: Bar interval a horizon given in time is counted at when its pack loads (before its bars are known):
#: one minute, the finest interval of the shipped data.
LOAD_INTERVAL_NS = 60_000_000_000


def horizon_bars(scenario) -> int:
    """A Monte Carlo scenario's horizon in bars; a horizon given in time counted in 1-minute bars of a
    24/7 market (a day: 1,440 bars), the most it can be on the shipped data."""
    horizon = scenario.parameters.horizon_bars
    if isinstance(horizon, str):
        from stress_pipeline.market.calendars import trading_days
        from stress_pipeline.market.durations import to_bars

        per_day, week = trading_days(None, LOAD_INTERVAL_NS)
        return to_bars(horizon, LOAD_INTERVAL_NS, per_day, days_per_week=week)
    return int(horizon)


def generated_bars(scenario) -> int:
    """Bars x symbols a scenario generates from its parameters (0 for the types that transform data)."""
    if scenario.type != "monte_carlo":
        return 0
    return int(scenario.parameters.n_paths) * horizon_bars(scenario) * len(scenario.symbols)


def memory_needed(scenario) -> int:
    """Estimated peak bytes of the scenario's generated bars (0 for the types that transform data)."""
    return generated_bars(scenario) * GENERATED_BAR_BYTES


def over_budget(scenario, budget_bytes: int) -> str | None:
    """Why ``scenario`` does not fit in ``budget_bytes`` (None when it fits)."""
    needed = memory_needed(scenario)
    if needed <= budget_bytes:
        return None
    params = scenario.parameters
    return (
        f"needs about {_size(needed)} for its generated bars (n_paths {params.n_paths:,} x horizon_bars "
        f"{horizon_bars(scenario):,} x {len(scenario.symbols)} symbol(s) x {GENERATED_BAR_BYTES} bytes), over the "
        f"memory budget of {_size(budget_bytes)} (scenario_memory_bytes): lower n_paths or horizon_bars"
    )


def _size(count: int) -> str:
    value = float(count)
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:,.0f} {unit}" if unit == "bytes" else f"{value:,.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")
