"""The criteria a scenario is judged by: what each ``expect`` key measures, and the defaults per type.

A scenario's criteria are the defaults of its type (from the user requirements) updated by its pack's
``expect`` (the keys and value kinds are checked on load by ``stress_pipeline.scenarios.expect``).
Each criterion reads one figure of :mod:`stress_pipeline.verdicts.figures` and compares it with its
threshold:

====================== ========================================================================= ====
key                    value judged                                                               pass
====================== ========================================================================= ====
max_drawdown_pct       the account's worst drawdown from its running peak over the run (a breach  <=
                       limit holds at every bar; the detail says if the worst point is in the
                       stress window)
max_stress_drawdown_pct the worst fall below the pre-shock equity's running peak in the window    <=
max_loss_pct           loss over the window / equity before the shock                             <=
ess_must_trip          the emergency stop tripped or halted in the window (false: it must not)    is
halt_above_drawdown_pct worst account drawdown in the window while the ESS let trading go on      <=
flat_after             the book is flat at some bar between the end of the shock and the end of   is
                       the window (false: not required)
no_stuck_positions     symbols with a failed execution still holding a position at the window's   <=
                       end (must be 0; false: not required)
max_recovery_s         seconds from the window's trough back to the pre-shock equity (not         <=
                       recovered within the window: fails)
max_divergence         |paper PnL - backtest PnL| over the window / equity before the shock       <=
hard_limit_breaches    gross exposure above the guard's limit (episodes) plus fills leaving a      <=
                       symbol above its position limit, over the run
max_execution_failures orders failed for good in the window                                      <=
max_var_multiplier     99% one-bar VaR in the window / the baseline's in the same window          <=
max_position_delta     largest gap between the stressed and the baseline exposure in the window,   <=
                       as a fraction of the equity before the shock
====================== ========================================================================= ====

A criterion that cannot be measured (the baseline took no risk for a VaR ratio) is "not exercised",
never a pass.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

#: Every scenario: zero hard-limit breaches (seed 001, across all tests).
COMMON_DEFAULTS: dict[str, object] = {"hard_limit_breaches": 0}
#: Defaults per scenario type, from the requirements: flash crash (seed 001: drawdown <= 15%, position
#: flat after the crash, zero hard-limit breaches; seed 002 S1: drawdown < 25%, no stuck positions) and
#: correlation cascade (seed 002 S6: the drawdown limit halts trading above 15%, loss contained < 20%).
TYPE_DEFAULTS: dict[str, dict[str, object]] = {
    "flash_crash": {"max_drawdown_pct": 0.15, "flat_after": True, "no_stuck_positions": True},
    "correlation_cascade": {"halt_above_drawdown_pct": 0.15, "max_loss_pct": 0.20},
}


@dataclass(frozen=True)
class Criterion:
    figure: str  # the figure judged (see FIGURES, or a derived one of judge.py)
    comparison: str  # "<=" or "is"
    unit: str  # "pct", "s", "count", "usdt", "ratio", "flag"
    scope: str  # "window" or "run"


CRITERIA: dict[str, Criterion] = {
    "max_drawdown_pct": Criterion("run_drawdown_pct", "<=", "pct", "run"),
    "max_stress_drawdown_pct": Criterion("stress_drawdown_pct", "<=", "pct", "window"),
    "max_loss_pct": Criterion("loss_pct", "<=", "pct", "window"),
    "ess_must_trip": Criterion("ess_tripped", "is", "flag", "window"),
    "halt_above_drawdown_pct": Criterion("unhalted_drawdown_pct", "<=", "pct", "window"),
    "flat_after": Criterion("flat_after_shock", "is", "flag", "window"),
    "no_stuck_positions": Criterion("stuck_positions", "<=", "count", "window"),
    "max_recovery_s": Criterion("recovery_s", "<=", "s", "window"),
    "max_divergence": Criterion("window_divergence", "<=", "ratio", "window"),
    "hard_limit_breaches": Criterion("hard_limit_breaches", "<=", "count", "run"),
    "max_execution_failures": Criterion("execution_failures", "<=", "count", "window"),
    "max_var_multiplier": Criterion("var_multiplier", "<=", "ratio", "window"),
    "max_position_delta": Criterion("position_delta", "<=", "ratio", "window"),
}


def criteria_for(scenario_type: str, expect: Mapping[str, object]) -> dict[str, object]:
    """The criteria of a scenario: common and type defaults, then its ``expect`` (drill keys left out,
    their drill judges them). A flag set to false that means "not required" drops its criterion."""
    merged = {**COMMON_DEFAULTS, **TYPE_DEFAULTS.get(scenario_type, {}), **dict(expect)}
    out = {}
    for key, value in merged.items():
        if key not in CRITERIA:
            continue
        if key in ("flat_after", "no_stuck_positions") and value is False:
            continue
        out[key] = value
    return out


def threshold_of(key: str, value: object) -> float:
    """The number a criterion's value is compared with (a flag's is 1 for true, 0 for false; no stuck
    positions: 0)."""
    if key == "no_stuck_positions":
        return 0.0
    return float(value)


def passes(key: str, value: float, threshold: float) -> bool:
    """Whether a measured ``value`` meets criterion ``key`` at ``threshold`` (NaN never does)."""
    if value != value:
        return False
    if CRITERIA[key].comparison == "is":
        return bool(value) == bool(threshold)
    return value <= threshold + 1e-12


def format_value(key: str, value: float) -> str:
    """A value as a person reads it, in the criterion's unit."""
    if value != value:
        return "not measured"
    unit = CRITERIA[key].unit
    if unit == "pct":
        return f"{100 * value:.2f}%"
    if unit == "s":
        return f"{value:,.0f} s"
    if unit == "count":
        return f"{int(value)}"
    if unit == "flag":
        return "yes" if value else "no"
    return f"{value:.3f}"
