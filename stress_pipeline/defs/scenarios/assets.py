"""The scenarios group: the catalog of stress packs and the stressed bars of each scenario."""

import json
from pathlib import Path

import dagster as dg
import pandas as pd

from stress_pipeline.defs.checks import latest_metadata
from stress_pipeline.defs.market.assets import failed_symbols, market_bars
from stress_pipeline.defs.partitions import scenarios_partitions, symbols_partitions
from stress_pipeline.defs.resources import StressResource
from stress_pipeline.market.schema import concat_bars
from stress_pipeline.market.symbols import discover_symbol_files
from stress_pipeline.scenarios.catalog import Catalog, PartitionSync, build_catalog, scenario_for_key, sync_partitions
from stress_pipeline.scenarios.invariants import InvariantReport, check_stressed_bars
from stress_pipeline.scenarios.packs import pack_files
from stress_pipeline.scenarios.plots import scenario_plot_markdown
from stress_pipeline.scenarios.stress_run import StressRun, stress_scenario
from stress_pipeline.verdicts.anchor import anchor_record, anchor_scenario, baseline_run, is_anchored


@dg.asset(
    group_name="scenarios",
    io_manager_key="parquet_io_manager",
    kinds={"pandas", "yaml"},
)
def scenario_catalog(context: dg.AssetExecutionContext, stress: StressResource) -> dg.Output[pd.DataFrame]:
    """Every scenario of every valid stress pack under $STRESS_DATA_DIR/stress_packs, as a table."""
    settings = stress.settings()
    known = list(discover_symbol_files(settings.bars_dir))
    catalog = build_catalog(
        settings.stress_packs_dir, known_symbols=known, memory_budget=settings.scenario_memory_bytes
    )
    table = catalog.table()
    sync = _sync_partitions(context, catalog, settings.stress_packs_dir)
    return dg.Output(
        table,
        metadata={
            **_sync_metadata(sync),
            "scenarios": dg.MetadataValue.int(len(table)),
            "packs": dg.MetadataValue.int(len(catalog.packs)),
            "rejected_packs": dg.MetadataValue.json([str(err) for err in catalog.errors]),
            "by_type": dg.MetadataValue.json(table["type"].value_counts().sort_index().to_dict()),
            "library": dg.MetadataValue.md(
                table[["name", "type", "severity", "symbols", "pack", "parameters"]].to_markdown(index=False)
            ),
        },
    )


# The catalog's metadata remembers which pack file defined each scenario partition.
PARTITION_PACKS = "partition_packs"


def _sync_partitions(context: dg.AssetExecutionContext, catalog: Catalog, packs_dir: Path) -> PartitionSync:
    """Add the catalog's new keys; remove a key only when the pack that defined it removed it."""
    name = scenarios_partitions.name
    instance = context.instance
    owners = latest_metadata(instance, context.asset_key).get(PARTITION_PACKS) or {}
    on_disk = [path.name for path in pack_files(packs_dir)] if packs_dir.is_dir() else None
    sync = sync_partitions(instance.get_dynamic_partitions(name), owners, catalog, on_disk)
    if sync.add:
        instance.add_dynamic_partitions(name, list(sync.add))
    for key, reason in sync.remove.items():
        instance.delete_dynamic_partition(name, key)
        context.log.info(f"removed scenario partition {key}: {reason}")
    for key, reason in sync.keep.items():
        context.log.warning(f"kept scenario partition {key} although the catalog lacks it: {reason}")
    if sync.add:
        context.log.info(f"added scenario partitions: {', '.join(sync.add)}")
    return sync


def _sync_metadata(sync: PartitionSync) -> dict[str, object]:
    return {
        "partitions_added": dg.MetadataValue.json(list(sync.add)),
        "partitions_removed": dg.MetadataValue.json(dict(sync.remove)),
        "partitions_kept": dg.MetadataValue.json(dict(sync.keep)),
        PARTITION_PACKS: dg.MetadataValue.json(dict(sync.owners)),
    }


