"""The last lines of `stress-pipeline run`: a pipeline that worked with findings says so, not "all passed"."""

from __future__ import annotations

from pathlib import Path

from stress_pipeline.defs.runner import CheckVerdict, RunSummary, StepOutcome
from stress_pipeline.run_report import run_report
from stress_pipeline.settings import get_settings


def summary(status: str) -> RunSummary:
    verdict = CheckVerdict("divergence_report", "divergence_within_limit", "small_crash", status)
    step = StepOutcome("divergence_report", "small_crash", "materialized", 1.0, verdicts=[verdict])
    return RunSummary(steps=[step], checks=[verdict])


def last_line(status: str, tmp_path: Path) -> str:
    settings = get_settings({"STRESS_HOME": str(tmp_path)})
    text = run_report(summary(status), [], {"setup": 0.1}, 1.5, settings)
    return next(line for line in text.splitlines() if "partitions ok" in line)


def test_the_summary_line_tells_passes_findings_and_failures_apart(tmp_path: Path) -> None:
    assert last_line("passed", tmp_path).endswith(": all passed")
    assert last_line("warn", tmp_path) == (
        "1/1 partitions ok (materialised, checks pass) in 1.5s: the pipeline worked; 1 check(s) warn: "
        "findings about the system under test, above"
    )
    assert last_line("failed", tmp_path).startswith("0/1 partitions ok") and "FAILURES above" in last_line(
        "failed", tmp_path
    )


def test_only_the_catalog_reports_scenario_partition_changes() -> None:
    from stress_pipeline.run_report import run_done_lines

    changes = {"partitions_added": ["small_crash"], "partitions_removed": {"old": "no pack"}}
    catalog = StepOutcome("scenario_catalog", None, "materialized", 1.0, metadata=changes)
    sweep = StepOutcome("sweep_points", None, "materialized", 1.0,
                        metadata={"sweep_partitions_added": 45, "partitions_added": 45})  # fmt: skip
    lines = run_done_lines([catalog, sweep], [])
    assert "scenario partitions added: small_crash" in lines
    assert "scenario partition old removed: no pack" in lines
    assert not any("45" in line for line in lines)  # a first run that adds sweep points does not fail here
