"""The drills group: the decision flood and the operational drills, run against the system under test.

Each drill partition stores two tables: ``drills`` (its criteria) and ``drill_detections`` (what the
monitors detected while it ran, with the alerts raised), which ``monitoring_coverage`` reads."""

import sys
from collections.abc import Iterator

import dagster as dg
import pandas as pd
from pydantic import Field

from stress_pipeline.defs.beside import BESIDE, QUIET
from stress_pipeline.defs.partitions import drills_partitions
from stress_pipeline.defs.resources import StressResource
from stress_pipeline.drills.core import DrillResult
from stress_pipeline.drills.decision_flood import run_redis_flood
from stress_pipeline.drills.plots import timeline_png
from stress_pipeline.drills.registry import run_drills
from stress_pipeline.drills.risk_drills import DrillEnv
from stress_pipeline.monitoring.drill_detections import detection_table
from stress_pipeline.plots import png_markdown
from stress_pipeline.services import resolve_service_urls
from stress_pipeline.services.server_use import run_server_use

DRILLS_KEY = dg.AssetKey("drills")
DETECTIONS_KEY = dg.AssetKey("drill_detections")


class DecisionFloodConfig(dg.Config):
    rate: float = Field(default=1_000.0, description="decisions per second, sent open-loop")
    seconds: float = Field(default=3.0, description="how long the load runs (the seeds' soak: 600)")
    decider: str = Field(default="", description="a decision function or risk governor, pkg.mod:callable; "
                                                 "empty: the stress resource's decider (STRESS_DECIDER)")


@dg.asset(group_name="drills", io_manager_key="parquet_io_manager", kinds={"redis"}, tags=QUIET)
def decision_flood(
    context: dg.AssetExecutionContext, config: DecisionFloodConfig, stress: StressResource
) -> pd.DataFrame:
    """The risk decision path driven at a fixed rate by an open-loop generator (latency from the
    scheduled send time): P50/P99/P99.9/max from an HDR-layout histogram and the RSS slope."""
    settings = stress.settings()
    decider = config.decider or stress.decider
    with run_server_use(settings, f"decision_flood {context.run_id}"):  # `services stop` waits meanwhile
        result = run_redis_flood(
            resolve_service_urls(settings).redis_url, rate=config.rate, seconds=config.seconds,
            policy=stress.trading_policy().risk, decider=decider,
        )  # fmt: skip
    table = result.table()
    context.add_output_metadata(
        {
            "decider": dg.MetadataValue.text(decider or "risk stack (state in Redis)"),
            "decisions": dg.MetadataValue.int(result.decisions),
            "answered_per_s": dg.MetadataValue.float(round(result.achieved_per_s, 1)),
            "p50_ms": dg.MetadataValue.float(result.p50_ms),
            "p99_ms": dg.MetadataValue.float(result.p99_ms),
            "p999_ms": dg.MetadataValue.float(result.p999_ms),
            "max_ms": dg.MetadataValue.float(result.max_ms),
            "rss_slope_mb_per_min": dg.MetadataValue.float(result.rss_slope_mb_per_min),
            "reasons": dg.MetadataValue.json(result.reasons),
            "table": dg.MetadataValue.md(table.to_markdown(index=False)),
        }
    )
    return table


class DrillsConfig(dg.Config):
    parallel: int = Field(
        default=3, ge=1,
        description="drills run at once (the longest first; most of a drill is waiting on real time): 1 runs "
                    "them one after another",
    )  # fmt: skip


