"""The commands that stand for the users' REST endpoints, in process on a small project: a batch of
scenarios, a scenario's stored results, the status, and the schedules switched on the instance."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import dagster as dg
import pytest

from stress_pipeline.cli import main
from stress_pipeline.parquet_store import read_parquet
from stress_pipeline.settings import get_settings
from stress_pipeline.simulation.storage import read_result

from .test_cli import project  # noqa: F401  (the fixture)

SCHEDULES = ("hourly_flash_crash_lite_schedule", "nightly_core_suite_schedule", "weekly_full_sweep_schedule")


def runs_on(root: Path) -> int:
    if not (root / "history").exists():
        return 0
    os.environ["DAGSTER_HOME"] = str(root)
    return len(dg.DagsterInstance.get().get_runs())


def test_a_batch_runs_its_scenarios_and_results_reads_what_they_stored(
    project: Path, capsys: pytest.CaptureFixture[str]  # noqa: F811
) -> None:
    # bad batches: each refused with exit 2 naming the entry, nothing run
    assert main(["batch", "no_such_key", "small_spreads"]) == 2
    err = capsys.readouterr().err
    assert "no scenario 'no_such_key'" in err and "(partition keys: baseline, small_crash, small_spreads)" in err
    batch = project / "batch.txt"
    batch.write_text("small_spreads\n# the crash is next\n\nbogus name\n")
    assert main(["batch", "--file", str(batch)]) == 2
    assert f"{batch}:4: no scenario 'bogus name'" in capsys.readouterr().err
    (project / "empty.txt").write_text("# nothing\n\n")
    assert main(["batch", "--file", str(project / "empty.txt")]) == 2
    assert "empty.txt: lists no scenario" in capsys.readouterr().err
    assert main(["batch", "--file", str(project / "missing.txt")]) == 2
    assert "missing.txt: cannot read the batch file" in capsys.readouterr().err
    assert main(["batch"]) == 2
    assert main(["batch", "small_spreads", "--no-wait"]) == 2
    assert "--no-wait needs --webserver" in capsys.readouterr().err
    assert runs_on(project) == 0

    # status with the services not started: what needs them is unknown, and says why
    assert main(["status", "--json"]) == 0
    down = json.loads(capsys.readouterr().out)
    assert {row["name"]: row["running"] for row in down["services"]} == {"PostgreSQL": False, "Redis": False}
    assert down["kill_switch"]["state"] == "unknown" and "not started" in down["kill_switch"]["why"]
    assert down["certification"]["state"] == "unknown" and "not started" in down["certification"]["why"]

    # a result never materialised, and an unknown one
    assert main(["results", "Small Spreads"]) == 1
    assert "scenario Small Spreads (partition small_spreads) has never been materialised" in capsys.readouterr().out
    assert main(["results", "zzz"]) == 2
    assert "no scenario 'zzz'" in capsys.readouterr().err

    # a batch from a file of names and keys: every stage for exactly these scenarios
    batch.write_text("Small Spreads\n# the crash\nsmall_crash\n")
    assert main(["batch", "--file", str(batch), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["ok"] is True
    verdicts = {s["partition"] for s in summary["steps"] if s["asset"] == "scenario_verdict"}
    assert verdicts == {"small_spreads", "small_crash"}
    assert all(s["status"] == "materialized" for s in summary["steps"])
    assert not [s for s in summary["steps"] if s["asset"] in ("scenario_verdicts", "certification")]

    # results: the stored values, read back exactly as the assets wrote them
    assert main(["results", "Small Spreads", "--json"]) == 0
    found = json.loads(capsys.readouterr().out)
    paths = get_settings().paths
    stored_verdict = read_parquet(paths.asset_file(("scenario_verdict",), "small_spreads"))
    assert found["key"] == "small_spreads" and found["complete"] is True and found["missing"] == []
    assert [c["criterion"] for c in found["verdict"]["criteria"]] == list(stored_verdict["criterion"])
    assert [c["outcome"] for c in found["verdict"]["criteria"]] == list(stored_verdict["outcome"])
    expected = "fail" if (stored_verdict["outcome"] == "fail").any() else "pass"
    assert found["verdict"]["outcome"] == expected
    assert len(found["verdict"]["failed"]) == int((stored_verdict["outcome"] == "fail").sum())
    for kind in ("backtest", "paper"):
        metrics = read_result(paths.result_file((f"{kind}_results",), "small_spreads")).metrics
        assert found["metrics"][kind]["total_pnl"] == pytest.approx(float(metrics["total_pnl"]), abs=0)
        assert found["metrics"][kind]["total_trades"] == int(metrics["total_trades"])
    divergence = read_parquet(paths.asset_file(("divergence_report",), "small_spreads"))
    assert [row["metric"] for row in found["divergence"]] == list(divergence["metric"])
    reconciliation = read_parquet(paths.asset_file(("portfolio_reconciliation",), "small_spreads")).iloc[0]
    assert found["reconciliation"]["passed"] == bool(reconciliation["passed"])
    assert found["reconciliation"]["ledger_fills"] == int(reconciliation["ledger_fills"])

    assert main(["results", "small_crash"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("scenario small_crash (partition small_crash)\nverdict: ")
    assert "paper: total_pnl=" in text and "reconciliation: " in text and "not materialised" not in text

    # one stage missing: said, with what is stored, exit 1
    paths.asset_file(("divergence_report",), "small_crash").unlink()
    assert main(["results", "small_crash", "--json"]) == 1
    partial = json.loads(capsys.readouterr().out)
    assert partial["missing"] == ["divergence_report"] and partial["divergence"] is None
    assert partial["verdict"] is not None and partial["reconciliation"] is not None

    # status: services up (the batch started them, and the pair of its planned outages), nothing scheduled,
    # the kill switch off, no certification
    assert main(["status", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert {row["name"]: row["running"] for row in status["services"]} == {
        "PostgreSQL": True, "Redis": True, "PostgreSQL (planned outages)": True, "Redis (planned outages)": True,
    }  # fmt: skip
    assert {row["name"]: (row["status"], row["default"]) for row in status["schedules"]} == {
        name: ("STOPPED", True) for name in SCHEDULES
    }
    assert {row["name"]: row["status"] for row in status["sensors"]} == {
        "market_files_sensor": "RUNNING", "certification_no_go_sensor": "STOPPED",
        "suite_run_failure_sensor": "STOPPED", "lite_run_stale_sensor": "STOPPED",
    }  # fmt: skip
    assert status["last_runs"] == {"nightly_core_suite": None, "weekly_full_sweep": None,
                                   "hourly_flash_crash_lite": None}  # fmt: skip
    assert status["kill_switch"]["state"] == "no live run" and status["certification"] is None
    assert "stress:live is not initialised" in status["kill_switch"]["why"]

    # a live run, then its kill switch tripped: status says so, with the reason and author
    from stress_pipeline.lite.defaults import DEFAULT_NAMESPACE, DEFAULT_RUN_ID
    from stress_pipeline.lite.killswitch import trip
    from stress_pipeline.services import redis_client, resolve_service_urls
    from stress_pipeline.state.hot_state import HotState

    client = redis_client(resolve_service_urls(get_settings(), start=False).redis_url)
    live = HotState(client, DEFAULT_RUN_ID, namespace=DEFAULT_NAMESPACE)
    live.init(Decimal("1000"))
    keys = live.keys
    assert main(["status", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["kill_switch"] == {
        "run": keys.prefix, "state": "off", "on": False, "reason": "", "at": "", "by": ""}  # fmt: skip
    assert trip(client, keys, reason="drawdown 12% > 10%", by="lite", at=datetime(2026, 3, 2, 15, 0, 5, tzinfo=UTC))
    assert main(["status"]) == 0
    text = capsys.readouterr().out
    assert f"kill switch of {keys.prefix}: ON\n  set 2026-03-02T15:00:05.000Z by lite: drawdown 12% > 10%" in text
    assert "  schedule nightly_core_suite_schedule          STOPPED (default)" in text
    assert "  nightly_core_suite           never run" in text

    # a recorded certification: status shows the latest
    from stress_pipeline.certification import history
    from stress_pipeline.services import postgres_engine
    from stress_pipeline_tests.test_certification_history import PASSING

    engine = postgres_engine(resolve_service_urls(get_settings(), start=False).postgres_url)
    try:
        history.migrate(engine)
        recorded = history.record(engine, PASSING, partition="2026-12-06", code_version="git test",
                                  data_fingerprint="test")  # fmt: skip
    finally:
        engine.dispose()
    assert main(["status", "--json"]) == 0
    cert = json.loads(capsys.readouterr().out)["certification"]
    assert (cert["state"], cert["certification_id"], cert["partition"], cert["verdict"], cert["streak"]) == (
        "recorded", recorded.certification_id, "2026-12-06", "GO", recorded.streak)
    assert main(["status"]) == 0
    assert f"certification: #{recorded.certification_id} 2026-12-06 GO (recorded " in capsys.readouterr().out


def test_schedules_on_and_off_on_the_instance(project: Path, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    assert main(["schedules", "on", "no_such_schedule"]) == 2
    assert "no schedule 'no_such_schedule' (schedules: hourly_flash_crash_lite_schedule" in capsys.readouterr().err

    assert main(["schedules", "on", "nightly_core_suite_schedule", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"nightly_core_suite_schedule": "RUNNING"}
    assert main(["status", "--json"]) == 0
    rows = {row["name"]: (row["status"], row["default"]) for row in json.loads(capsys.readouterr().out)["schedules"]}
    assert rows == {"hourly_flash_crash_lite_schedule": ("STOPPED", True),
                    "nightly_core_suite_schedule": ("RUNNING", False),
                    "weekly_full_sweep_schedule": ("STOPPED", True)}  # fmt: skip

    assert main(["schedules", "off"]) == 0
    assert capsys.readouterr().out.splitlines() == [f"{name:36} STOPPED" for name in SCHEDULES]
    assert main(["status", "--json"]) == 0
    rows = {row["name"]: row["status"] for row in json.loads(capsys.readouterr().out)["schedules"]}
    assert rows == dict.fromkeys(SCHEDULES, "STOPPED")


def test_a_launched_run_is_printed_with_its_status_url_and_failed_checks() -> None:
    from stress_pipeline.defs.commands.cli import _launched_text
    from stress_pipeline.defs.commands.webserver import Launched, Webserver, WebserverError

    run = Launched("abc", "nightly_core_suite", "http://127.0.0.1:3000/runs/abc", "FAILURE", 100.0, 112.5,
                   failures=["nightly_core_suite_run: 1 partition(s) or check(s) did not pass"],
                   group_runs=[{"runId": "g1", "status": "FAILURE"}],
                   checks=[{"asset": "portfolio_reconciliation", "check": "reconciliation_clean",
                            "partition": "small_crash", "success": False, "severity": "ERROR", "run_id": "g1"},
                           {"asset": "market_bars", "check": "market_bars_quality", "partition": "BTCUSDT",
                            "success": True, "severity": "ERROR", "run_id": "g1"}])  # fmt: skip
    assert not run.ok
    assert _launched_text(run).splitlines() == [
        "run abc (nightly_core_suite): FAILURE in 12.5s; 1 group run(s), 2 check(s), 1 passed",
        "  http://127.0.0.1:3000/runs/abc",
        "  check portfolio_reconciliation.reconciliation_clean[small_crash]: FAILED (ERROR)",
        "  nightly_core_suite_run: 1 partition(s) or check(s) did not pass",
    ]
    # a failed WARN check does not fail a successful run; a failed ERROR check does
    run.status, run.failures = "SUCCESS", []
    run.checks[0]["severity"] = "WARN"
    assert run.ok
    run.checks[0]["severity"] = "ERROR"
    assert not run.ok
    with pytest.raises(WebserverError, match="expected an http:// or https:// URL"):
        Webserver("127.0.0.1:3000")
