"""The integrity group: the paper run's live state under faults, reconciled three ways."""

import json

import dagster as dg
import pandas as pd

from stress_pipeline.defs.partitions import scenarios_partitions, symbols_partitions
from stress_pipeline.defs.scenarios.assets import scenario_catalog
from stress_pipeline.defs.simulations.assets import load_sim, paper_results
from stress_pipeline.scenarios.catalog import scenario_for_key
from stress_pipeline.settings import get_settings
from stress_pipeline.state.live_run import run_live_state


@dg.asset(
    group_name="integrity",
    partitions_def=scenarios_partitions,
    io_manager_key="parquet_io_manager",
    required_resource_keys={"simulation"},
    ins={"scenario_catalog": dg.AssetIn(scenario_catalog.key)},
    deps=[paper_results],
    backfill_policy=dg.BackfillPolicy.single_run(),
    kinds={"postgres", "redis"},
)
def portfolio_reconciliation(
    context: dg.AssetExecutionContext, scenario_catalog: pd.DataFrame
) -> dict[str, pd.DataFrame]:
    """Exchange fills vs the PostgreSQL ledger vs the Redis hot state, after the paper run's fills were
    written live while the scenario's faults hit the servers."""
    settings = get_settings()
    capital = context.resources.simulation.initial_capital
    symbols = context.instance.get_dynamic_partitions(symbols_partitions.name)
    out = {}
    for key in context.partition_keys:
        scenario = scenario_for_key(scenario_catalog, key, symbols)
        paper = load_sim(settings.storage_dir, "paper", key)
        run_id = f"{key}-{context.run_id[:8]}"
        outcome = run_live_state(
            paper, run_id=run_id, faults=scenario.faults, settings=settings, initial_cash=capital,
            buffer_root=settings.home / "buffers", seed=scenario.seed,
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
                "seconds": dg.MetadataValue.float(outcome.seconds),
            },
            partition_key=key,
        )
    return out