@dg.multi_asset(
    group_name="drills", partitions_def=drills_partitions, can_subset=True,
    backfill_policy=dg.BackfillPolicy.single_run(),
    outs={
        # "result": the step's main output, so the node's output is the criteria table as before.
        "result": dg.AssetOut(
            key=DRILLS_KEY, io_manager_key="parquet_io_manager", kinds={"redis"}, is_required=False, tags=BESIDE,
            description="One operational drill (the partition) against the system under test: its criteria "
            "from the seeds, each measured (drill, criterion, comparison, threshold, value, outcome, detail) "
            "and its timeline (fault, detection, alert, recovery) as a table and a plot.",
        ),
        "drill_detections": dg.AssetOut(
            key=DETECTIONS_KEY, io_manager_key="parquet_io_manager", is_required=False, tags=BESIDE,
            description="What the monitors detected while the drill ran (failure mode, first evidence, "
            "conclusion, the alert raised), as monitoring_coverage reads it.",
        ),
    },
)  # fmt: skip
def drills(context: dg.AssetExecutionContext, config: DrillsConfig, stress: StressResource) -> Iterator[dg.Output]:
    """The operational drills of the run's partitions, ``config.parallel`` at a time (each drill has its
    own keys in Redis, its own proxy and its own alert folder): per drill, its criteria table and the
    monitors' detections, each stored when selected (both are with the group or either key: the drills
    of a run are one step). A drill that raises fails the step, naming it, after the others have run."""
    settings = stress.settings()
    urls = resolve_service_urls(settings)

    def env(name: str) -> DrillEnv:
        return DrillEnv(
            redis_url=urls.redis_url, alerts_dir=str(settings.paths.alerts / f"drill-{name}"),
            postgres_url=urls.postgres_url, operator_cli=(sys.executable, "-m", "stress_pipeline.cli"),
            decider=stress.decider,
        )  # fmt: skip

    names = list(context.partition_keys)
    metadata: dict[str, dict[str, object]] = {}

    def done(result: DrillResult) -> None:  # as each drill ends, while the longer ones still run
        context.log.info(result.summary())
        if "result" in context.selected_output_names:
            metadata[result.drill] = _drill_metadata(result, stress.decider)

    # The drills cut the servers through their own proxies; meanwhile `services stop` waits for them
    # (services/server_use.py; planned outages stop servers of their own).
    with run_server_use(settings, f"drills {context.run_id}"):
        results, errors = run_drills(names, env, parallel=config.parallel, on_done=done)
    if errors:
        failed = "; ".join(f"{name}: {type(err).__name__}: {err}" for name, err in errors.items())
        raise dg.Failure(f"{len(errors)} of {len(names)} drill(s) raised: {failed}", allow_retries=False)
    if "result" in context.selected_output_names:
        for name in names:
            context.add_asset_metadata(metadata[name], asset_key=DRILLS_KEY, partition_key=name)
        yield dg.Output({name: results[name].table for name in names}, "result")
    if "drill_detections" in context.selected_output_names:
        tables = {name: detection_table(name, results[name].detections, results[name].alerts) for name in names}
        for name, detections in tables.items():
            context.add_asset_metadata({
                "failure_modes": dg.MetadataValue.json(sorted(set(detections["failure_mode"]))),
                "detections": dg.MetadataValue.int(len(detections)),
            }, asset_key=DETECTIONS_KEY, partition_key=name)  # fmt: skip
        yield dg.Output(tables, "drill_detections")


def _drill_metadata(result: DrillResult, decider: str) -> dict[str, object]:
    name = result.drill
    return {
        "passed": dg.MetadataValue.bool(result.passed),
        "decider": dg.MetadataValue.text(decider or "risk stack (state in Redis)"),
        "summary": dg.MetadataValue.text(result.summary()),
        "criteria": dg.MetadataValue.md(result.table.drop(columns="drill").to_markdown(index=False)),
        "timeline": dg.MetadataValue.md(result.timeline.to_markdown(index=False)),
        "timeline_plot": dg.MetadataValue.md(png_markdown(timeline_png(result.timeline, title=name), name)),
        "alerts": dg.MetadataValue.json(list(result.alerts)),
        "detections": dg.MetadataValue.md(
            result.detections.to_markdown(index=False) if len(result.detections) else "no monitor detection"
        ),
    }