@dg.asset(
    group_name="scenarios",
    partitions_def=scenarios_partitions,
    io_manager_key="parquet_io_manager",
    ins={
        "scenario_catalog": dg.AssetIn(scenario_catalog.key),
        "market_bars": dg.AssetIn(market_bars.key, partition_mapping=dg.AllPartitionMapping()),
    },
    backfill_policy=dg.BackfillPolicy.single_run(),
    kinds={"pandas", "parquet"},
)
def stressed_bars(
    context: dg.AssetExecutionContext, stress: StressResource, scenario_catalog: pd.DataFrame, market_bars
) -> dict[str, pd.DataFrame]:
    """The scenario applied to the market bars it names: canonical bars plus stressed/corrupted/halted flags.

    The partition ``baseline`` holds every symbol's bars unstressed, the reference for the simulations.
    Each partition's invariants (the promised drop, reproducibility, corrupted rows caught by the quality
    suite) are measured here and recorded with it for the check to judge.
    """
    _refuse_failed_symbols(context, scenario_catalog)
    out: dict[str, pd.DataFrame] = {}
    for key in context.partition_keys:
        run, base = _stress(context, stress, scenario_catalog, market_bars, key)
        report = check_stressed_bars(run.scenario, base, run.stressed, calendar=run.calendar)
        out[key] = run.stressed
        context.add_asset_metadata({**_metadata(run), **_invariant_metadata(report)}, partition_key=key)
        context.log.info(f"{key}: {len(run.stressed)} rows, {int(run.stressed['stressed'].sum())} stressed")
    return out


def _refuse_failed_symbols(context: dg.AssetExecutionContext, catalog: pd.DataFrame) -> None:
    """Fail before any work when a scenario reads a symbol whose latest ``market_bars`` attempt failed.

    The stored bars of that symbol are the last good ones, not what its files now hold: nothing
    downstream of a failed symbol runs, whether launched from the CLI, the UI or a backfill.
    """
    symbols = context.instance.get_dynamic_partitions(symbols_partitions.name)
    needed: dict[str, list[str]] = {}
    for key in context.partition_keys:
        try:
            scenario = scenario_for_key(catalog, key, symbols)
        except KeyError as err:
            raise dg.Failure(str(err)) from None
        for symbol in scenario.symbols:
            needed.setdefault(symbol, []).append(key)
    failed = failed_symbols(context.instance, sorted(needed))
    if failed:
        blocked = ", ".join(f"{symbol} (scenarios {', '.join(needed[symbol])})" for symbol in failed)
        raise dg.Failure(
            f"the latest market_bars of {blocked} failed: fix the bar files and run `--select group:market` again",
            metadata={"failed_symbols": dg.MetadataValue.json(failed)},
            allow_retries=False,
        )


def _stress(context: dg.AssetExecutionContext, stress: StressResource, catalog: pd.DataFrame, market_bars, key: str):
    symbols = context.instance.get_dynamic_partitions(symbols_partitions.name)
    try:
        scenario = scenario_for_key(catalog, key, symbols)
    except KeyError as err:
        raise dg.Failure(str(err)) from None
    frames = []
    for symbol in scenario.symbols:
        if symbol not in market_bars:
            raise dg.Failure(f"no market data for {symbol}: it is not a symbols partition (no files on disk?)")
        try:
            frames.append(market_bars[symbol])
        except FileNotFoundError as err:
            raise dg.Failure(f"{err}; run `stress-pipeline run --select group:market` first") from None
    base = concat_bars(frames)
    config = stress.sim_config(scenario.symbols)
    try:
        if is_anchored(scenario):
            baseline = baseline_run(scenario.symbols, base, config, stress.trading_policy())
            scenario, anchor = anchor_scenario(scenario, baseline)
            context.add_asset_metadata({"anchor": dg.MetadataValue.json(anchor_record(anchor))}, partition_key=key)
        return stress_scenario(scenario, base, config.calendar), base
    except ValueError as err:
        raise dg.Failure(f"scenario '{scenario.name}': {err}") from None


def _invariant_metadata(report: InvariantReport) -> dict[str, object]:
    return {
        "invariants_passed": dg.MetadataValue.bool(report.passed),
        "invariant_failures": dg.MetadataValue.json(list(report.failures)),
        "drops": dg.MetadataValue.json(report.drops),
    }


def _metadata(run: StressRun) -> dict[str, object]:
    stats = run.stats
    rules = {"exchange_rules": dg.MetadataValue.json(run.result.rules)} if run.result.rules else {}
    return {
        **rules,
        "scenario": dg.MetadataValue.text(run.scenario.name),
        "type": dg.MetadataValue.text(run.scenario.type),
        "rows": dg.MetadataValue.int(len(run.stressed)),
        "stressed_rows": dg.MetadataValue.int(int(run.stressed["stressed"].sum())),
        "corrupted_rows": dg.MetadataValue.int(int(run.stressed["corrupted"].sum())),
        "halted_rows": dg.MetadataValue.int(int(run.stressed["halted"].sum())),
        "realised_stats": dg.MetadataValue.md(stats.to_markdown(index=False, floatfmt=".4f")),
        "realised_stats_json": dg.MetadataValue.json(json.loads(stats.to_json(orient="records"))),
        "plot": dg.MetadataValue.md(scenario_plot_markdown(run)),
    }
