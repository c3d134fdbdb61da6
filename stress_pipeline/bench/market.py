"""Market benchmark: the public market functions from their real inputs, each beside its kernel.

``stress-pipeline bench market``:

* ``load_bars`` of every data file under the bars directory (the shipped klines: 90 days x 3 symbols,
  388,800 rows in 9 gzip files) | kernel: decompressing and parsing those files (no frame, no
  concatenation or ordering);
* ``validate_bars`` on one symbol's loaded bars | kernel: the suite's own numpy work (gaps, spike and
  frozen-bar helper columns), the rest being Great Expectations;
* ``generate_bars`` of 90 days x 3 symbols | kernel: the model's arrays before the frame is built;
* ``prepare_panel`` on ``panel_symbols`` x ``panel_days`` of 1-minute bars (30 x 90 days: 129,600
  bars each, 3.9M bar-symbols) as a canonical DataFrame | kernel: the guard and the alignment
  (compiled) on arrays already read from the frame. This is the first step of ``run_backtest`` and
  ``run_paper`` from bars.

Targets are rates, so they hold for any data directory: best of ``repeat`` calls.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from stress_pipeline.bench.timing import Measurement, measure
from stress_pipeline.bench.transforms import Target
from stress_pipeline.market import load_bars
from stress_pipeline.market.gaps import gap_profile
from stress_pipeline.market.loaders import _read_csv, _read_parquet
from stress_pipeline.market.panel import panel_from_arrays, prepare_panel
from stress_pipeline.market.quality import BAR_CHECKS, CheckInput, validate_bars
from stress_pipeline.market.schema import BAR_COLUMNS, symbol_column
from stress_pipeline.market.symbols import discover_symbol_files
from stress_pipeline.market.synthetic import CALIBRATION, generate_bars
from stress_pipeline.market.synthetic_model import market_state, symbol_bars

LOAD_TARGET_ROWS_PER_S = 1_000_000
VALIDATE_TARGET_ROWS_PER_S = 400_000
GENERATE_TARGET_ROWS_PER_S = 2_000_000
PANEL_TARGET_BAR_SYMBOLS_PER_S = 20_000_000  # 30 x 129,600 in under 0.2 s


@dataclass(frozen=True)
class MarketTiming:
    """One bench row: a public call end to end, its kernel, and the target of each (a rate)."""

    name: str
    end_to_end: Measurement
    kernel: Measurement | None
    end_to_end_target: Target
    kernel_target: Target

    @property
    def end_to_end_met(self) -> bool:
        return self.end_to_end_target.met(self.end_to_end)

    @property
    def kernel_met(self) -> bool:
        return self.kernel is None or self.kernel_target.met(self.kernel)

    @property
    def met(self) -> bool:
        return self.end_to_end_met and self.kernel_met

    # The end-to-end figure under Measurement's names, for callers that print plain measurements.
    @property
    def seconds(self) -> float:
        return self.end_to_end.seconds

    @property
    def median_seconds(self) -> float:
        return self.end_to_end.median_seconds

    @property
    def items(self) -> int | None:
        return self.end_to_end.items

    @property
    def items_per_second(self) -> float | None:
        return self.end_to_end.items_per_second

    @property
    def unit(self) -> str:
        return self.end_to_end.unit

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"name": self.name}
        for part, m, target, met in (
            ("end_to_end", self.end_to_end, self.end_to_end_target, self.end_to_end_met),
            ("kernel", self.kernel, self.kernel_target, self.kernel_met),
        ):
            figures = {} if m is None else {k: v for k, v in m.as_dict().items() if k != "name"}
            out[part] = {**figures, "target": str(target) if m is not None else "", "met": met}
        out["met"] = self.met
        return out


def run_market_bench(
    bars_dir: Path,
    symbols_file: Path,
    *,
    repeat: int = 3,
    generate_days: int = 90,
    panel_symbols: int = 30,
    panel_days: int = 90,
) -> list[MarketTiming]:
    """Time the market's public functions on the files under ``bars_dir`` and on generated bars."""
    files = [path for paths in discover_symbol_files(bars_dir).values() for path in paths]
    if not files:
        raise FileNotFoundError(f"no market data files under {bars_dir} (run `stress-pipeline data generate`)")
    bars = load_bars(files, symbols_file=symbols_file)
    first = bars["symbol"].iloc[0]
    one_symbol = bars[bars["symbol"] == first].reset_index(drop=True)
    generated_rows = generate_days * 1_440 * 3
    panel_bars = panel_frame(panel_symbols, panel_days)
    panel_items = len(panel_bars)

    def rows(unit: str, per_s: float) -> Target:
        return Target(items_per_s=per_s, unit=unit)

    return [
        MarketTiming(
            f"load_bars: {len(files)} files",
            measure("load_bars", lambda: load_bars(files, symbols_file=symbols_file), repeat=repeat, items=len(bars)),
            measure("parse", lambda: [_parse(path) for path in files], repeat=repeat, items=len(bars)),
            rows("rows", LOAD_TARGET_ROWS_PER_S),
            rows("rows", LOAD_TARGET_ROWS_PER_S),
        ),
        MarketTiming(
            f"validate_bars: one symbol ({first})",
            measure("validate_bars", lambda: validate_bars(one_symbol), repeat=repeat, items=len(one_symbol)),
            measure("quality helpers", lambda: _quality_helpers(one_symbol), repeat=repeat, items=len(one_symbol)),
            rows("rows", VALIDATE_TARGET_ROWS_PER_S),
            rows("rows", VALIDATE_TARGET_ROWS_PER_S),
        ),
        MarketTiming(
            f"generate_bars: {generate_days} days x 3 symbols",
            measure("generate_bars", lambda: generate_bars(days=generate_days), repeat=repeat, items=generated_rows),
            measure("model arrays", lambda: _model_arrays(generate_days), repeat=repeat, items=generated_rows),
            rows("rows", GENERATE_TARGET_ROWS_PER_S),
            rows("rows", GENERATE_TARGET_ROWS_PER_S),
        ),
        MarketTiming(
            f"prepare_panel: {panel_symbols} symbols x {panel_days} days",
            measure(
                "prepare_panel", lambda: prepare_panel(panel_bars), repeat=repeat, items=panel_items,
                unit="bar-symbols",
            ),
            _panel_kernel(panel_bars, repeat),
            rows("bar-symbols", PANEL_TARGET_BAR_SYMBOLS_PER_S),
            rows("bar-symbols", PANEL_TARGET_BAR_SYMBOLS_PER_S),
        ),
    ]


