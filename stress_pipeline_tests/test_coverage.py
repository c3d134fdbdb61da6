"""Monitoring coverage: a mode is covered only when its drill made it happen and its monitor's alert fired
then; crafted streams drive the rest and never count; misses, false alarms and slow monitors fail.

The drills here are real runs against Redis (services marker on those tests); the rule tests use the
detection tables in the stored shape."""

from __future__ import annotations

import dataclasses
import sys
import uuid

import numpy as np
import pandas as pd
import pytest

from stress_pipeline.drills.registry import FAILURE_MODE_DRILLS, run_drill
from stress_pipeline.drills.risk_drills import DrillEnv
from stress_pipeline.monitoring.coverage import COVERAGE_COLUMNS, coverage_percent, measure_coverage, validate_coverage
from stress_pipeline.monitoring.crafted import DETECTION_LIMITS_S, monitor_config
from stress_pipeline.monitoring.drill_detections import (
    DRILL_DETECTION_COLUMNS,
    detection_table,
    empty_detection_table,
    validate_detection_table,
)
from stress_pipeline.monitoring.monitors import FAILURE_MODES, MONITORS, run_monitors

UNDRILLED = sorted(set(FAILURE_MODES) - set(FAILURE_MODE_DRILLS))


def accept_all(alerts) -> list[bool]:
    return [True] * len(alerts)


def silent(observation, config) -> pd.DataFrame:
    """A monitor switched off: it looks at nothing and reports nothing."""
    return run_monitors(observation, config, {})


def detections(drill: str, *rows: tuple[str, float, float, bool]) -> pd.DataFrame:
    """A stored detection table: (mode, evidence_s, detected_s, alert raised)."""
    frame = pd.DataFrame(rows, columns=["failure_mode", "evidence_s", "detected_s", "alerted"])
    keys = [f"stress-pipeline/{m}/{drill}-{i}" for i, m in enumerate(frame["failure_mode"]) if frame["alerted"][i]]
    return detection_table(drill, frame.drop(columns="alerted"), keys)


# ------------------------------------------------------------------------------- the rule, stored tables


def test_crafted_streams_alone_never_make_coverage() -> None:
    report = measure_coverage(accept_all)
    table = report.table.set_index("failure_mode")
    assert tuple(report.table.columns) == COVERAGE_COLUMNS and len(table) == 14
    assert (table["source"] == "crafted").all() and (table["drill"] == "crafted:" + table.index).all()
    # Every monitor caught its crafted failure in time and the alert was accepted, yet nothing is covered.
    assert (table["outcome"] == "not_run").all() and table["fired"].all()
    assert (table["detection_s"] <= table.index.map(DETECTION_LIMITS_S)).all()
    assert report.percent == 0.0 and not report.passed and report.alerts_accepted == report.alerts_sent > 0
    assert table.loc["api_down", "detail"].startswith("drill exchange_outage has not run; crafted stream: detected")
    assert UNDRILLED == []  # every mode has a drill that makes it happen; none ran here
    for mode in FAILURE_MODES:
        assert table.loc[mode, "detail"].startswith(f"drill {FAILURE_MODE_DRILLS[mode]} has not run;"), mode
    # a mode whose drill the table does not know is driven by its crafted stream, and says so
    row = measure_coverage(accept_all, mode_drills={}, modes=["postgres_down"]).table.iloc[0]
    assert row["outcome"] == "not_run" and row["detail"].startswith("no drill makes it happen; crafted stream")


def test_every_mode_from_its_drill_is_full_coverage() -> None:
    drills = {"drill_for_all": detections("drill_for_all", *[(m, 10.0, 10.0 + i / 10, True)
                                                             for i, m in enumerate(FAILURE_MODES)])}  # fmt: skip
    report = measure_coverage(accept_all, drills=drills, mode_drills=dict.fromkeys(FAILURE_MODES, "drill_for_all"))
    assert report.percent == 100.0 and report.passed and report.alerts_sent == 0  # no crafted stream needed
    table = report.table.set_index("failure_mode")
    assert (table["source"] == "drill").all() and (table["drill"] == "drill_for_all").all()
    assert table.loc["redis_down", "detection_s"] == pytest.approx(1.0)  # 10th mode: 1.0 s evidence to conclusion


