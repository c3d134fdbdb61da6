"""The market group: canonical bars per symbol, read from $STRESS_DATA_DIR/bars."""


import dagster as dg
import pandas as pd

from stress_pipeline.defs.partitions import symbols_partitions
from stress_pipeline.defs.resources import StressResource
from stress_pipeline.market import BarFileError, load_bars
from stress_pipeline.market.summary import BarSummary, summarize_bars
from stress_pipeline.market.symbols import discover_symbol_files
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
        bars = load_bars(files, symbols_file=settings.symbols_file)
    except BarFileError as err:
        raise dg.Failure(
            description=str(err),
            metadata={"file": err.path, "location": err.location or "", "column": err.column or ""},
            allow_retries=False,
        ) from None
    summary = summarize_bars(bars)
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
