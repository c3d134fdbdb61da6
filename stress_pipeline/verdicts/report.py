"""The verdict table as people read it: markdown for the Dagster UI, lines for the CLI."""

from __future__ import annotations

import pandas as pd

from stress_pipeline.verdicts.table import EXERCISED, OUTCOMES, scenario_outcomes, validate_verdict_table

_WORDS = {"pass": "PASS", "fail": "FAIL", "not_exercised": "NOT EXERCISED"}


def outcome_counts(outcomes: pd.DataFrame) -> dict[str, int]:
    """How many scenarios passed, failed and were not exercised (every outcome, zeros included)."""
    counts = outcomes["outcome"].value_counts()
    return {name: int(counts.get(name, 0)) for name in OUTCOMES}


def verdict_markdown(table: pd.DataFrame) -> str:
    """Every scenario x criterion: value, limit, outcome and detail, as a markdown table."""
    table = validate_verdict_table(table)
    shown = table.assign(
        outcome=table["outcome"].map(_WORDS),
        limit=[_limit(c, t) for c, t in zip(table["comparison"], table["threshold"], strict=True)],
    )
    return shown[["scenario", "criterion", "value", "limit", "outcome", "detail"]].to_markdown(
        index=False, floatfmt=".4g"
    )


def verdict_lines(table: pd.DataFrame) -> list[str]:
    """The verdicts first: one line per scenario, its failed criteria under it, then the counts."""
    table = validate_verdict_table(table)
    outcomes = scenario_outcomes(table)
    width = max([len(s) for s in outcomes["scenario"]] + [8])
    lines = ["Scenario verdicts:"]
    for row in outcomes.itertuples():
        rows = table[table["scenario"] == row.scenario]
        lines.append(f"  {row.scenario.ljust(width)}  {_WORDS[row.outcome]}")
        if row.outcome == "fail":
            lines.extend(f"      {detail}" for detail in rows.loc[rows["outcome"] == "fail", "detail"])
        elif row.outcome == "not_exercised":
            lines.extend(f"      {d}" for d in rows.loc[rows["criterion"] == EXERCISED, "detail"])
    counts = outcome_counts(outcomes)
    lines.append(
        f"  {counts['pass']} passed, {counts['fail']} failed, {counts['not_exercised']} not exercised "
        f"of {len(outcomes)} scenarios"
    )
    return lines


def _limit(comparison: str, threshold: float) -> str:
    if threshold != threshold:
        return ""
    return f"{comparison} {threshold:.4g}"
