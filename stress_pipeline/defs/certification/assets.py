"""The certification group: the day's go / no-go with its gates, recorded in the history, and its report.

Both assets are partitioned by day. They read every scenario partition of the divergence,
reconciliation and simulation assets and every drill partition (a partition never materialised is
reported missing by the gate that needs it, never skipped silently), and the unpartitioned tables of
``OPTIONAL_SOURCES`` (scenario verdicts, monitoring coverage, alert delivery, decision flood) through
``optional_table_input``: None while not materialised, and their gates are "no input" until then.
"""

import datetime as dt

import dagster as dg
import pandas as pd

from stress_pipeline.certification import history
from stress_pipeline.certification.decide import Certification
from stress_pipeline.certification.pipeline import (
    OPTIONAL_SOURCES,
    CertificationFiles,
    certify_stored,
    history_of,
    scenario_runs,
    stored,
    write_report,
)
from stress_pipeline.certification.report import render_report
from stress_pipeline.certification.summary import gate_line
from stress_pipeline.defs.certification.inputs import OPTIONAL_TABLE_INPUT
from stress_pipeline.defs.drills.assets import DRILLS_KEY
from stress_pipeline.defs.integrity.assets import portfolio_reconciliation
from stress_pipeline.defs.resources import StressResource
from stress_pipeline.defs.simulations.assets import backtest_results, divergence_report, paper_results

#: One certification per day (UTC); the latest partition is today's.
certification_days = dg.DailyPartitionsDefinition(start_date="2026-01-01", end_offset=1)
REPORT_NAME = "certification"
_ALL = dg.AllPartitionMapping()
OPTIONAL_INS = {
    name: dg.AssetIn(dg.AssetKey(name), input_manager_key=OPTIONAL_TABLE_INPUT) for name in OPTIONAL_SOURCES
}
SCENARIO_INS = {
    "divergence_report": dg.AssetIn(divergence_report.key, partition_mapping=_ALL),
    "portfolio_reconciliation": dg.AssetIn(portfolio_reconciliation.key, partition_mapping=_ALL),
    "paper_results": dg.AssetIn(paper_results.key, partition_mapping=_ALL),
}


@dg.asset(
    group_name="certification",
    partitions_def=certification_days,
    io_manager_key="parquet_io_manager",
    ins={**SCENARIO_INS, "drills": dg.AssetIn(DRILLS_KEY, partition_mapping=_ALL), **OPTIONAL_INS},
    kinds={"postgres"},
)
def certification(
    context: dg.AssetExecutionContext, stress: StressResource, divergence_report, portfolio_reconciliation,
    paper_results, drills, scenario_verdicts, monitoring_coverage, alert_delivery, decision_flood,
) -> pd.DataFrame:  # fmt: skip
    """Go / no-go: the gates of seeds 001 and 002 and the readiness checklist, each gate with its threshold,
    measured value, verdict, action and source; recorded in the certification history with the streak."""
    optional = {"scenario_verdicts": scenario_verdicts, "monitoring_coverage": monitoring_coverage,
                "alert_delivery": alert_delivery, "decision_flood": decision_flood}  # fmt: skip
    result, data_fingerprint = certify_stored(
        divergence=divergence_report, reconciliation=portfolio_reconciliation, paper=paper_results, drills=drills,
        optional=optional, files=CertificationFiles.under(stress.settings().data_dir),
        initial_capital=stress.initial_capital,
    )  # fmt: skip
    engine = stress.get_engine()
    history.migrate(engine)
    recorded = history.record(
        engine, result, partition=context.partition_key, code_version=history.code_version(),
        data_fingerprint=data_fingerprint, run_id=context.run_id,
    )  # fmt: skip
    context.log.info(f"certification {context.partition_key}: {result.verdict}; {recorded.summary()}")
    context.add_output_metadata(_metadata(result, recorded))
    return result.table()


@dg.asset(
    group_name="certification",
    partitions_def=certification_days,
    io_manager_key="parquet_io_manager",
    ins={
        "certification": dg.AssetIn(certification.key),
        **SCENARIO_INS,
        "backtest_results": dg.AssetIn(backtest_results.key, partition_mapping=_ALL),
        "scenario_verdicts": OPTIONAL_INS["scenario_verdicts"],
    },
    kinds={"html"},
)
def certification_report(
    context: dg.AssetExecutionContext, stress: StressResource, certification, divergence_report,
    portfolio_reconciliation, paper_results, backtest_results, scenario_verdicts,
) -> pd.DataFrame:  # fmt: skip
    """The day's certification as one self-contained HTML file (no network): verdict and gates, readiness,
    scenario table, per-scenario drill-down, divergence; stored under $STRESS_HOME/reports/certification/."""
    day = context.partition_key
    result = Certification.from_table(certification.only())
    engine = stress.get_engine()
    history.migrate(engine)
    html = render_report(
        result, partition=day, generated_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        history=history_of(history.latest(engine, partition=day)),
        verdicts=scenario_verdicts,
        runs=scenario_runs(paper_results, backtest_results, portfolio_reconciliation),
        divergence=stored(divergence_report)[0], initial_capital=stress.initial_capital,
    )  # fmt: skip
    path = stress.settings().paths.report_file(REPORT_NAME, day)
    row = write_report(html, path)
    context.add_output_metadata({
        "report": dg.MetadataValue.path(str(path)),
        "report_url": dg.MetadataValue.url(path.resolve().as_uri()),
        "verdict": dg.MetadataValue.text(result.verdict),
        "bytes": dg.MetadataValue.int(int(row["bytes"])),
    })  # fmt: skip
    return pd.DataFrame([{"partition": day, "verdict": result.verdict, **row}])


def _metadata(result: Certification, recorded: history.Recorded) -> dict[str, object]:
    gates = result.gate_table()[["gate", "threshold", "value", "unit", "verdict", "action", "source"]]
    return {
        "verdict": dg.MetadataValue.text(result.verdict),
        "go": dg.MetadataValue.bool(result.passed),
        "reasons": dg.MetadataValue.md("\n".join(f"- {r}" for r in result.reasons) or "every gate passes"),
        "gates": dg.MetadataValue.md(gates.to_markdown(index=False)),
        "gates_json": dg.MetadataValue.json([gate_line(gate) for gate in result.gates]),
        "readiness": dg.MetadataValue.md(result.readiness.to_markdown(index=False)),
        "certification_id": dg.MetadataValue.int(recorded.certification_id),
        "streak": dg.MetadataValue.int(recorded.streak),
        "certified": dg.MetadataValue.bool(recorded.certified),
        "code_version": dg.MetadataValue.text(recorded.code_version),
        "data_fingerprint": dg.MetadataValue.text(recorded.data_fingerprint),
    }
