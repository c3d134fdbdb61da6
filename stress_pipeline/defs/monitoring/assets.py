"""The monitoring group: coverage of the failure modes, alert delivery reliability, Prometheus metrics."""

from collections import Counter

import dagster as dg
import pandas as pd

from stress_pipeline.defs.beside import BESIDE
from stress_pipeline.defs.certification.inputs import OPTIONAL_TABLE_INPUT
from stress_pipeline.defs.drills.assets import DETECTIONS_KEY, DRILLS_KEY
from stress_pipeline.defs.monitoring.resources import AlertingResource
from stress_pipeline.defs.resources import StressResource
from stress_pipeline.monitoring.alert_store import alert_tables, deliveries_of, incidents_of
from stress_pipeline.monitoring.coverage import measure_coverage
from stress_pipeline.monitoring.delivery import AlertSender
from stress_pipeline.monitoring.delivery_report import (
    PHASES,
    delivery_failures,
    delivery_summary,
    run_delivery_scenarios,
)
from stress_pipeline.monitoring.metrics import ResultMetrics, previous_runs, push, write_textfile
from stress_pipeline.monitoring.queue import AlertQueue
from stress_pipeline.services import postgres_engine
from stress_pipeline.services.alert_receiver import LOCAL_ROUTING_KEY, ensure_receiver
from stress_pipeline.services.server_use import run_server_use
from stress_pipeline.services.urls import mask_url

GROUP = "monitoring"
_ALL = dg.AllPartitionMapping()
#: Every stored drill partition (a drill never run is absent), read while some have never been run.
DRILL_DETECTIONS_IN = dg.AssetIn(DETECTIONS_KEY, partition_mapping=_ALL, input_manager_key=OPTIONAL_TABLE_INPUT)
DRILLS_IN = dg.AssetIn(DRILLS_KEY, partition_mapping=_ALL, input_manager_key=OPTIONAL_TABLE_INPUT)


@dg.asset(
    group_name=GROUP, io_manager_key="parquet_io_manager", kinds={"postgres"},
    ins={"drill_detections": DRILL_DETECTIONS_IN},
)  # fmt: skip
def monitoring_coverage(
    context: dg.AssetExecutionContext, stress: StressResource, alerting: AlertingResource,
    drill_detections: dict[str, pd.DataFrame],
) -> dg.Output[pd.DataFrame]:  # fmt: skip
    """Seed 002 US-004: each failure mode of the checklist, whether the alert of its monitor fired when
    its drill made it happen (from the drills' stored detections), detection time; pass only at 100%.
    A mode without a drill run is driven by its crafted stream and never counts as covered."""
    settings = stress.settings()
    endpoint = alerting.endpoint(settings, stress.ledger_url)
    with AlertQueue(settings.paths.alerts / "coverage") as queue:
        sender = AlertSender(endpoint, queue)
        report = measure_coverage(
            lambda alerts: [d is not None and d.delivered for d in sender.send_all(alerts)],
            drills=drill_detections, tag=f"coverage-{context.run_id[:8]}",
        )  # fmt: skip
    table = report.table
    context.log.info(f"monitoring coverage {report.percent:.1f}% ({len(report.by_source['drill'])} modes from "
                     f"drills), {report.alerts_accepted}/{report.alerts_sent} crafted-stream alerts accepted by "
                     f"{mask_url(endpoint.url)}")  # fmt: skip
    return dg.Output(table, metadata={
        "coverage_pct": dg.MetadataValue.float(report.percent),
        "passed": dg.MetadataValue.bool(report.passed),
        "drills_read": dg.MetadataValue.json(sorted(drill_detections)),
        "modes_from_drills": dg.MetadataValue.json(report.by_source["drill"]),
        "modes_from_crafted_streams": dg.MetadataValue.json(report.by_source["crafted"]),
        "coverage": dg.MetadataValue.md(table.to_markdown(index=False)),
        "false_alarms_on_calm_stream": dg.MetadataValue.int(len(report.false_alarms)),
        "alerts_sent": dg.MetadataValue.int(report.alerts_sent),
        "alerts_accepted": dg.MetadataValue.int(report.alerts_accepted),
        "max_detection_s": dg.MetadataValue.float(float(table["detection_s"].max())),
        "alert_endpoint": dg.MetadataValue.text(mask_url(endpoint.url)),
    })  # fmt: skip


