"""What each gate measures, read from the tables the pipeline stored.

Every function takes what an asset stored (the verdict table, the divergence and reconciliation
tables per scenario) and returns a :class:`~stress_pipeline.certification.gates.Measurement`. A
source that is absent or incomplete (a scenario partition never materialised, a table stored before
a column existed) gives no value, and the detail says what is missing: the gate is then
``no_input``, never a pass on partial evidence.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from stress_pipeline.certification.gates import Measurement
from stress_pipeline.scenarios.catalog import BASELINE_KEY
from stress_pipeline.simulation.divergence import DIVERGENCE_METRICS, bias_check
from stress_pipeline.state.reconcile import CASH_TOLERANCE
from stress_pipeline.verdicts.table import scenario_outcomes, validate_verdict_table

#: Criteria of the verdict table whose failure means the scenario lost more than allowed.
LOSS_CRITERIA = ("max_drawdown_pct", "max_loss_pct")
HARD_LIMIT_CRITERION = "hard_limit_breaches"
LATENCY_CRITERION = "decision_latency_p99_ms"
DISASTER_SEVERITY = "catastrophic"
BASELINE_DAYS = 90


def _missing(source: str, missing: Sequence[str]) -> str | None:
    if not missing:
        return None
    return f"{source} has no stored partition {_names(missing)}: materialise it"


def _names(names: Sequence[str], shown: int = 5) -> str:
    """``names`` joined, the first ``shown`` of a long list and how many more."""
    names = list(names)
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def _stress_rows(verdicts: pd.DataFrame) -> pd.DataFrame:
    """The verdict rows of the stress scenarios (the unstressed baseline is not one)."""
    return verdicts[verdicts["scenario"] != BASELINE_KEY]


def hard_limit_breaches(verdicts: pd.DataFrame | None) -> Measurement:
    """Sum of the ``hard_limit_breaches`` values over the scenarios that measured them."""
    if verdicts is None:
        return Measurement(None, "scenario_verdicts has not been materialised")
    rows = validate_verdict_table(verdicts)
    rows = rows[(rows["criterion"] == HARD_LIMIT_CRITERION) & rows["value"].notna()]
    if rows.empty:
        return Measurement(None, f"no scenario verdict measures {HARD_LIMIT_CRITERION}")
    breached = rows[rows["value"] > 0]
    where = ", ".join(f"{r.scenario} ({int(r.value)})" for r in breached.itertuples()) or "none"
    return Measurement(float(rows["value"].sum()), f"{len(rows)} scenarios measured; breaches in: {where}")


def stress_scenarios_passed(verdicts: pd.DataFrame | None, expected: Sequence[str] = ()) -> Measurement:
    """Share of stress scenarios whose verdict is pass (not exercised is not a pass); a scenario of
    ``expected`` (the scenario partitions) without a verdict leaves the gate without input."""
    if verdicts is None:
        return Measurement(None, "scenario_verdicts has not been materialised")
    outcomes = scenario_outcomes(_stress_rows(validate_verdict_table(verdicts)))
    unjudged = [key for key in expected if key != BASELINE_KEY and key not in set(outcomes["scenario"])]
    if unjudged:
        return Measurement(None, f"scenario_verdicts has no verdict for {_names(unjudged)}: materialise them")
    if outcomes.empty:
        return Measurement(None, "the verdict table has no stress scenario")
    passed = int((outcomes["outcome"] == "pass").sum())
    notes = [f"{passed} of {len(outcomes)} passed"]
    for outcome in ("fail", "not_exercised"):
        names = outcomes.loc[outcomes["outcome"] == outcome, "scenario"].tolist()
        if names:
            notes.append(f"{outcome.replace('_', ' ')}: {', '.join(names)}")
    return Measurement(100.0 * passed / len(outcomes), "; ".join(notes))


def circuit_breakers(verdicts: pd.DataFrame | None) -> Measurement:
    """Share of the exercised disaster (catastrophic) scenarios whose loss criteria all pass."""
    if verdicts is None:
        return Measurement(None, "scenario_verdicts has not been materialised")
    rows = _stress_rows(validate_verdict_table(verdicts))
    disasters = rows[rows["severity"] == DISASTER_SEVERITY]
    if disasters.empty:
        return Measurement(None, f"no scenario of severity {DISASTER_SEVERITY}")
    outcomes = scenario_outcomes(disasters).set_index("scenario")["outcome"]
    judged, prevented, skipped, lost = 0, 0, [], []
    for scenario, group in disasters.groupby("scenario", sort=False):
        loss = group[group["criterion"].isin(LOSS_CRITERIA)]
        if outcomes[scenario] == "not_exercised" or loss.empty:
            skipped.append(scenario)
            continue
        judged += 1
        if (loss["outcome"] == "pass").all():
            prevented += 1
        else:
            lost.append(scenario)
    if not judged:
        return Measurement(
            None,
            f"no exercised {DISASTER_SEVERITY} scenario with a loss criterion "
            f"({', '.join(LOSS_CRITERIA)}); not judged: {', '.join(skipped)}",
        )
    notes = [f"loss contained in {prevented} of {judged} {DISASTER_SEVERITY} scenarios"]
    if lost:
        notes.append(f"loss beyond the limit: {', '.join(lost)}")
    if skipped:
        notes.append(f"not exercised or without a loss criterion: {', '.join(skipped)}")
    return Measurement(100.0 * prevented / judged, "; ".join(notes))


def divergence(
    tables: Mapping[str, pd.DataFrame], missing: Sequence[str] = (), *, baseline_days: float | None = None
) -> Measurement:
    """The largest divergence of the baseline's metrics (the unstressed period), in percent."""
    if BASELINE_KEY in missing or BASELINE_KEY not in tables:
        return Measurement(None, f"divergence_report has no {BASELINE_KEY} partition: materialise it")
    table = tables[BASELINE_KEY]
    rows = table[table["metric"].isin(DIVERGENCE_METRICS)]
    if rows.empty:
        return Measurement(None, f"divergence_report[{BASELINE_KEY}] has no metric rows")
    worst = rows.loc[rows["divergence"].idxmax()]
    parts = ", ".join(f"{r.metric} {100 * r.divergence:.1f}%" for r in rows.itertuples())
    span = "" if baseline_days is None else f" over {baseline_days:.0f} days"
    detail = f"worst {worst['metric']}{span} ({parts})"
    failure = None
    if baseline_days is not None and baseline_days < BASELINE_DAYS - 1:
        failure = f"the baseline spans {baseline_days:.0f} days, the gate asks for {BASELINE_DAYS}; {detail}"
    return Measurement(100.0 * float(worst["divergence"]), detail, failure=failure)


