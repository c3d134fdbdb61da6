"""The verdict table as people read it: markdown for the Dagster UI, lines for the CLI."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from stress_pipeline.verdicts.table import OUTCOMES, scenario_outcomes, validate_verdict_table

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
    return outcome_lines(scenario_outcomes(validate_verdict_table(table)).to_dict("records"))


def outcome_lines(outcomes: Sequence[Mapping[str, object]], missing: Sequence[str] = ()) -> list[str]:
    """Lines for a person from per-scenario outcome records (scenario, outcome, failed: the details of
    the failed criteria joined by "; "), as ``scenario_outcomes`` returns and the asset records them."""
    width = max([len(str(r["scenario"])) for r in outcomes] + [8])
    lines = ["Scenario verdicts:"]
    for record in outcomes:
        outcome = str(record["outcome"])
        word = _WORDS.get(outcome, outcome)
        if outcome == "not_exercised":
            word += " (no position at the shock and no trade in the window)"
        lines.append(f"  {str(record['scenario']).ljust(width)}  {word}")
        if outcome == "fail":
            lines.extend(f"      {detail}" for detail in str(record.get("failed") or "").split("; ") if detail)
    lines.append(f"  {counts_text(outcomes)}")
    if missing:
        lines.append(f"  no verdict (not materialised): {', '.join(missing)}")
    return lines


def counts_text(outcomes: Sequence[Mapping[str, object]]) -> str:
    """The counts of outcome records: "2 passed, 1 failed, 0 not exercised of 3 scenarios"."""
    counts = {name: sum(r["outcome"] == name for r in outcomes) for name in OUTCOMES}
    return (
        f"{counts['pass']} passed, {counts['fail']} failed, {counts['not_exercised']} not exercised "
        f"of {len(outcomes)} scenarios"
    )


def _limit(comparison: str, threshold: float) -> str:
    if threshold != threshold:
        return ""
    return f"{comparison} {threshold:.4g}"
