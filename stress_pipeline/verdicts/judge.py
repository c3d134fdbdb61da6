"""One scenario's verdict: its window, its figures against the baseline's, its criteria judged.

:func:`judge_scenario` is the one path from simulation results to verdict rows: the
``scenario_verdict`` asset and :func:`stress_pipeline.verdicts.api.run_stress_test` both call it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from stress_pipeline.verdicts.criteria import CRITERIA, criteria_for, format_value, passes, threshold_of
from stress_pipeline.verdicts.figures import Limits, exposure_path, impact, window_figures
from stress_pipeline.verdicts.table import EXERCISED, scenario_outcomes, validate_verdict_table
from stress_pipeline.verdicts.window import StressWindow, recovery_tail_s, stress_window

#: Where the figures of the verdict come from (the ``source`` column).
PAPER_SOURCE = "paper_results"
_FLAT = 1e-6  # USDT of gross exposure that still counts as flat


@dataclass(frozen=True)
class ScenarioVerdict:
    """The verdict rows of one scenario (the ``scenario_verdicts`` schema), its window, the figures of
    the stressed run and of the baseline over the same window, and the stress impact."""

    table: pd.DataFrame
    window: StressWindow
    figures: dict[str, float]
    baseline: dict[str, float]
    impact: dict[str, float]

    @property
    def outcome(self) -> str:
        return str(scenario_outcomes(self.table)["outcome"].iloc[0])

    @property
    def failed(self) -> list[str]:
        return self.table.loc[self.table["outcome"] == "fail", "detail"].tolist()

    def figures_table(self) -> pd.DataFrame:
        """One row per figure: stressed, baseline and impact (NaN where no impact is defined)."""
        names = list(self.figures)
        return pd.DataFrame(
            {
                "figure": names,
                "stressed": [self.figures[n] for n in names],
                "baseline": [self.baseline.get(n, np.nan) for n in names],
                "impact": [self.impact.get(n, np.nan) for n in names],
            }
        )


def judge_scenario(
    scenario, stressed: pd.DataFrame, paper, backtest, baseline, policy, *, key: str | None = None
) -> ScenarioVerdict:
    """The verdict of ``scenario`` from its stressed bars and the results of its simulations.

    ``paper``, ``backtest``: the ``SimResult`` of each simulation on the stressed bars; ``baseline``:
    the paper ``SimResult`` of the same system on the unstressed bars (``paper`` itself for the
    baseline scenario); ``policy``: the trading policy (its guard's hard limits). ``key``: the name in
    the table (the partition key; the scenario's name if None).
    """
    window = stress_window(stressed, tail_s=recovery_tail_s(scenario), faults=getattr(scenario, "faults", ()))
    limits = Limits.of(policy)
    figures = window_figures(paper, window, limits)
    base = window_figures(baseline, window, limits)
    tested = window_figures(backtest, window, limits)
    _derive(figures, base, tested, paper, baseline, window)
    rows = _rows(key or scenario.name, scenario, window, figures)
    table = validate_verdict_table(pd.DataFrame(rows))
    return ScenarioVerdict(table, window, figures, base, impact(figures, base))


def _derive(figures, base, tested, paper, baseline, window: StressWindow) -> None:
    """The figures that need two runs or a flag: divergence, VaR multiplier, position delta."""
    figures["ess_tripped"] = float(figures["ess_trips"] + figures["circuit_breaker_halts"] > 0)
    figures["flat_after_shock"] = float(figures["min_exposure_after_shock"] <= _FLAT)
    scale = figures["equity_at_shock"]
    figures["window_divergence"] = abs(figures["pnl"] - tested["pnl"]) / scale if scale > 0 else np.nan
    figures["var_multiplier"] = figures["var99_pct"] / base["var99_pct"] if base["var99_pct"] > 0 else np.nan
    ts, stressed_exposure = exposure_path(paper, window)
    base_ts, base_exposure = exposure_path(baseline, window)
    at = np.clip(np.searchsorted(base_ts, ts, side="right") - 1, 0, max(len(base_ts) - 1, 0))
    gap = np.abs(stressed_exposure - base_exposure[at]) if len(base_ts) and len(ts) else np.zeros(0)
    figures["position_delta"] = float(np.nanmax(gap)) if len(gap) and not np.isnan(gap).all() else np.nan
    figures["exercised"] = float(figures["exposure_at_shock"] > _FLAT or figures["fills"] > 0)


def _rows(name: str, scenario, window: StressWindow, figures: dict[str, float]) -> list[dict[str, object]]:
    common = {
        "scenario": name,
        "scenario_type": str(scenario.type),
        "severity": str(scenario.severity),
        "window_start": window.start,
        "window_end": window.end,
    }
    exercised = bool(figures["exercised"])
    why = f"exposure at the shock {figures['exposure_at_shock']:,.0f} USDT, {int(figures['fills'])} fills in the window"
    rows = [
        {
            **common,
            "criterion": EXERCISED,
            "comparison": "is",
            "threshold": 1.0,
            "value": float(exercised),
            "outcome": "pass" if exercised else "not_exercised",
            "detail": f"exercised: {why}"
            if exercised
            else f"not exercised: no position at the shock and no trade in the window {window.describe()}",
            "source": PAPER_SOURCE,
        }
    ]
    for key, setting in criteria_for(str(scenario.type), getattr(scenario, "expect", {}) or {}).items():
        criterion = CRITERIA[key]
        threshold = threshold_of(key, setting)
        value = float(figures[criterion.figure])
        measurable = value == value or key == "max_recovery_s"
        if not exercised or not measurable:
            outcome = "not_exercised"
        else:
            outcome = "pass" if passes(key, value, threshold) else "fail"
        rows.append(
            {
                **common,
                "criterion": key,
                "comparison": criterion.comparison,
                "threshold": threshold,
                "value": value if value == value else None,
                "outcome": outcome,
                "detail": _detail(key, value, threshold, outcome, figures, window),
                "source": PAPER_SOURCE,
            }
        )
    return rows


def _detail(key: str, value: float, threshold: float, outcome: str, figures, window: StressWindow) -> str:
    criterion = CRITERIA[key]
    shown = format_value(key, value)
    limit = format_value(key, threshold)
    if key == "max_recovery_s" and value != value:
        shown = "not recovered within the window"
    text = f"{key}: {shown} (limit {criterion.comparison} {limit})"
    if key == "max_drawdown_pct":
        where = "inside" if figures["run_drawdown_in_window"] else "outside"
        text += f", worst point {where} the stress window"
    if criterion.scope == "window":
        text += f" in {window.describe()}"
    if outcome == "not_exercised":
        text += "; not judged: " + ("the scenario did not stress the system" if figures["exercised"] == 0
                                    else "not measurable on this run")  # fmt: skip
    return text
