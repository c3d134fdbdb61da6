"""The vocabulary of a scenario's ``expect``: which criteria a pack may set, and the kind of value each takes.

It is checked when a pack is loaded, so a misspelt criterion fails there, naming the pack file, the
scenario and the key, and is never silently ignored. What each criterion means, and how it is judged
over the stress window, is in ``stress_pipeline/verdicts/criteria.py``.
"""

from __future__ import annotations

from collections.abc import Mapping

#: The criteria a scenario's ``expect`` may set, with the kind of value each takes (documented with their
#: meaning in stress_pipeline/verdicts/criteria.py, which judges them). "fraction": a number in [0, 1]
#: (0.05 = 5%); "number": a number >= 0; "count": a whole number >= 0; "flag": true or false.
EXPECT_KEYS: dict[str, str] = {
    "max_drawdown_pct": "fraction",
    "max_loss_pct": "fraction",
    "ess_must_trip": "flag",
    "halt_above_drawdown_pct": "fraction",
    "flat_after": "flag",
    "no_stuck_positions": "flag",
    "max_recovery_s": "number",
    "max_divergence": "number",
    "hard_limit_breaches": "count",
    "max_execution_failures": "count",
    "max_var_multiplier": "number",
    "max_position_delta": "number",
    "max_stress_drawdown_pct": "fraction",
}

#: Criteria of the state drills (Redis, PostgreSQL and writer outages of a live run): judged by the
#: drill that runs them (``stress_pipeline.state.live_run``), not by the scenario verdict, which lists
#: them as such; accepted here so that a drill pack validates like any other.
DRILL_KEYS: dict[str, str] = {
    "min_buffered_updates": "count",
    "max_flush_seconds": "number",
    "reconciliation_breaks": "count",
}


def check_expect(expect: Mapping[str, object]) -> dict[str, object]:
    """``expect`` with every key known and every value of its kind, or ValueError naming the key."""
    for key, value in expect.items():
        kind = EXPECT_KEYS.get(key) or DRILL_KEYS.get(key)
        if kind is None:
            known = ", ".join([*EXPECT_KEYS, *DRILL_KEYS])
            raise ValueError(f"unknown criterion {key!r}; expected one of {known}")
        is_number = isinstance(value, int | float) and not isinstance(value, bool)
        if kind == "flag" and not isinstance(value, bool):
            raise ValueError(f"{key}: expected true or false (got {value!r})")
        if kind != "flag" and not (is_number and value == value and abs(value) != float("inf") and value >= 0):
            raise ValueError(f"{key}: expected a number >= 0 (got {value!r})")
        if kind == "fraction" and value > 1:
            raise ValueError(f"{key}: expected a fraction between 0 and 1, e.g. 0.05 for 5% (got {value!r})")
        if kind == "count" and int(value) != value:
            raise ValueError(f"{key}: expected a whole number (got {value!r})")
    return dict(expect)
