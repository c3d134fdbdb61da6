"""Checks on the scenario library: every pack validates; stressed bars keep their invariants.

Both judge what the assets stored: the catalog's record of rejected packs, and each stressed table
(its OHLC consistency, read from the table itself, and the invariants ``stressed_bars`` measured when
it applied the scenario). Neither applies a scenario again.
"""

import dagster as dg
import pandas as pd

from stress_pipeline.defs.checks import Verdict, latest_metadata, report_per_partition
from stress_pipeline.defs.io_manager import PartitionValues
from stress_pipeline.defs.partitions import scenarios_partitions
from stress_pipeline.defs.scenarios.assets import scenario_catalog, stressed_bars
from stress_pipeline.scenarios.invariants import ohlc_violations

SCENARIO_PACKS_VALID = "scenario_packs_valid"
STRESSED_BARS_INVARIANTS = "stressed_bars_invariants"
CATALOG_KEY = scenario_catalog.key
STRESSED_BARS_KEY = stressed_bars.key


@dg.asset_check(
    asset=scenario_catalog,
    name=SCENARIO_PACKS_VALID,
    description="Every stress pack under $STRESS_DATA_DIR/stress_packs validates; a bad pack is named here.",
)
def scenario_packs_valid(context: dg.AssetCheckExecutionContext, scenario_catalog: pd.DataFrame) -> dg.AssetCheckResult:
    recorded = latest_metadata(context.instance, CATALOG_KEY)
    errors = list(recorded.get("rejected_packs") or [])
    return dg.AssetCheckResult(
        passed="rejected_packs" in recorded and not errors,
        severity=dg.AssetCheckSeverity.ERROR,
        description="; ".join(errors) if errors else None,
        metadata={
            "packs": dg.MetadataValue.int(int(recorded.get("packs") or 0) + len(errors)),
            "rejected": dg.MetadataValue.int(len(errors)),
            "errors": dg.MetadataValue.json(errors),
            "scenarios": dg.MetadataValue.int(len(scenario_catalog)),
        },
    )


@dg.asset_check(
    asset=stressed_bars,
    name=STRESSED_BARS_INVARIANTS,
    partitions_def=scenarios_partitions,
    description=(
        "OHLC consistency, prices > 0 and volume >= 0 outside corrupted rows; the realised drop equals the "
        "requested one within 0.1 percentage point; the stored bars equal a fresh, deterministic re-application; "
        "the quality suite reports every deliberately corrupted row."
    ),
)
def stressed_bars_invariants(context: dg.AssetCheckExecutionContext, stressed_bars: PartitionValues) -> None:
    verdicts = {}
    for key in context.partition_keys:
        table = stressed_bars[key]
        failures = [f"{count} row(s) outside corrupted rows break {rule}"
                    for rule, count in ohlc_violations(table).items() if count]  # fmt: skip
        recorded = latest_metadata(context.instance, STRESSED_BARS_KEY, key)
        if "invariants_passed" not in recorded:
            failures.append("stressed_bars recorded no invariants for this partition: materialise it again")
        failures.extend(recorded.get("invariant_failures") or [])
        failures = list(dict.fromkeys(failures))
        verdicts[key] = Verdict(
            passed=not failures,
            description="; ".join(failures) if failures else None,
            metadata={
                "checked_rows": dg.MetadataValue.int(len(table)),
                "failures": dg.MetadataValue.json(failures),
                "drops": dg.MetadataValue.json(recorded.get("drops") or []),
            },
        )
    report_per_partition(context, verdicts)

