"""Blocking data-quality check on market bars, run with Great Expectations."""

import dagster as dg

from stress_pipeline.defs.io_manager import PartitionValues
from stress_pipeline.defs.market.assets import market_bars
from stress_pipeline.defs.partitions import symbols_partitions
from stress_pipeline.defs.resources import StressResource
from stress_pipeline.market.quality import validate_bars
from stress_pipeline.market.symbols import symbol_market

MARKET_BARS_QUALITY = "market_bars_quality"


@dg.asset_check(
    asset=market_bars,
    name=MARKET_BARS_QUALITY,
    blocking=True,
    partitions_def=symbols_partitions,
    description=(
        "Great Expectations suite: required columns, no nulls, prices > 0, OHLC consistency, volume >= 0, "
        "unique and strictly increasing timestamps, no price spikes, no frozen bars, "
        "gap ratio <= STRESS_MAX_GAP_RATIO (bars missing inside the sessions of the symbol's calendar)."
    ),
)
def market_bars_quality(
    context: dg.AssetCheckExecutionContext, stress: StressResource, market_bars: PartitionValues
) -> dg.AssetCheckResult:
    calendar = symbol_market(stress.settings().symbols_file, context.partition_key).calendar
    report = validate_bars(market_bars.only(), max_gap_ratio=stress.max_gap_ratio, calendar=calendar)
    metadata: dict[str, object] = {
        "rows": dg.MetadataValue.int(report.rows),
        "expectations": dg.MetadataValue.int(len(report.outcomes)),
        "failed_expectations": dg.MetadataValue.json(
            [{"name": o.name, "unexpected_count": o.unexpected_count, "details": o.details} for o in report.failures]
        ),
        "gap_ratio": dg.MetadataValue.float(report.gap_ratio),
        "calendar": dg.MetadataValue.text(calendar),
    }
    if report.failures:
        metadata["failures"] = dg.MetadataValue.md(report.to_markdown())
    return dg.AssetCheckResult(passed=report.success, severity=dg.AssetCheckSeverity.ERROR, metadata=metadata)
