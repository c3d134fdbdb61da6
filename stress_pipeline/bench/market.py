"""Market benchmark: load the shipped klines, run the quality suite, generate synthetic bars."""

from __future__ import annotations

from pathlib import Path

from stress_pipeline.bench.timing import Measurement, measure
from stress_pipeline.market import load_bars
from stress_pipeline.market.quality import validate_bars
from stress_pipeline.market.symbols import discover_symbol_files
from stress_pipeline.market.synthetic import generate_bars


def run_market_bench(bars_dir: Path, symbols_file: Path, *, repeat: int = 3) -> list[Measurement]:
    files = [path for paths in discover_symbol_files(bars_dir).values() for path in paths]
    if not files:
        raise FileNotFoundError(f"no market data files under {bars_dir} (run `stress-pipeline data generate`)")
    bars = load_bars(files, symbols_file=symbols_file)
    one_symbol = bars[bars["symbol"] == bars["symbol"].iloc[0]].reset_index(drop=True)
    return [
        measure(
            f"load_bars: {len(files)} files", lambda: load_bars(files, symbols_file=symbols_file),
            repeat=repeat, items=len(bars),
        ),
        measure(
            "validate_bars: one symbol", lambda: validate_bars(one_symbol), repeat=repeat, items=len(one_symbol)
        ),
        measure("generate_bars: 90 days x 3 symbols", lambda: generate_bars(days=90), repeat=repeat, items=388_800),
    ]