@dg.asset(group_name=GROUP, io_manager_key="parquet_io_manager", kinds={"postgres"}, tags=BESIDE)
def alert_delivery(
    context: dg.AssetExecutionContext, stress: StressResource, alerting: AlertingResource
) -> dg.Output[pd.DataFrame]:
    """Seed 002 test 3: alert scenarios through the fault proxy to the embedded receiver over real HTTP,
    the path slow, down or losing answers part of the time; every alert delivered, one incident each."""
    settings = stress.settings()
    database_url = stress.ledger_url()
    record = ensure_receiver(settings.home, database_url)
    engine, tables = postgres_engine(database_url), alert_tables(record.schema)
    try:
        with run_server_use(settings, f"alert_delivery {context.run_id}"):  # `services stop` waits meanwhile
            run = run_delivery_scenarios(
                record.port, alerting.routing_key or LOCAL_ROUTING_KEY, settings.paths.alerts / "delivery",
                lambda keys: Counter(r["dedup_key"] for r in incidents_of(engine, tables, keys)),
                count=alerting.delivery_scenarios, tag=f"delivery-{context.run_id[:8]}",
                count_receptions=lambda ids: Counter(r["alert_id"] for r in deliveries_of(engine, tables, ids)),
            )  # fmt: skip
    finally:
        engine.dispose()
    summary = delivery_summary(run.table)
    phases = run.table.assign(phase=run.phases, attempts=run.attempts, receptions=run.receptions)
    by_phase = phases.groupby("phase", sort=False).agg(
        alerts=("alert", "size"), delivered=("delivered", "sum"), median_s=("delivery_s", "median"),
        max_s=("delivery_s", "max"), max_attempts=("attempts", "max"), max_receptions=("receptions", "max"),
    )  # fmt: skip
    failures = delivery_failures(summary)
    return dg.Output(run.table, metadata={
        **{name: dg.MetadataValue.float(value) for name, value in summary.items()},
        "passed": dg.MetadataValue.bool(not failures),
        "failures": dg.MetadataValue.json(failures),
        "by_phase": dg.MetadataValue.md(by_phase.reset_index().to_markdown(index=False)),
        "schedule": dg.MetadataValue.json({name: share for name, share in PHASES}),
        "path": dg.MetadataValue.text("durable queue -> fault proxy -> embedded receiver -> PostgreSQL"),
        "receiver": dg.MetadataValue.text(record.url),
        "seconds": dg.MetadataValue.float(run.seconds),
    })  # fmt: skip


@dg.asset(
    group_name=GROUP,
    ins={
        "monitoring_coverage": dg.AssetIn(monitoring_coverage.key),
        "alert_delivery": dg.AssetIn(alert_delivery.key),
        # Published when they exist, left out while they have never been materialised.
        "scenario_verdicts": dg.AssetIn(dg.AssetKey("scenario_verdicts"), input_manager_key=OPTIONAL_TABLE_INPUT),
        "decision_flood": dg.AssetIn(dg.AssetKey("decision_flood"), input_manager_key=OPTIONAL_TABLE_INPUT),
        "drills": DRILLS_IN,
        "drill_detections": DRILL_DETECTIONS_IN,
    },
    kinds={"prometheus"},
)
def prometheus_metrics(
    context: dg.AssetExecutionContext, stress: StressResource, alerting: AlertingResource,
    monitoring_coverage: pd.DataFrame, alert_delivery: pd.DataFrame, scenario_verdicts, decision_flood,
    drills: dict[str, pd.DataFrame], drill_detections: dict[str, pd.DataFrame],
) -> dg.MaterializeResult:  # fmt: skip
    """The results as Prometheus metrics (runs, breaches, drill outcomes, detection and delivery times,
    decision latency): a textfile for node_exporter under STRESS_HOME/metrics, pushed to the Pushgateway
    too when STRESS_PUSHGATEWAY_URL is set."""
    textfile = stress.settings().paths.metrics_textfile
    metrics = ResultMetrics(
        runs_total=previous_runs(textfile) + 1, coverage=monitoring_coverage, delivery=alert_delivery,
        verdicts=scenario_verdicts, decision_flood=decision_flood,
        drills=pd.concat(list(drills.values()), ignore_index=True) if drills else None,
        drill_detections=pd.concat(list(drill_detections.values()), ignore_index=True) if drill_detections else None,
        drill_runs=_runs_recorded(context.instance, DRILLS_KEY, sorted(drills)),
    )  # fmt: skip
    write_textfile(metrics, textfile)
    if alerting.pushgateway_url:
        push(metrics, alerting.pushgateway_url)
        context.log.info(f"metrics pushed to {mask_url(alerting.pushgateway_url)}")
    published = {"scenario_verdicts": scenario_verdicts is not None, "decision_flood": decision_flood is not None,
                 "drills": sorted(drills)}  # fmt: skip
    return dg.MaterializeResult(
        metadata={
            "textfile": dg.MetadataValue.path(str(textfile)),
            "pushed_to": dg.MetadataValue.text(mask_url(alerting.pushgateway_url) if alerting.pushgateway_url else ""),
            "runs_total": dg.MetadataValue.float(metrics.runs_total),
            "tables": dg.MetadataValue.json(published),
        }
    )


def _runs_recorded(instance: dg.DagsterInstance, key: dg.AssetKey, partitions: list[str]) -> dict[str, int]:
    """How many times the instance recorded a materialisation of each of ``partitions`` of ``key``."""
    counts = {}
    for partition in partitions:
        records_filter, n, cursor = dg.AssetRecordsFilter(asset_key=key, asset_partitions=[partition]), 0, None
        while True:
            page = instance.fetch_materializations(records_filter, limit=1000, cursor=cursor)
            n, cursor = n + len(page.records), page.cursor
            if not page.has_more:
                break
        counts[partition] = n
    return counts