def optimistic_bias(
    tables: Mapping[str, pd.DataFrame], missing: Sequence[str] = (), *, initial_capital: float
) -> Measurement:
    """Whether the paper run beats its backtest in too many scenarios (the divergence module's sign test)."""
    if missing:
        return Measurement(None, _missing("divergence_report", missing) or "")
    pairs = []
    for table in tables.values():
        pnl = table[table["metric"] == "total_pnl"]
        if len(pnl):
            pairs.append((float(pnl["backtest"].iloc[0]), float(pnl["paper"].iloc[0])))
    if not pairs:
        return Measurement(None, "divergence_report has no total_pnl rows")
    report = bias_check(pairs, initial_capital=initial_capital)
    return Measurement(float(report.paper_better), report.reason, verdict=report.passed)


def recovery_mean(
    tables: Mapping[str, pd.DataFrame], missing: Sequence[str] = (), drills: pd.DataFrame | None = None,
    drills_missing: Sequence[str] = (),
) -> Measurement:  # fmt: skip
    """Mean seconds from the end of each planned server outage (reconciliation) or recovery drill
    (``drills`` rows ``recovery_s``) until the system answered again; a drill that never recovered fails.
    A reconciliation or drill partition never materialised leaves the gate without input."""
    if missing:
        return Measurement(None, _missing("portfolio_reconciliation", missing) or "")
    if drills_missing:
        return Measurement(None, _missing("drills", drills_missing) or "", source="drills")
    count, total, worst, old = 0, 0.0, 0.0, []
    for key, table in tables.items():
        if "outages_recovered" not in table.columns:
            old.append(key)
            continue
        count += int(table["outages_recovered"].sum())
        total += float(table["recovery_s_sum"].sum())
        worst = max(worst, float(table["recovery_s_max"].max()))
    if old:
        return Measurement(
            None,
            f"portfolio_reconciliation of {', '.join(old)} was stored before recovery times "
            "were recorded: materialise it again",
        )
    drilled, unrecovered = drill_recovery(drills)
    count += len(drilled)
    total += float(sum(drilled))
    worst = max([worst, *drilled])
    if not count and not unrecovered:
        return Measurement(None, "no scenario plans a server outage and no recovery drill ran, so no recovery "
                                 "was measured")  # fmt: skip
    parts = [f"{count - len(drilled)} planned outages"] + ([f"{len(drilled)} recovery drills"] if drills is not None
                                                           else [])  # fmt: skip
    detail = f"{' and '.join(parts)}, slowest {worst:.1f}s"
    failure = f"never recovered: {', '.join(unrecovered)}; {detail}" if unrecovered else None
    source = "portfolio_reconciliation" + (", drills" if drills is not None else "")
    return Measurement(total / count if count else float("nan"), detail, failure=failure, source=source)


