"""Sensor that turns new or changed files under $STRESS_DATA_DIR/bars into partitions and runs."""

import json

import dagster as dg

from stress_pipeline.defs.market.assets import market_bars
from stress_pipeline.defs.partitions import symbols_partitions
from stress_pipeline.market.symbols import discover_symbol_files, file_fingerprint
from stress_pipeline.settings import get_settings


@dg.sensor(
    name="market_files_sensor",
    asset_selection=dg.AssetSelection.assets(market_bars),
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Adds a symbols partition and requests a market_bars run for each new or changed data file.",
)
def market_files_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    seen: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
    files_by_symbol = discover_symbol_files(get_settings().bars_dir)
    known = set(context.instance.get_dynamic_partitions(symbols_partitions.name))
    new_symbols = sorted(set(files_by_symbol) - known)
    current = {symbol: file_fingerprint(files) for symbol, files in files_by_symbol.items()}
    run_requests = [
        dg.RunRequest(run_key=f"{symbol}:{fingerprint}", partition_key=symbol)
        for symbol, fingerprint in sorted(current.items())
        if seen.get(symbol) != fingerprint
    ]
    return dg.SensorResult(
        run_requests=run_requests,
        dynamic_partitions_requests=[symbols_partitions.build_add_request(new_symbols)] if new_symbols else [],
        cursor=json.dumps(current, sort_keys=True),
    )
