"""The market group: canonical bars per symbol, read from $STRESS_DATA_DIR/bars.

The asset validates before it promotes: it runs the bar quality suite on the bars it loaded and
fails, naming the file and line of the offending rows, before the IO manager writes anything, so bad
bars never replace the last good materialisation. The blocking check then judges what was stored.
"""

import dagster as dg
import pandas as pd

from stress_pipeline.defs.partitions import symbols_partitions
from stress_pipeline.defs.resources import StressResource
from stress_pipeline.market import BarFileError
from stress_pipeline.market.loaders import load_bars_with_sources
from stress_pipeline.market.quality import validate_bars
from stress_pipeline.market.sources import quality_failure_message
from stress_pipeline.market.summary import BarSummary, summarize_bars
from stress_pipeline.market.symbols import discover_symbol_files, symbol_market
from stress_pipeline.plots import downsample, line_plot_png, png_markdown

PREVIEW_ROWS = 10


@dg.asset(
    group_name="market",
    partitions_def=symbols_partitions,
    io_manager_key="parquet_io_manager",
    kinds={"pandas", "parquet"},
)
def market_bars(context: dg.AssetExecutionContext, stress: StressResource) -> dg.Output[pd.DataFrame]:
    """Canonical bars of one symbol, from every data file of that symbol under $STRESS_DATA_DIR/bars."""
    settings = stress.settings()
    symbol = context.partition_key
    files = discover_symbol_files(settings.bars_dir).get(symbol)
    if not files:
        raise dg.Failure(f"no market data files for {symbol} under {settings.bars_dir}", allow_retries=False)
    context.log.info(f"loading {len(files)} file(s) for {symbol}")
    try:
        bars, sources = load_bars_with_sources(
            files, symbols_file=settings.symbols_file, max_file_bytes=settings.max_file_bytes
        )
    except BarFileError as err:
        raise dg.Failure(
            description=str(err),
            metadata={"file": err.path, "location": err.location or "", "column": err.column or ""},
            allow_retries=False,
        ) from None
    calendar = symbol_market(settings.symbols_file, symbol).calendar
    report = validate_bars(bars, max_gap_ratio=settings.max_gap_ratio, calendar=calendar)
    if not report.success:
        raise dg.Failure(
            description=quality_failure_message(symbol, report, sources),
            metadata={
                "failed_expectations": dg.MetadataValue.json(
                    [{"name": o.name, "unexpected_count": o.unexpected_count} for o in report.failures]
                ),
                "report": dg.MetadataValue.md(report.to_markdown()),
            },
            allow_retries=False,
        )
    summary = summarize_bars(bars, calendar)
    return dg.Output(bars, metadata=_metadata(symbol, bars, summary, [str(f) for f in files]))


def _metadata(symbol: str, bars: pd.DataFrame, summary: BarSummary, files: list[str]) -> dict[str, object]:
    close = downsample(bars.set_index("ts")["close"])
    plot = png_markdown(line_plot_png({symbol: close}, title=f"{symbol} close", ylabel="price"), f"{symbol} close")
    return {
        "rows": dg.MetadataValue.int(summary.rows),
        "first_ts": dg.MetadataValue.text(summary.as_dict()["first_ts"] or ""),
        "last_ts": dg.MetadataValue.text(summary.as_dict()["last_ts"] or ""),
        "bar_interval": dg.MetadataValue.text(summary.as_dict()["interval"] or "unknown"),
        "gaps": dg.MetadataValue.int(summary.gaps),
        "missing_bars": dg.MetadataValue.int(summary.missing_bars),
        "gap_ratio": dg.MetadataValue.float(summary.gap_ratio),
        "files": dg.MetadataValue.json(files),
        "preview": dg.MetadataValue.md(bars.head(PREVIEW_ROWS).to_markdown(index=False)),
        "close_plot": dg.MetadataValue.md(plot),
    }


def failed_symbols(instance: dg.DagsterInstance, symbols: list[str]) -> list[str]:
    """The ``symbols`` whose latest ``market_bars`` attempt failed (after their last materialisation).

    Their stored bars are the last good ones, but no longer what the data directory holds: a stage
    that reads them would report on data the operator has since replaced. Dagster's own partition
    status answers this the same way for a run, a UI launch and a backfill.
    """
    known = set(instance.get_dynamic_partitions(symbols_partitions.name))
    wanted = [s for s in symbols if s in known]
    if not wanted:
        return []
    status = instance.get_status_by_partition(market_bars.key, wanted, symbols_partitions) or {}
    return [s for s in wanted if status.get(s) == dg.AssetPartitionStatus.FAILED]
