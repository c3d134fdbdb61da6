"""Sensor that turns new or changed files under $STRESS_DATA_DIR/bars into partitions and runs.

Its cursor holds each symbol's file fingerprint. Without a cursor (the sensor's first tick on an
instance) it starts from what is already materialised: a symbol whose latest ``market_bars``
materialisation read the same files, after they were last written, counts as seen, so starting the UI
on an up-to-date instance launches nothing.
"""

import json
from pathlib import Path

import dagster as dg

from stress_pipeline.defs.market.assets import market_bars
from stress_pipeline.defs.partitions import symbols_partitions
from stress_pipeline.defs.resources import StressResource
from stress_pipeline.market.symbols import discover_symbol_files, file_fingerprint, unnamed_data_files


@dg.sensor(
    name="market_files_sensor",
    asset_selection=dg.AssetSelection.assets(market_bars),
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Adds a symbols partition and requests a market_bars run for each new or changed data file.",
)
def market_files_sensor(context: dg.SensorEvaluationContext, stress: StressResource) -> dg.SensorResult:
    bars_dir = stress.settings().bars_dir
    files_by_symbol = discover_symbol_files(bars_dir)
    for path in unnamed_data_files(bars_dir):
        context.log.error(f"{path}: skipped, cannot tell the symbol from the file name (expected e.g. BTCUSDT-1m.csv)")
    current = {symbol: file_fingerprint(files) for symbol, files in files_by_symbol.items()}
    known = set(context.instance.get_dynamic_partitions(symbols_partitions.name))
    if context.cursor:
        seen: dict[str, str] = json.loads(context.cursor)
    else:
        seen = materialised_fingerprints(context.instance, {s: f for s, f in files_by_symbol.items() if s in known})
    new_symbols = sorted(set(files_by_symbol) - known)
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


def materialised_fingerprints(instance: dg.DagsterInstance, files_by_symbol: dict[str, list[Path]]) -> dict[str, str]:
    """The fingerprint of every symbol whose latest materialisation read its current files.

    That is: the materialisation lists the same file names, and it happened after the newest of them
    was written. Other symbols are left out, so the sensor requests a run for them.
    """
    seen = {}
    for symbol, files in files_by_symbol.items():
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=market_bars.key, asset_partitions=[symbol]), limit=1
        ).records
        if not records or records[0].asset_materialization is None:
            continue
        recorded = records[0].asset_materialization.metadata.get("files")
        names = sorted(Path(str(path)).name for path in (recorded.value if recorded is not None else []))
        newest = max(path.stat().st_mtime for path in files)
        if names == sorted(path.name for path in files) and records[0].timestamp >= newest:
            seen[symbol] = file_fingerprint(files)
    return seen