def format_market_bench(rows: list[MarketTiming]) -> str:
    """The bench as a table: per call the end-to-end time and rate, the kernel's, each target and verdict."""
    lines = [
        f"{'benchmark':<40} {'end to end':>10} {'rate':>11} {'target':>20} {'met':>4}   "
        f"{'kernel':>10} {'rate':>11} {'met':>4}"
    ]
    for row in rows:
        e, k = row.end_to_end, row.kernel
        kernel = "" if k is None else f"{_ms(k.seconds):>10} {_rate(k):>11} {'yes' if row.kernel_met else 'NO':>4}"
        lines.append(
            f"{row.name:<40} {_ms(e.seconds):>10} {_rate(e):>11} {row.end_to_end_target!s:>20} "
            f"{'yes' if row.end_to_end_met else 'NO':>4}   {kernel}".rstrip()
        )
    return "\n".join(lines)


def market_targets_met(rows: list[MarketTiming]) -> bool:
    return all(row.met for row in rows)


def panel_frame(n_symbols: int = 30, days: int = 90) -> pd.DataFrame:
    """``n_symbols`` symbols S000.. of 1-minute bars tiled from the calibrated ones (prices scaled by
    1 + i/100), as a canonical DataFrame sorted by symbol and time."""
    base = generate_bars(days=days)
    n = len(base) // 3
    source = np.arange(n_symbols) % 3
    index = (source[:, None] * n + np.arange(n)).ravel()
    scale = np.repeat(1.0 + np.arange(n_symbols) / 100.0, n)
    data: dict[str, object] = {
        "ts": base["ts"].to_numpy()[index],
        "symbol": symbol_column(np.repeat(np.arange(n_symbols), n), [f"S{i:03d}" for i in range(n_symbols)]),
    }
    for column in BAR_COLUMNS[2:]:
        values = base[column].to_numpy()[index]
        data[column] = values * scale if column in ("open", "high", "low", "close") else values
    frame = pd.DataFrame(data)
    frame["ts"] = frame["ts"].dt.tz_localize("UTC") if frame["ts"].dt.tz is None else frame["ts"]
    return frame


def _parse(path: Path) -> dict[str, np.ndarray]:
    return _read_parquet(path) if path.name.lower().endswith((".parquet", ".pq")) else _read_csv(path)


def _quality_helpers(bars: pd.DataFrame) -> None:
    frame = bars.reset_index(drop=True)
    gaps = gap_profile(frame["ts"])
    inputs = CheckInput(frame=frame, columns=frozenset(frame.columns), rows=len(frame), max_gap_ratio=0.01,
                        sample_size=20, gaps=gaps)
    for check in BAR_CHECKS:
        if check.helpers is not None:
            check.helpers(inputs)


def _model_arrays(days: int) -> None:
    ts = pd.Timestamp("2024-01-01", tz="UTC").value + np.arange(days * 1_440, dtype=np.int64) * 60_000_000_000
    market = market_state(ts, 1, 20240101)
    for calibration in CALIBRATION.values():
        symbol_bars(calibration, market, 20240101)


def _panel_kernel(bars: pd.DataFrame, repeat: int) -> Measurement:
    codes = bars["symbol"].cat.codes.to_numpy()
    starts = np.concatenate([[0], np.flatnonzero(codes[1:] != codes[:-1]) + 1])
    offsets = np.concatenate([starts, [len(codes)]]).astype(np.int64)
    symbols = tuple(str(s) for s in bars["symbol"].cat.categories[codes[starts]])
    ts = bars["ts"].array.asi8
    columns = {name: bars[name].to_numpy() for name in ("open", "high", "low", "close", "volume", "spread_bps")}
    return measure(
        "guard + alignment", lambda: panel_from_arrays(symbols, offsets, ts, columns, None), repeat=repeat,
        items=len(bars), unit="bar-symbols",
    )


def _rate(m: Measurement) -> str:
    return f"{(m.items_per_second or 0.0) / 1e6:,.2f} M/s"


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms" if seconds < 10 else f"{seconds:.1f} s"