def integrity_delta(tables: Mapping[str, pd.DataFrame], missing: Sequence[str] = ()) -> Measurement:
    """The largest cash difference between exchange, ledger and Redis; lost, duplicated or unexpected
    fills and position breaks fail the gate whatever the cash says."""
    if missing:
        return Measurement(None, _missing("portfolio_reconciliation", missing) or "")
    if not tables:
        return Measurement(None, "portfolio_reconciliation has no partition")
    worst, where, problems = 0.0, None, []
    for key, table in tables.items():
        row = table.iloc[0]
        if "cash_delta" in table.columns:
            delta = float(row["cash_delta"])
        elif int(row["breaks"]) == 0:
            delta = 0.0  # no break at all: the three views agree exactly
        else:
            return Measurement(
                None,
                f"portfolio_reconciliation[{key}] has breaks but was stored before the cash "
                "delta was recorded: materialise it again",
            )
        if delta > worst:
            worst, where = delta, key
        counts = {name: int(row[name]) for name in ("lost", "duplicated", "unexpected")}
        # reconcile() fails a run on lost/duplicated/unexpected fills, position breaks or cash beyond its
        # tolerance: failed with the cash within it means the positions broke
        positions_broke = not bool(row["passed"]) and delta <= float(CASH_TOLERANCE)
        if any(counts.values()) or positions_broke:
            problems.append(
                f"{key}: " + ", ".join(f"{n} {name}" for name, n in counts.items()) + f", {int(row['breaks'])} break(s)"
            )
    detail = f"largest cash delta in {where}" if where else f"no cash difference in {len(tables)} scenarios"
    failure = f"fills or positions disagree ({'; '.join(problems)})" if problems else None
    return Measurement(worst, detail, failure=failure)


#: Columns the certification reads from the drills and monitoring tables (their producers own the full
#: schemas; these are the contract's columns the gates need).
COVERAGE_COLUMNS = ("failure_mode", "outcome")
DELIVERY_COLUMNS = ("alert", "delivered", "delivery_s", "incidents")
FLOOD_COLUMNS = ("decisions", "p99_ms")
DRILL_COLUMNS = ("drill", "criterion", "value", "outcome")
RECOVERY_CRITERION = "recovery_s"
ALERT_GATES = ("alert_delivery_pct", "alert_median_s", "alert_p95_s")


def _require(table: pd.DataFrame, columns: Sequence[str], source: str) -> None:
    """:class:`ValueError` naming ``source`` and the first column ``table`` lacks."""
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ValueError(f"{source}: missing column(s) {', '.join(missing)}")


