"""Certification gates: thresholds at their edges, measurements from crafted tables, GO / NO-GO."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from stress_pipeline.certification import measure
from stress_pipeline.certification.decide import Certification, Sources, certify, fingerprint
from stress_pipeline.certification.gates import (
    DEFAULT_THRESHOLDS,
    FAIL,
    GO,
    NO_GO,
    NO_INPUT,
    PASS,
    GateConfigError,
    Measurement,
    judge,
    load_thresholds,
)
from stress_pipeline.certification.readiness import MANUAL_ITEMS, Attestation, ReadinessError, load_attestations


def verdict_rows(scenario, criteria, *, severity="high", exercised=True):
    """Rows of a verdict table: ``criteria`` is [(criterion, comparison, threshold, value, outcome)]."""
    rows = [
        (
            scenario,
            "flash_crash",
            severity,
            "exercised",
            "is",
            np.nan,
            float(exercised),
            "pass" if exercised else "not_exercised",
            "exercised" if exercised else "flat at the shock",
        )
    ]
    rows += [(scenario, "flash_crash", severity, c, cmp, t, v, o, f"{c} {v}") for c, cmp, t, v, o in criteria]
    return pd.DataFrame(rows, columns=["scenario", "scenario_type", "severity", "criterion", "comparison",
                                       "threshold", "value", "outcome", "detail"]).assign(
        source="paper_results", window_start=pd.Timestamp("2024-03-01", tz="UTC"),
        window_end=pd.Timestamp("2024-03-02", tz="UTC"))  # fmt: skip


def verdict_table(*parts):
    return pd.concat(parts, ignore_index=True)


GOOD_VERDICTS = verdict_table(
    verdict_rows("crash_a", [("max_drawdown_pct", "<=", 15, 6.0, "pass"), ("hard_limit_breaches", "<=", 0, 0, "pass")],
                 severity="catastrophic"),
    verdict_rows("crash_b", [("max_drawdown_pct", "<=", 15, 9.0, "pass"), ("hard_limit_breaches", "<=", 0, 0, "pass")],
                 severity="catastrophic"),
    verdict_rows("baseline", [("max_drawdown_pct", "<=", 25, 3.0, "pass")]),
)  # fmt: skip


def divergence_table(pnl_backtest=1000.0, pnl_paper=950.0, worst=0.05):
    return pd.DataFrame({
        "metric": ["total_pnl", "winrate", "max_drawdown", "total_trades"],
        "backtest": [pnl_backtest, 0.5, 0.1, 40], "paper": [pnl_paper, 0.5, 0.1, 40],
        "divergence": [worst, 0.0, 0.01, 0.0],
    })  # fmt: skip


def reconciliation_row(**overrides):
    row = {"passed": True, "lost": 0, "duplicated": 0, "unexpected": 0, "breaks": 0, "cash_delta": 0.0,
           "outages_recovered": 2, "recovery_s_sum": 10.0, "recovery_s_max": 6.0}  # fmt: skip
    row.update(overrides)
    return pd.DataFrame([row])


def coverage_table(outcomes=("pass", "pass")):
    return pd.DataFrame({
        "failure_mode": [f"mode_{i}" for i in range(len(outcomes))], "monitored": True, "drill": "d",
        "fired": [o == "pass" for o in outcomes], "detection_s": 1.0, "outcome": list(outcomes),
    })  # fmt: skip


def delivery_table(seconds=(1.0, 2.0, 3.0), delivered=None, incidents=None):
    n = len(seconds)
    return pd.DataFrame({
        "alert": [f"alert_{i}" for i in range(n)], "degraded": False,
        "delivered": list(delivered) if delivered is not None else [True] * n,
        "delivery_s": list(seconds), "incidents": list(incidents) if incidents is not None else [1] * n,
    })  # fmt: skip


def flood_table(p99=4.0, decisions=10_000):
    return pd.DataFrame([{"rate_per_s": 1000.0, "seconds": 10.0, "decisions": decisions, "p50_ms": 1.0,
                          "p99_ms": p99, "p999_ms": 8.0, "max_ms": 9.0, "rss_slope_mb_per_min": 0.0}])  # fmt: skip


def drills_table(recovery=(5.0, 7.0), drills=("broker_failure", "postgres_outage")):
    return pd.DataFrame({
        "drill": list(drills[: len(recovery)]), "criterion": "recovery_s", "comparison": "<=",
        "threshold": 25.0, "value": list(recovery), "outcome": "pass", "detail": "",
    })  # fmt: skip


def all_attested():
    return {item: Attestation(item, "Ada", "2026-12-01T00:00:00") for item in MANUAL_ITEMS}


def full_sources(**overrides):
    base = dict(
        verdicts=GOOD_VERDICTS, divergence={"baseline": divergence_table(), "crash_a": divergence_table(1000, 900)},
        reconciliation={"baseline": reconciliation_row(), "crash_a": reconciliation_row(cash_delta=0.4)},
        baseline_days=90.0, monitoring_coverage=coverage_table(), alert_delivery=delivery_table(),
        decision_flood=flood_table(), drills=drills_table(),
    )  # fmt: skip
    base.update(overrides)
    return Sources(**base)


# ------------------------------------------------------------------------------------- thresholds at edges


@pytest.mark.parametrize(
    ("gate", "at", "beyond"),
    [
        ("hard_limit_breaches", 0, 1),
        ("decision_latency_p99_ms", 15.0, 15.001),
        ("recovery_mean_s", 25.0, 25.01),
        ("integrity_delta_usd", 1.0, 1.01),
        ("stress_scenarios_passed_pct", 100.0, 99.99),
        ("circuit_breakers_pct", 95.0, 94.99),
        ("monitoring_coverage_pct", 100.0, 99.9),
        ("alert_delivery_pct", 100.0, 99.9),
        ("readiness_pct", 100.0, 99.9),
    ],
)
def test_inclusive_gates_pass_at_their_threshold_and_fail_just_beyond(gate, at, beyond):
    assert judge(gate, Measurement(at, "edge")).verdict == PASS
    failed = judge(gate, Measurement(beyond, "beyond"))
    assert failed.verdict == FAIL
    assert failed.value == beyond and failed.threshold == DEFAULT_THRESHOLDS[gate]


@pytest.mark.parametrize(("gate", "threshold"), [("divergence_pct", 20.0), ("alert_median_s", 15.0),
                                                 ("alert_p95_s", 30.0)])  # fmt: skip
def test_strict_gates_fail_at_their_threshold(gate, threshold):
    assert judge(gate, Measurement(threshold - 1e-6, "below")).verdict == PASS
    at = judge(gate, Measurement(threshold, "at"))
    assert at.verdict == FAIL
    assert "20% >= 20%" in at.detail if gate == "divergence_pct" else f">= {int(threshold)} s" in at.detail


def test_no_value_is_no_input_never_a_pass_and_makes_no_go():
    result = judge("monitoring_coverage_pct", Measurement(None, "monitoring_coverage has not been materialised"))
    assert result.verdict == NO_INPUT
    assert result.reason() == "monitoring_coverage_pct: no input (monitoring_coverage has not been materialised)"


def test_a_failure_fails_whatever_the_value():
    result = judge("integrity_delta_usd", Measurement(0.0, "cash agrees", failure="2 lost fills"))
    assert (result.verdict, result.detail) == (FAIL, "2 lost fills")


def test_configured_threshold_moves_the_edge(tmp_path):
    path = tmp_path / "gates.yaml"
    path.write_text("decision_latency_p99_ms: 5\ncircuit_breakers_pct: 90\n")
    thresholds = load_thresholds(path)
    assert thresholds["decision_latency_p99_ms"] == 5 and thresholds["recovery_mean_s"] == 25
    assert judge("decision_latency_p99_ms", Measurement(5.5, ""), thresholds).verdict == FAIL
    assert judge("circuit_breakers_pct", Measurement(90.0, ""), thresholds).verdict == PASS


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("latency: 5\n", "unknown gate 'latency'"),
        ("decision_latency_p99_ms: fast\n", "decision_latency_p99_ms: expected a finite number, got 'fast'"),
        ("recovery_mean_s: -1\n", "recovery_mean_s: expected a number >= 0"),
        ("circuit_breakers_pct: 101\n", "circuit_breakers_pct: a percentage, expected at most 100"),
        ("no_optimistic_bias: 1\n", "unknown gate 'no_optimistic_bias'"),
        ("- 1\n", "expected a mapping"),
        ("a: [\n", "not valid YAML"),
    ],
)
def test_bad_gates_file_names_the_file_and_key(tmp_path, text, message):
    path = tmp_path / "gates.yaml"
    path.write_text(text)
    with pytest.raises(GateConfigError, match=r"gates\.yaml") as err:
        load_thresholds(path)
    assert message in str(err.value)


def test_the_shipped_gates_file_holds_the_seeds_thresholds():
    from pathlib import Path

    shipped = Path(__file__).parents[1] / "data" / "certification" / "gates.yaml"
    assert load_thresholds(shipped) == DEFAULT_THRESHOLDS


# ------------------------------------------------------------------------------------- measurements


def test_stress_scenarios_counts_not_exercised_as_not_passed():
    table = verdict_table(GOOD_VERDICTS, verdict_rows("flat_crash", [], exercised=False))
    m = measure.stress_scenarios_passed(table)
    assert m.value == pytest.approx(200 / 3)
    assert "not exercised: flat_crash" in m.detail


def test_hard_limit_breaches_sums_and_names_scenarios():
    table = verdict_table(GOOD_VERDICTS, verdict_rows("lite", [("hard_limit_breaches", "<=", 0, 2, "fail")]))
    m = measure.hard_limit_breaches(table)
    assert m.value == 2 and "lite (2)" in m.detail
    assert judge("hard_limit_breaches", m).verdict == FAIL


def test_circuit_breakers_share_of_disasters_with_contained_loss():
    lost = verdict_rows("crash_c", [("max_drawdown_pct", "<=", 15, 30.0, "fail")], severity="catastrophic")
    flat = verdict_rows("crash_d", [("max_drawdown_pct", "<=", 15, 0.0, "pass")], severity="catastrophic",
                        exercised=False)  # fmt: skip
    m = measure.circuit_breakers(verdict_table(GOOD_VERDICTS, lost, flat))
    assert m.value == pytest.approx(200 / 3)
    assert "crash_c" in m.detail and "not exercised or without a loss criterion: crash_d" in m.detail
    assert measure.circuit_breakers(verdict_rows("x", [])).value is None


def test_monitoring_coverage_from_its_table():
    m = measure.monitoring_coverage(coverage_table(("pass", "fail", "not_run", "pass")))
    assert m.value == 50.0 and "fail: mode_1" in m.detail and "not run: mode_2" in m.detail
    assert measure.monitoring_coverage(None).value is None
    assert measure.monitoring_coverage(coverage_table(())).value is None
    with pytest.raises(ValueError, match="monitoring_coverage: column outcome, row 1: 'maybe'"):
        measure.monitoring_coverage(coverage_table(("pass", "maybe")))
    with pytest.raises(ValueError, match="monitoring_coverage: missing column"):
        measure.monitoring_coverage(coverage_table().drop(columns="outcome"))


def test_alert_delivery_rate_median_p95_and_duplicates():
    m = measure.alert_delivery(delivery_table(seconds=[1.0, 2.0, 3.0, np.nan], delivered=[True, True, True, False]))
    assert m["alert_delivery_pct"].value == 75.0 and "lost: alert_3" in m["alert_delivery_pct"].detail
    assert m["alert_median_s"].value == 2.0
    assert m["alert_p95_s"].value == pytest.approx(np.percentile([1.0, 2.0, 3.0], 95))
    duplicated = measure.alert_delivery(delivery_table(incidents=[1, 2, 1]))
    assert judge("alert_delivery_pct", duplicated["alert_delivery_pct"]).verdict == FAIL
    assert "alert_1" in duplicated["alert_p95_s"].failure
    assert all(v.value is None for v in measure.alert_delivery(None).values())
    none_delivered = measure.alert_delivery(delivery_table([np.nan], delivered=[False]))
    assert none_delivered["alert_delivery_pct"].value == 0 and none_delivered["alert_median_s"].value is None
    with pytest.raises(ValueError, match="alert_delivery: column delivery_s, row 1: delivered but no"):
        measure.alert_delivery(delivery_table([1.0, np.nan]))
    with pytest.raises(ValueError, match="alert_delivery: column delivered, row 0: expected true or false"):
        measure.alert_delivery(delivery_table([1.0], delivered=["yes"]))


def test_alert_delivery_p95_edge():
    # 20 deliveries: numpy's linear p95 of 0..19 s lands on 18.05 s
    m = measure.alert_delivery(delivery_table(seconds=[float(i) for i in range(20)]))
    assert m["alert_p95_s"].value == pytest.approx(18.05)
    slow = measure.alert_delivery(delivery_table(seconds=[1.0] * 18 + [30.0, 30.0]))
    assert slow["alert_p95_s"].value == pytest.approx(30.0)
    assert judge("alert_p95_s", slow["alert_p95_s"]).verdict == FAIL


def test_decision_latency_from_the_flood_table():
    m = measure.decision_latency(flood_table(p99=15.0))
    assert (m.value, m.source) == (15.0, "decision_flood")
    assert judge("decision_latency_p99_ms", m).verdict == PASS
    assert judge("decision_latency_p99_ms", measure.decision_latency(flood_table(p99=15.2))).verdict == FAIL
    assert measure.decision_latency(None).value is None
    assert measure.decision_latency(flood_table(decisions=0)).value is None
    with pytest.raises(ValueError, match="decision_flood: column p99_ms, row 0"):
        measure.decision_latency(flood_table(p99=float("inf")))


def test_recovery_mean_pools_outages_and_drills_and_fails_an_unrecovered_drill():
    m = measure.recovery_mean({"a": reconciliation_row()}, (), drills_table((20.0, 30.0)))
    assert m.value == pytest.approx((10.0 + 50.0) / 4)
    assert m.source == "portfolio_reconciliation, drills"
    stuck = measure.recovery_mean({"a": reconciliation_row()}, (), drills_table((5.0, np.nan)))
    assert judge("recovery_mean_s", stuck).verdict == FAIL and "postgres_outage" in stuck.failure
    assert measure.recovery_mean({"a": reconciliation_row()}, ("b",)).value is None
    assert measure.recovery_mean({"a": reconciliation_row(outages_recovered=0, recovery_s_sum=0.0)}).value is None


def test_integrity_fails_on_a_lost_fill_even_with_no_cash_delta():
    m = measure.integrity_delta({"a": reconciliation_row(lost=1, passed=False)})
    assert judge("integrity_delta_usd", m).verdict == FAIL and "1 lost" in m.failure
    assert measure.integrity_delta({"a": reconciliation_row(cash_delta=1.0)}).value == 1.0


def test_divergence_needs_the_baseline_over_90_days():
    assert measure.divergence({}, ()).value is None
    m = measure.divergence({"baseline": divergence_table(worst=0.25)}, baseline_days=90)
    assert m.value == pytest.approx(25.0) and judge("divergence_pct", m).verdict == FAIL
    short = measure.divergence({"baseline": divergence_table()}, baseline_days=30)
    assert judge("divergence_pct", short).verdict == FAIL and "30 days" in short.failure


# ------------------------------------------------------------------------------------- certification


def test_everything_measured_and_passing_is_go():
    result = certify(full_sources(), attestations=all_attested())
    assert [g.gate for g in result.gates if g.verdict != PASS] == []
    assert result.verdict == GO and result.reasons == []


def test_missing_drill_assets_are_no_go_with_reasons():
    result = certify(full_sources(monitoring_coverage=None, alert_delivery=None), attestations=all_attested())
    assert result.verdict == NO_GO
    assert "monitoring_coverage_pct: no input (monitoring_coverage has not been materialised)" in result.reasons
    by_gate = {g.gate: g for g in result.gates}
    assert by_gate["alert_p95_s"].verdict == NO_INPUT and by_gate["alert_p95_s"].source == "alert_delivery"
    assert by_gate["readiness_pct"].verdict == FAIL  # the automated items follow their gates


def test_an_unattested_manual_item_is_no_go():
    attested = all_attested()
    del attested["kill_switch_tested"]
    result = certify(full_sources(), attestations=attested)
    assert result.verdict == NO_GO
    assert any("readiness_pct" in r and "kill_switch_tested" in r for r in result.reasons)


def test_table_round_trip_keeps_every_gate_and_item():
    result = certify(full_sources(decision_flood=flood_table(p99=20.0)), attestations=all_attested())
    table = result.table()
    back = Certification.from_table(table)
    assert back.verdict == result.verdict == NO_GO
    assert [g.row() for g in back.gates] == [g.row() for g in result.gates]
    assert back.readiness.equals(result.readiness)
    forged = table.copy()
    forged.loc[forged["section"] == "overall", "verdict"] = GO
    with pytest.raises(ValueError, match="contradicts its gates"):
        Certification.from_table(forged)


def test_fingerprint_changes_with_any_value():
    a = fingerprint({"verdicts": GOOD_VERDICTS, "flood": None})
    changed = GOOD_VERDICTS.copy()
    changed.loc[1, "value"] = 6.01
    assert a == fingerprint({"flood": None, "verdicts": GOOD_VERDICTS.copy()})
    assert a != fingerprint({"verdicts": changed, "flood": None})
    assert a != fingerprint({"verdicts": GOOD_VERDICTS, "flood": flood_table()})


# ------------------------------------------------------------------------------------- readiness file


def test_readiness_file_attestations(tmp_path):
    path = tmp_path / "readiness.yaml"
    path.write_text("items:\n  - item: team_trained\n    attested_by: Ada\n    attested_at: 2026-12-01\n"
                    "  - item: kill_switch_tested\n    attested_by: null\n    attested_at: null\n")  # fmt: skip
    got = load_attestations(path)
    assert list(got) == ["team_trained"] and got["team_trained"].attested_at == "2026-12-01"


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("  - item: team_trained\n    attested_by: Ada\n    attested_at: soon\n",
         "items[1] (team_trained): attested_at: expected an ISO date or time, got 'soon'"),
        ("  - item: team_trained\n    attested_by: ''\n    attested_at: 2026-12-01\n",
         "items[1] (team_trained): attested_by: expected a name"),
        ("  - item: stress_scenarios_passed\n", "automated: it follows its gates"),
        ("  - item: team_trained\n    who: Ada\n", "items[1]: unknown field(s) who"),
    ],
)  # fmt: skip
def test_bad_readiness_entries_name_file_entry_and_field(tmp_path, entry, message):
    path = tmp_path / "readiness.yaml"
    path.write_text("items:\n" + entry)
    with pytest.raises(ReadinessError, match=r"readiness\.yaml") as err:
        load_attestations(path)
    assert message in str(err.value)


def test_the_shipped_readiness_file_attests_nothing_yet():
    from pathlib import Path

    shipped = Path(__file__).parents[1] / "data" / "certification" / "readiness.yaml"
    assert load_attestations(shipped) == {}


def test_nan_value_with_failure_still_fails():
    m = Measurement(math.nan, "x", failure="never recovered: kill_1")
    assert judge("recovery_mean_s", m).verdict == FAIL


def test_a_scenario_partition_without_a_verdict_leaves_the_gate_without_input():
    m = measure.stress_scenarios_passed(GOOD_VERDICTS, ["baseline", "crash_a", "crash_b", "crash_new"])
    assert m.value is None and "no verdict for crash_new" in m.detail
    assert measure.stress_scenarios_passed(GOOD_VERDICTS, ["baseline", "crash_a", "crash_b"]).value == 100.0


def test_a_long_list_of_missing_partitions_is_shortened():
    m = measure.recovery_mean({}, [f"s{i}" for i in range(8)])
    assert m.detail == "portfolio_reconciliation has no stored partition s0, s1, s2, s3, s4 and 3 more: materialise it"


def test_only_the_recovery_drills_enter_the_recovery_gate():
    # a stuck position closed after 250 s and a session reconnecting on its 60 s schedule are judged by
    # their own drills; the gate's mean is the server and broker outages' recovery
    drills = pd.concat([
        drills_table((10.0, 12.0)),
        drills_table((250.0, 30.0, 0.0), drills=("stuck_position", "exchange_outage", "rate_limits")),
    ])  # fmt: skip
    m = measure.recovery_mean({"a": reconciliation_row()}, (), drills)
    assert m.value == pytest.approx((10.0 + 10.0 + 12.0) / 4)
    assert judge("recovery_mean_s", m).verdict == PASS and "2 recovery drills, slowest 12.0s" in m.detail
    unrecovered_elsewhere = pd.concat([drills, drills_table((np.nan,), drills=("stuck_position",))])
    assert measure.recovery_mean({"a": reconciliation_row()}, (), unrecovered_elsewhere).failure is None


def test_a_missing_drill_partition_leaves_recovery_without_input():
    m = measure.recovery_mean({"a": reconciliation_row()}, (), drills_table((5.0,)), ["broker_failure"])
    assert m.value is None and m.detail == "drills has no stored partition broker_failure: materialise it"
    assert judge("recovery_mean_s", m).verdict == NO_INPUT
