"""The integrity group: the paper run's live state under faults, reconciled three ways."""

import json

import dagster as dg
import pandas as pd

from stress_pipeline.defs.partitions import scenarios_partitions
from stress_pipeline.defs.resources import StressResource
from stress_pipeline.defs.scenarios.assets import scenario_catalog
from stress_pipeline.defs.simulations.assets import paper_results, scenario_of
from stress_pipeline.state.live_run import LiveStateConfig, run_live_state


@dg.asset(
    group_name="integrity",
    partitions_def=scenarios_partitions,
    io_manager_key="parquet_io_manager",
    ins={"scenario_catalog": dg.AssetIn(scenario_catalog.key), "paper_results": dg.AssetIn(paper_results.key)},
    backfill_policy=dg.BackfillPolicy.single_run(),
    kinds={"postgres", "redis"},
)
def portfolio_reconciliation(
    context: dg.AssetExecutionContext, stress: StressResource, scenario_catalog: pd.DataFrame, paper_results
) -> dict[str, pd.DataFrame]:
    """Exchange fills vs the PostgreSQL ledger vs the Redis hot state, after the paper run's fills were
    written live while the scenario's faults hit the servers."""
    settings = stress.settings()
    out = {}
    for key in context.partition_keys:
        scenario = scenario_of(context, scenario_catalog, key)
        run_id = f"{key}-{context.run_id[:8]}"
        outcome = run_live_state(
            paper_results[key], run_id=run_id, faults=scenario.faults, settings=settings,
            initial_cash=stress.initial_capital, buffer_root=settings.paths.buffers, seed=scenario.seed,
            config=LiveStateConfig.from_settings(settings),
        )  # fmt: skip
        report = outcome.report
        context.log.info(f"{key}: {report.summary()}")
        out[key] = pd.DataFrame([outcome.summary_row()])
        context.add_asset_metadata(
            {
                "passed": dg.MetadataValue.bool(report.passed),
                "summary": dg.MetadataValue.text(report.summary()),
                "breaks": dg.MetadataValue.md(
                    report.breaks.to_markdown(index=False) if len(report.breaks) else "no breaks"
                ),
                "lost_fills": dg.MetadataValue.json(list(report.lost_fills[:50])),
                "duplicated_fills": dg.MetadataValue.json(list(report.duplicated_fills[:50])),
                "unexpected_fills": dg.MetadataValue.json(list(report.unexpected_fills[:50])),
                "buffered": dg.MetadataValue.json(outcome.writer["buffered"]),
                "outages": dg.MetadataValue.json(json.loads(json.dumps(outcome.outages, default=str))),
                "outage_timings": dg.MetadataValue.json(json.loads(json.dumps(outcome.writer["outage_timings"]))),
                "health": dg.MetadataValue.json(outcome.health[:100]),
                "writer_crashes": dg.MetadataValue.int(int(outcome.writer["crashes"])),
                "unplanned_recoveries": dg.MetadataValue.json(outcome.recoveries),
                "leftovers": dg.MetadataValue.text(outcome.leftovers.summary()),
                "seconds": dg.MetadataValue.float(outcome.seconds),
            },
            partition_key=key,
        )
    return out
