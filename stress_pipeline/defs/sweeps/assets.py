"""The sweeps group: the points of the sweep specs, each point's verdict and figures, and the summary.

``sweep_points`` expands every spec under $STRESS_DATA_DIR/sweeps against the scenario catalog and keeps
the dynamic partitions "sweep_points" in sync; ``sweep_results`` runs each point (partitioned, one run
for a whole sweep); ``sweep_summary`` reads every stored point through the IO manager and gives the
grid of verdicts, the failure region and the heat maps. The work is in ``stress_pipeline.sweeps``.
"""

import os
import socket

import dagster as dg
import pandas as pd
from pydantic import Field

from stress_pipeline.defs.io_manager import NotMaterialisedError, PartitionValues
from stress_pipeline.defs.market.assets import market_bars
from stress_pipeline.defs.partitions import sweep_points_partitions
from stress_pipeline.defs.resources import StressResource
from stress_pipeline.defs.scenarios.assets import scenario_catalog
from stress_pipeline.defs.sweeps.steps import STEP_IO_MANAGER
from stress_pipeline.market.schema import concat_bars
from stress_pipeline.scenarios.catalog import scenario_from_row
from stress_pipeline.sweeps.batches import DEFAULT_POINTS_PER_STEP, plan_batches
from stress_pipeline.sweeps.catalog import build_sweeps, partition_changes
from stress_pipeline.sweeps.plots import sweep_heatmap_markdown
from stress_pipeline.sweeps.spec import point_from_record
from stress_pipeline.sweeps.summary import (
    POINT_COLUMNS,
    axes_of,
    failure_rates,
    failure_region,
    run_points,
    sweep_grid,
)
from stress_pipeline.trading.risk.policy import load_policy

# The columns of a sweep's grid in the summary's metadata, and how many of its rows (the table has all).
GRID_FIGURES = ("outcome", "stress_drawdown_pct", "loss_pct", "total_pnl_pct", "max_drawdown", "mc_return_p5")
MAX_GRID_ROWS = 200


@dg.asset(
    group_name="sweeps",
    io_manager_key="parquet_io_manager",
    ins={"scenario_catalog": dg.AssetIn(scenario_catalog.key)},
    kinds={"pandas", "yaml"},
)
def sweep_points(
    context: dg.AssetExecutionContext, stress: StressResource, scenario_catalog: pd.DataFrame
) -> dg.Output[pd.DataFrame]:
    """Every point of every valid sweep spec under $STRESS_DATA_DIR/sweeps, with its partition key."""
    settings = stress.settings()
    catalog = build_sweeps(
        settings.sweeps_dir, [scenario_from_row(row) for _, row in scenario_catalog.iterrows()],
        strategy=stress.strategy, policy_for=lambda name: load_policy(name or stress.policy,
                                                                       policies_dir=settings.policies_dir),
    )  # fmt: skip
    for error in catalog.errors:
        context.log.warning(f"sweep spec rejected: {error}")
    name = sweep_points_partitions.name
    add, remove = partition_changes(
        context.instance.get_dynamic_partitions(name), catalog, folder_exists=settings.sweeps_dir.is_dir()
    )
    if add:
        context.instance.add_dynamic_partitions(name, add)
    for key in remove:
        context.instance.delete_dynamic_partition(name, key)
    table = catalog.table()
    return dg.Output(
        table,
        metadata={
            "points": dg.MetadataValue.int(len(table)),
            "by_sweep": dg.MetadataValue.json(table["sweep"].value_counts().sort_index().to_dict()),
            "rejected_specs": dg.MetadataValue.json([str(err) for err in catalog.errors]),
            "sweep_partitions_added": dg.MetadataValue.int(len(add)),
            "sweep_partitions_removed": dg.MetadataValue.json(remove),
        },
    )


class SweepBatchConfig(dg.Config):
    """How a sweep run splits its points into steps (each step one Celery task on a distributed run)."""

    points_per_step: int = Field(
        default=DEFAULT_POINTS_PER_STEP, ge=1, description="sweep points per step; fewer: more steps to share out"
    )


@dg.op(out=dg.DynamicOut(list, io_manager_key=STEP_IO_MANAGER))
def plan_sweep_batches(context: dg.OpExecutionContext, config: SweepBatchConfig, sweep_points: pd.DataFrame):
    """The run's sweep points in batches, the points of one system together (one baseline per batch)."""
    keys, known = list(context.partition_keys), set(sweep_points["key"])
    missing = [key for key in keys if key not in known]
    if missing:
        raise dg.Failure(f"no sweep point {', '.join(missing[:20])} in sweep_points: materialise sweep_points first")
    batches = plan_batches(sweep_points, keys, config.points_per_step)
    context.log.info(f"{len(keys)} sweep points in {len(batches)} steps of at most {config.points_per_step}")
    for number, batch in enumerate(batches):
        yield dg.DynamicOutput(batch, mapping_key=f"batch_{number:04d}")


