"""Checks on the scenario library: every pack validates; stressed bars keep their invariants."""

import dagster as dg
import pandas as pd

from stress_pipeline.defs.partitions import scenarios_partitions, symbols_partitions
from stress_pipeline.defs.scenarios.assets import load_base_bars, scenario_catalog, stressed_bars
from stress_pipeline.market.symbols import discover_symbol_files
from stress_pipeline.scenarios.catalog import build_catalog, scenario_for_key
from stress_pipeline.scenarios.invariants import check_stressed_bars
from stress_pipeline.settings import get_settings

SCENARIO_PACKS_VALID = "scenario_packs_valid"
STRESSED_BARS_INVARIANTS = "stressed_bars_invariants"


@dg.asset_check(
    asset=scenario_catalog,
    name=SCENARIO_PACKS_VALID,
    description="Every stress pack under $STRESS_DATA_DIR/stress_packs validates; a bad pack is named here.",
)
def scenario_packs_valid(scenario_catalog: pd.DataFrame) -> dg.AssetCheckResult:
    settings = get_settings()
    catalog = build_catalog(settings.stress_packs_dir, known_symbols=list(discover_symbol_files(settings.bars_dir)))
    return dg.AssetCheckResult(
        passed=not catalog.errors,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "packs": dg.MetadataValue.int(len(catalog.packs) + len(catalog.errors)),
            "rejected": dg.MetadataValue.int(len(catalog.errors)),
            "errors": dg.MetadataValue.json([str(err) for err in catalog.errors]),
            "scenarios": dg.MetadataValue.int(len(scenario_catalog)),
        },
    )


@dg.asset_check(
    asset=stressed_bars,
    name=STRESSED_BARS_INVARIANTS,
    partitions_def=scenarios_partitions,
    additional_ins={"scenario_catalog": dg.AssetIn("scenario_catalog")},
    required_resource_keys={"parquet_io_manager"},
    description=(
        "OHLC consistency, prices > 0 and volume >= 0 outside corrupted rows; the realised drop equals the "
        "requested one within 0.1 percentage point; the stored bars equal a fresh, deterministic re-application. "
        "In a run over several scenarios the check covers each of them and passes only if all pass."
    ),
)
def stressed_bars_invariants(
    context: dg.AssetCheckExecutionContext, scenario_catalog: pd.DataFrame
) -> dg.AssetCheckResult:
    io_manager = context.resources.parquet_io_manager
    results: dict[str, dict[str, object]] = {}
    for key in context.partition_keys:
        symbols = context.instance.get_dynamic_partitions(symbols_partitions.name)
        scenario = scenario_for_key(scenario_catalog, key, symbols)
        stored = io_manager.load_partition(stressed_bars.key, key)
        report = check_stressed_bars(scenario, load_base_bars(context, scenario.symbols), stored)
        results[key] = {
            "passed": report.passed,
            "failures": list(report.failures),
            "checked_rows": report.checked_rows,
            "drops": report.drops,
        }
    failed = sorted(key for key, result in results.items() if not result["passed"])
    return dg.AssetCheckResult(
        passed=not failed,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "scenarios_checked": dg.MetadataValue.int(len(results)),
            "failed_scenarios": dg.MetadataValue.json(failed),
            "failures": dg.MetadataValue.json({key: r["failures"] for key, r in results.items() if r["failures"]}),
            "drops": dg.MetadataValue.json({key: r["drops"] for key, r in results.items()}),
        },
    )