def test_a_drill_row_fails_when_missed_unalerted_or_slow() -> None:
    drills = {
        "exchange_outage": detections("exchange_outage", ("api_down", 100.0, 161.0, True)),  # limit 60 s
        "webhook_lost": detections("webhook_lost", ("webhook_lost", 300.0, 306.0, True),
                                   ("webhook_lost", 540.0, 540.0, False)),  # the second raised no alert
        "ess_reset": empty_detection_table(),  # ran, its monitor saw nothing
    }  # fmt: skip
    table = measure_coverage(accept_all, drills=drills).table.set_index("failure_mode")
    slow, unalerted, missed = table.loc["api_down"], table.loc["webhook_lost"], table.loc["ess_tripped"]
    assert slow["fired"] and slow["detection_s"] == 61.0 and slow["outcome"] == "fail"
    assert not unalerted["fired"] and unalerted["outcome"] == "fail" and "1 alert(s) raised" in unalerted["detail"]
    assert not missed["fired"] and np.isnan(missed["detection_s"]) and missed["outcome"] == "fail"
    assert missed["detail"] == "its monitor detected nothing while ess_reset ran"
    assert (table.loc[["api_down", "webhook_lost", "ess_tripped"], "source"] == "drill").all()


def test_crafted_rows_still_fail_on_a_miss_a_refused_alert_a_false_alarm_or_a_slow_monitor() -> None:
    blind = {**MONITORS, "stuck_position": silent}
    row = measure_coverage(accept_all, monitors=blind).table.set_index("failure_mode").loc["stuck_position"]
    assert not row["fired"] and row["outcome"] == "fail" and row["detail"].endswith("its monitor missed the failure")
    refused = measure_coverage(lambda alerts: [a.event_class != "redis_down" for a in alerts])
    assert refused.table.set_index("failure_mode").loc["redis_down", "outcome"] == "fail"
    jumpy = dataclasses.replace(monitor_config(), balance_drop=0.001)  # calm equity noise crosses it
    report = measure_coverage(accept_all, config=jumpy)
    assert set(report.false_alarms["failure_mode"]) == {"balance_anomaly"}
    row = report.table.set_index("failure_mode").loc["balance_anomaly"]
    assert row["outcome"] == "fail" and row["detail"].startswith("false alarm on the calm stream")
    slow = dataclasses.replace(monitor_config(), probe_failures=5)  # ~50 s for a 30 s limit
    row = measure_coverage(accept_all, config=slow).table.set_index("failure_mode").loc["postgres_down"]
    assert row["fired"] and row["detection_s"] > 30 and row["outcome"] == "fail"
    unmonitored = {k: v for k, v in MONITORS.items() if k != "kill_switch_set"}
    row = measure_coverage(accept_all, monitors=unmonitored).table.set_index("failure_mode").loc["kill_switch_set"]
    assert not row["monitored"] and row["outcome"] == "fail"


def test_a_false_alarm_fails_a_mode_its_drill_covered() -> None:
    drills = {"balance": detections("balance", ("balance_anomaly", 5.0, 6.0, True))}
    jumpy = dataclasses.replace(monitor_config(), balance_drop=0.001)
    report = measure_coverage(accept_all, drills=drills, config=jumpy,
                              mode_drills={"balance_anomaly": "balance"})  # fmt: skip
    row = report.table.set_index("failure_mode").loc["balance_anomaly"]
    assert row["source"] == "drill" and row["fired"] and row["outcome"] == "fail"


def test_coverage_table_errors_name_column_and_row() -> None:
    good = pd.DataFrame([("api_down", True, "exchange_outage", "drill", True, 12.0, 60.0, "pass", "")],
                        columns=list(COVERAGE_COLUMNS))  # fmt: skip
    validate_coverage(good)
    assert coverage_percent(good) == 100.0 and coverage_percent(good.iloc[:0]) == 0.0
    with pytest.raises(ValueError, match=r"column 'outcome', row 0: 'maybe'"):
        validate_coverage(good.assign(outcome="maybe"))
    with pytest.raises(ValueError, match=r"column 'outcome', row 0: 'pass' is not pass only when monitored and fired"):
        validate_coverage(good.assign(fired=False, detection_s=np.nan))
    with pytest.raises(ValueError, match=r"column 'outcome', row 0: 'pass' is not pass on a crafted row"):
        validate_coverage(good.assign(source="crafted", drill="crafted:api_down"))
    with pytest.raises(ValueError, match=r"column 'drill', row 0: 'exchange_outage' is not crafted:<failure_mode>"):
        validate_coverage(good.assign(source="crafted", outcome="not_run"))
    with pytest.raises(ValueError, match=r"column 'outcome', row 0: 'pass' is not pass when slower than limit_s"):
        validate_coverage(good.assign(detection_s=61.0))
    with pytest.raises(ValueError, match=r"column 'source', row 0: 'guess'"):
        validate_coverage(good.assign(source="guess"))
    with pytest.raises(ValueError, match=r"column 'detection_s', row 0"):
        validate_coverage(good.assign(detection_s=-1.0))
    with pytest.raises(ValueError, match=r"missing column\(s\) fired"):
        validate_coverage(good.drop(columns="fired"))