@dg.op(out=dg.Out(dict, io_manager_key=STEP_IO_MANAGER))
def run_sweep_batch(
    context: dg.OpExecutionContext, stress: StressResource, sweep_points: pd.DataFrame, market_bars: PartitionValues,
    keys: list,
) -> dict:  # fmt: skip
    """One batch of sweep points run as the pipeline runs a scenario; records the process that ran it."""
    rows = sweep_points.set_index("key")
    points = [point_from_record({"key": key, **rows.loc[key].to_dict()}) for key in keys]
    policies_dir = stress.settings().policies_dir

    def bars_for(symbols):
        try:
            return concat_bars([market_bars[symbol] for symbol in symbols])
        except (KeyError, NotMaterialisedError) as err:
            raise dg.Failure(f"{err}; run `stress-pipeline run --select group:market` first") from None

    try:
        out = run_points(
            points, bars_for, lambda p: p.sim_config(stress.sim_config(p.scenario.symbols)),
            lambda p: p.trading_policy(load_policy(p.policy or stress.policy, policies_dir=policies_dir)),
        )  # fmt: skip
    except ValueError as err:
        raise dg.Failure(f"sweep point: {err}", allow_retries=False) from None
    context.add_output_metadata(
        {"points": len(out), "host": socket.gethostname(), "pid": os.getpid(), "first": keys[0], "last": keys[-1]}
    )
    return out


@dg.op(out=dg.Out(dict, io_manager_key="parquet_io_manager"))
def merge_sweep_batches(context: dg.OpExecutionContext, batches: list) -> dict:
    """Every batch's rows, one per sweep point of the run (each stored as its partition)."""
    out = {key: row for batch in batches for key, row in batch.items()}
    if sorted(out) != sorted(context.partition_keys):
        lost = sorted(set(context.partition_keys) - set(out))
        raise dg.Failure(f"sweep batches returned {len(out)} points, the run has {len(context.partition_keys)}: "
                         f"missing {', '.join(lost[:20])}")  # fmt: skip
    # One metadata entry for every partition of the run: Dagster 1.13 re-reads the dynamic partitions on
    # each per-partition add_asset_metadata (one query per point: 48 ms each at 200 points, growing with
    # the sweep), so each point's verdict lives in its stored row and in sweep_summary instead.
    failed = sum(row["outcome"].iloc[0] == "fail" for row in out.values())
    dg.AssetExecutionContext(context).add_asset_metadata(
        {"run_points": dg.MetadataValue.int(len(out)), "run_failed": dg.MetadataValue.int(int(failed))}
    )
    context.log.info(f"{len(out)} sweep points: {failed} fail")
    return out


@dg.graph_asset(
    group_name="sweeps",
    partitions_def=sweep_points_partitions,
    ins={
        "sweep_points": dg.AssetIn(sweep_points.key),
        "market_bars": dg.AssetIn(market_bars.key, partition_mapping=dg.AllPartitionMapping()),
    },
    backfill_policy=dg.BackfillPolicy.single_run(),
    kinds={"pandas", "numba"},
)
def sweep_results(sweep_points, market_bars):
    """One sweep point run as the pipeline runs a scenario (baseline, stressed bars, backtest, paper run,
    verdict) with the point's strategy parameters and policy knobs: its outcome, key figures and the
    5/50/95% bands of its resampled trades. A run over many points runs them in batches, one step each
    (op config points_per_step), which a Celery executor shares out among its workers."""
    batches = plan_sweep_batches(sweep_points)
    return merge_sweep_batches(batches.map(lambda keys: run_sweep_batch(sweep_points, market_bars, keys)).collect())


@dg.asset(
    group_name="sweeps",
    io_manager_key="parquet_io_manager",
    ins={
        "sweep_points": dg.AssetIn(sweep_points.key),
        "sweep_results": dg.AssetIn(sweep_results.key, partition_mapping=dg.AllPartitionMapping()),
    },
    kinds={"pandas"},
)
def sweep_summary(
    context: dg.AssetExecutionContext, sweep_points: pd.DataFrame, sweep_results: PartitionValues
) -> dg.Output[pd.DataFrame]:
    """Every sweep point's verdict and key metrics, one row each; per sweep, the heat map of the failure rate
    over its two widest axes and the parameter region where the system fails."""
    tables, missing = [], []
    for key in sweep_points["key"]:
        try:
            tables.append(sweep_results[key])
        except (KeyError, NotMaterialisedError):  # not a partition yet, or never materialised
            missing.append(key)
    table = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=list(POINT_COLUMNS))
    if missing:
        context.log.warning(f"{len(missing)} sweep points not materialised: {', '.join(missing[:20])}")
    metadata: dict[str, object] = {
        "points": dg.MetadataValue.int(len(table)),
        "failed": dg.MetadataValue.int(int((table["outcome"] == "fail").sum())),
        "missing": dg.MetadataValue.json(missing),
    }
    for sweep, rows in table.groupby("sweep", sort=True):
        grid = sweep_grid(rows)
        region = failure_region(grid)
        metadata[f"{sweep}_failure_region"] = dg.MetadataValue.json(region)
        metadata[f"{sweep}_summary"] = dg.MetadataValue.text(region["summary"])
        metadata[f"{sweep}_heatmap"] = dg.MetadataValue.md(sweep_heatmap_markdown(grid, str(sweep)))
        metadata[f"{sweep}_failure_rates"] = dg.MetadataValue.md(failure_rates(grid).to_markdown(index=False))
        shown = grid[[*axes_of(grid), *GRID_FIGURES]].head(MAX_GRID_ROWS)
        metadata[f"{sweep}_grid"] = dg.MetadataValue.md(shown.to_markdown(index=False, floatfmt=".4g"))
        context.log.info(f"sweep {sweep}: {region['summary']}")
    return dg.Output(table, metadata=metadata)