def _finite(table: pd.DataFrame, column: str, source: str, *, allow_nan: bool = False) -> np.ndarray:
    """``column`` as float64, or :class:`ValueError` naming ``source``, the column and the first bad row."""
    try:
        values = pd.to_numeric(table[column], errors="raise").to_numpy(np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{source}: column {column}: expected numbers ({exc})") from None
    bad = np.isinf(values) | (values < 0) | (np.zeros_like(values, bool) if allow_nan else np.isnan(values))
    if bad.any():
        row = int(np.argmax(bad))
        raise ValueError(f"{source}: column {column}, row {row}: expected a finite number >= 0, got {values[row]!r}")
    return values


def _booleans(table: pd.DataFrame, column: str, source: str) -> np.ndarray:
    values = table[column]
    bad = ~values.map(lambda v: isinstance(v, bool | np.bool_))
    if bad.any():
        row = int(np.argmax(bad.to_numpy()))
        raise ValueError(f"{source}: column {column}, row {row}: expected true or false, got {values.iloc[row]!r}")
    return values.to_numpy(bool)


def decision_latency(flood: pd.DataFrame | None, verdicts: pd.DataFrame | None = None) -> Measurement:
    """The decision-flood drill's P99 (the system's own decision time under load), else the worst P99 a
    scenario verdict measured; neither: no input."""
    if flood is not None:
        _require(flood, FLOOD_COLUMNS, "decision_flood")
        if len(flood) != 1:
            return Measurement(None, f"decision_flood: expected one row, found {len(flood)}")
        decisions = _finite(flood, "decisions", "decision_flood")
        if decisions[0] == 0:
            return Measurement(None, "decision_flood made no decision", source="decision_flood")
        p99 = _finite(flood, "p99_ms", "decision_flood")
        extra = ", ".join(f"{c} {float(flood[c].iloc[0]):.3g}" for c in ("rate_per_s", "p999_ms", "max_ms")
                          if c in flood.columns)  # fmt: skip
        detail = f"{int(decisions[0]):,} decisions" + (f" ({extra})" if extra else "")
        return Measurement(float(p99[0]), detail, source="decision_flood")
    if verdicts is not None:
        rows = validate_verdict_table(verdicts)
        rows = rows[(rows["criterion"] == LATENCY_CRITERION) & rows["value"].notna()]
        if len(rows):
            worst = rows.loc[rows["value"].idxmax()]
            return Measurement(float(worst["value"]), f"worst in {worst['scenario']}", source="scenario_verdicts")
    return Measurement(None, "decision_flood has not been materialised (no asset measures the system's decision "
                             "latency yet)", source="decision_flood")  # fmt: skip


def monitoring_coverage(table: pd.DataFrame | None) -> Measurement:
    """Percent of failure modes whose monitoring drill passed (not run or not monitored is not a pass)."""
    if table is None:
        return Measurement(None, "monitoring_coverage has not been materialised", source="monitoring_coverage")
    _require(table, COVERAGE_COLUMNS, "monitoring_coverage")
    if table.empty:
        return Measurement(None, "monitoring_coverage lists no failure mode", source="monitoring_coverage")
    outcome = table["outcome"]
    bad = ~outcome.isin(("pass", "fail", "not_run"))
    if bad.any():
        row = int(np.argmax(bad.to_numpy()))
        raise ValueError(f"monitoring_coverage: column outcome, row {row}: {outcome.iloc[row]!r} is not one of "
                         "pass, fail, not_run")  # fmt: skip
    passed = (outcome == "pass").to_numpy()
    notes = [f"{int(passed.sum())} of {len(table)} failure modes detected"]
    for kind in ("fail", "not_run"):
        names = table.loc[outcome == kind, "failure_mode"].astype(str).tolist()
        if names:
            notes.append(f"{kind.replace('_', ' ')}: {', '.join(names)}")
    return Measurement(100.0 * float(passed.mean()), "; ".join(notes), source="monitoring_coverage")


def alert_delivery(table: pd.DataFrame | None) -> dict[str, Measurement]:
    """Delivery rate, median and 95th percentile of the delivery time; a duplicated incident fails all three."""
    if table is None:
        return {name: Measurement(None, "alert_delivery has not been materialised", source="alert_delivery")
                for name in ALERT_GATES}  # fmt: skip
    _require(table, DELIVERY_COLUMNS, "alert_delivery")
    if table.empty:
        return {name: Measurement(None, "alert_delivery has no alert scenario", source="alert_delivery")
                for name in ALERT_GATES}  # fmt: skip
    delivered = _booleans(table, "delivered", "alert_delivery")
    seconds = _finite(table, "delivery_s", "alert_delivery", allow_nan=True)
    incidents = _finite(table, "incidents", "alert_delivery")
    no_time = delivered & np.isnan(seconds)
    if no_time.any():
        row = int(np.argmax(no_time))
        raise ValueError(f"alert_delivery: column delivery_s, row {row}: delivered but no delivery time")
    duplicates = table.loc[incidents > 1, "alert"].astype(str).tolist()
    failure = f"duplicated incidents for {', '.join(duplicates)}" if duplicates else None
    lost = table.loc[~delivered, "alert"].astype(str).tolist()
    rate_detail = f"{int(delivered.sum())} of {len(table)} alerts delivered" + (
        f"; lost: {', '.join(lost)}" if lost else "")  # fmt: skip
    out = {"alert_delivery_pct": Measurement(100.0 * float(delivered.mean()), rate_detail, failure=failure,
                                             source="alert_delivery")}  # fmt: skip
    times = seconds[delivered]
    for name, q in (("alert_median_s", 50), ("alert_p95_s", 95)):
        if not len(times):
            out[name] = Measurement(None, "no alert was delivered", source="alert_delivery")
            continue
        value = float(np.percentile(times, q))
        out[name] = Measurement(value, f"{len(times)} delivered alerts", failure=failure, source="alert_delivery")
    return out


#: The drills whose ``recovery_s`` is what seed 001's recovery gate means (a broker or server connection
#: lost for a while, then the system answering again). The other drills' ``recovery_s`` measure something
#: else, judged by their own criteria: a stuck position closed (up to 10 minutes), the next reconnect of
#: an exchange session that retries every 60 s, the end of a rate-limit ban.
RECOVERY_GATE_DRILLS = ("broker_failure", "postgres_outage")


def drill_recovery(drills: pd.DataFrame | None) -> tuple[list[float], list[str]]:
    """The ``recovery_s`` values the recovery drills (:data:`RECOVERY_GATE_DRILLS`) measured, and those
    of them that did not recover."""
    if drills is None:
        return [], []
    _require(drills, DRILL_COLUMNS, "drills")
    rows = drills[(drills["criterion"] == RECOVERY_CRITERION) & drills["drill"].isin(RECOVERY_GATE_DRILLS)]
    values = _finite(rows, "value", "drills", allow_nan=True)
    unrecovered = rows.loc[np.isnan(values), "drill"].astype(str).tolist()
    return values[~np.isnan(values)].tolist(), unrecovered