def test_detection_tables_are_refused_by_column_and_row() -> None:
    good = detections("d", ("api_down", 1.0, 3.0, True), ("redis_down", 2.0, 2.5, False))
    assert tuple(good.columns) == DRILL_DETECTION_COLUMNS and list(good["detection_s"]) == [2.0, 0.5]
    assert list(good["alert"]) == ["stress-pipeline/api_down/d-0", ""]
    with pytest.raises(ValueError, match=r"drill_detections: column failure_mode, row 1: 'gremlins' is not a failure"):
        validate_detection_table(good.assign(failure_mode=["api_down", "gremlins"]))
    with pytest.raises(ValueError, match=r"column detection_s, row 0: -1.0 is not seconds >= 0"):
        validate_detection_table(good.assign(detected_s=[0.0, 2.5], detection_s=[-1.0, 0.5]))
    with pytest.raises(ValueError, match=r"column detection_s, row 1: 9.0 is not detected_s - evidence_s"):
        validate_detection_table(good.assign(detection_s=[2.0, 9.0]))
    with pytest.raises(ValueError, match=r"column evidence_s, row 0: nan is not seconds >= 0"):
        validate_detection_table(good.assign(evidence_s=[np.nan, 2.0]))
    with pytest.raises(ValueError, match=r"column drill, row 1: 'e' is not the table's drill 'd'"):
        validate_detection_table(good.assign(drill=["d", "e"]))
    with pytest.raises(ValueError, match=r"missing column\(s\) alert"):
        validate_detection_table(good.drop(columns="alert"))
    with pytest.raises(ValueError, match=r"unknown column\(s\) extra"):
        validate_detection_table(good.assign(extra=1))
    with pytest.raises(ValueError, match=r"drill_detections: column alert, row 0"):
        measure_coverage(accept_all, drills={"d": good.assign(alert=[None, ""])}, modes=["api_down"])


# ------------------------------------------------------------------------------------------ real drills


@pytest.fixture
def env(external_service_urls, tmp_path) -> DrillEnv:
    return DrillEnv(redis_url=external_service_urls.redis_url, alerts_dir=str(tmp_path / "alerts"),
                    operator_cli=(sys.executable, "-m", "stress_pipeline.cli"),
                    namespace=f"stress-test-{uuid.uuid4().hex[:12]}")  # fmt: skip


def _stored(name: str, env: DrillEnv) -> pd.DataFrame:
    result = run_drill(name, env)
    return detection_table(result.drill, result.detections, result.alerts)


@pytest.mark.services
def test_real_drills_cover_their_modes_and_a_disabled_monitor_fails_its_mode(env, monkeypatch) -> None:
    drills = {name: _stored(name, env) for name in ("webhook_lost", "high_slippage")}
    report = measure_coverage(accept_all, drills=drills)
    table = report.table.set_index("failure_mode")
    covered = ["webhook_lost", "high_slippage", "kill_switch_set"]  # kill switch: set when the strategy is disabled
    assert (table.loc[covered, "source"] == "drill").all() and (table.loc[covered, "outcome"] == "pass").all()
    assert table.loc["webhook_lost", "detection_s"] == pytest.approx(6.0)  # due at 300 s, concluded at 306 s
    assert table.loc["high_slippage", "detection_s"] == 0.0  # the faulty fill itself is the evidence
    assert report.percent == pytest.approx(100 * 3 / 14) and not report.passed
    assert set(table.index[table["outcome"] == "not_run"]) == set(FAILURE_MODES) - set(covered)
    # The webhook drill again, with the webhook_lost monitor switched off: the drill no longer detects the
    # gap, and the coverage, which reads the drill's own detections, fails the mode.
    monkeypatch.setitem(MONITORS, "webhook_lost", silent)
    blind = {**drills, "webhook_lost": _stored("webhook_lost", env)}
    assert blind["webhook_lost"].empty
    row = measure_coverage(accept_all, drills=blind).table.set_index("failure_mode").loc["webhook_lost"]
    assert row["source"] == "drill" and not row["fired"] and row["outcome"] == "fail"
    assert row["detail"] == "its monitor detected nothing while webhook_lost ran"
