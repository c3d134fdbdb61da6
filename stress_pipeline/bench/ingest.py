"""Ingest memory benchmark: the peak memory of ``load_bars`` on large files, against the bars it returns.

``stress-pipeline bench ingest [--json]`` writes one Binance kline file of about 200 MB (plain CSV),
the same bars gzipped and as Parquet (row groups of 131,072 rows), and about 200 MB of the same kind
of bars as a MetaTrader 4 history export (text dates and times, the exports' parsing path), in a
temporary folder. Each file is
loaded in a fresh Python process (a real subprocess, so one load cannot inherit another's heap), which
reports its resident set size just before the load, its peak resident set size (VmHWM) after it, and the size
of the returned bars (``DataFrame.memory_usage(deep=True)``). The figure is

    (peak RSS - RSS before the load) / decoded bars

with target <= 3.0. The process's own baseline (the interpreter, pandas, pyarrow, numba) is printed
beside it, not counted. A last row checks the size limit: the CSV with ``max_file_bytes`` one byte
under its size must fail naming the file. Exit status 1 when a figure misses its target.
"""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import sys
import tempfile
import time
from argparse import Namespace
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

TARGET_RATIO = 3.0
FILE_BYTES = 200 * 1024**2
PARQUET_ROW_GROUP = 131_072
_T0_MS = 1_704_067_200_000


@dataclass(frozen=True)
class IngestMemory:
    """One load in its own process."""

    file: str
    file_bytes: int
    rows: int
    decoded_bytes: int
    baseline_bytes: int
    peak_bytes: int
    seconds: float

    @property
    def ratio(self) -> float:
        return (self.peak_bytes - self.baseline_bytes) / self.decoded_bytes

    @property
    def met(self) -> bool:
        return self.ratio <= TARGET_RATIO


def kline_table(rows: int, seed: int) -> pa.Table:
    """``rows`` one-minute Binance klines of a random walk (prices to the cent)."""
    rng = np.random.default_rng(seed)
    open_ms = _T0_MS + np.arange(rows, dtype=np.int64) * 60_000
    open_ = np.round(42_000.0 + np.cumsum(rng.normal(0.0, 5.0, rows)), 2)
    close = np.round(open_ + rng.normal(0.0, 3.0, rows), 2)
    volume = np.round(rng.uniform(1.0, 100.0, rows), 4)
    return pa.table({
        "open_time": open_ms, "open": open_, "high": np.maximum(open_, close) + 1.0,
        "low": np.minimum(open_, close) - 1.0, "close": close, "volume": volume,
        "close_time": open_ms + 59_999, "quote_volume": np.round(volume * open_, 4),
        "trades": np.full(rows, 100, dtype=np.int64), "taker_base": np.round(volume / 2, 4),
        "taker_quote": np.round(volume * open_ / 2, 4), "ignore": np.zeros(rows, dtype=np.int64),
    })  # fmt: skip


def write_files(folder: Path, seed: int, target_bytes: int = FILE_BYTES) -> list[Path]:
    """The CSV of about ``target_bytes``, its gzip and its Parquet, under ``folder``."""
    sample = folder / "sample.csv"
    pacsv.write_csv(kline_table(10_000, seed), sample, pacsv.WriteOptions(include_header=False))
    rows = int(target_bytes / (sample.stat().st_size / 10_000))
    sample.unlink()
    table = kline_table(rows, seed)
    csv_path = folder / "BTCUSDT-1m-bench.csv"
    pacsv.write_csv(table, csv_path, pacsv.WriteOptions(include_header=False))
    gz_path = folder / "ETHUSDT-1m-bench.csv.gz"
    with open(csv_path, "rb") as source, gzip.open(gz_path, "wb", compresslevel=1) as target:
        shutil.copyfileobj(source, target, 16 * 1024**2)
    parquet_path = folder / "SOLUSDT-1m-bench.parquet"
    pq.write_table(table.select(["open_time", "open", "high", "low", "close", "volume"]).rename_columns(
        ["timestamp", "open", "high", "low", "close", "volume"]), parquet_path, row_group_size=PARQUET_ROW_GROUP)
    del table
    return [csv_path, gz_path, parquet_path, write_metatrader(folder, seed, target_bytes)]


def write_metatrader(folder: Path, seed: int, target_bytes: int = FILE_BYTES) -> Path:
    """About ``target_bytes`` of one-minute bars as a MetaTrader 4 history export
    (``2024.01.02,09:30,open,high,low,close,volume``, no header)."""
    rows = target_bytes // 60  # about 60 bytes a line
    klines = kline_table(rows, seed)
    when = pc.cast(klines["open_time"], pa.timestamp("ms"))
    table = pa.table({
        "date": pc.strftime(when, format="%Y.%m.%d"), "time": pc.strftime(when, format="%H:%M"),
        **{name: klines[name] for name in ("open", "high", "low", "close", "volume")},
    })  # fmt: skip
    path = folder / "EURUSD-1m-bench-mt4.csv"
    pacsv.write_csv(table, path, pacsv.WriteOptions(include_header=False, quoting_style="none"))
    return path


def measure_load(path: Path) -> IngestMemory:
    """Load ``path`` in a fresh interpreter and return its memory figures."""
    proc = subprocess.run(
        [sys.executable, "-m", "stress_pipeline.bench.ingest", str(path)],
        capture_output=True, text=True, check=False, timeout=1800,
    )  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(f"loading {path} failed: {proc.stderr.strip().splitlines()[-1:]}")
    return IngestMemory(**json.loads(proc.stdout.strip().splitlines()[-1]))


def size_limit_refuses(path: Path) -> bool:
    """A limit one byte under the file's size fails the load, naming the file."""
    from stress_pipeline.market import BarFileError, load_bars

    try:
        load_bars(path, max_file_bytes=path.stat().st_size - 1)
    except BarFileError as err:
        return str(path) in str(err) and "max_file_bytes" in str(err)
    return False


def format_rows(rows: list[IngestMemory], limit_ok: bool) -> str:
    lines = [f"{'file':28} {'MB':>7} {'rows':>11} {'bars MB':>8} {'base MB':>8} {'peak MB':>8} {'s':>6}  "
             f"peak/bars  target"]  # fmt: skip
    for row in rows:
        lines.append(
            f"{row.file:28} {row.file_bytes / 1e6:7.1f} {row.rows:11,} {row.decoded_bytes / 1e6:8.1f} "
            f"{row.baseline_bytes / 1e6:8.1f} {row.peak_bytes / 1e6:8.1f} {row.seconds:6.2f}  {row.ratio:9.2f}  "
            f"<= {TARGET_RATIO:g} {'met' if row.met else 'MISSED'}"
        )
    lines.append(f"size limit (max_file_bytes = size - 1) fails naming the file: {'met' if limit_ok else 'MISSED'}")
    return "\n".join(lines)


def main(args: Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="stress-bench-ingest-") as folder:
        files = write_files(Path(folder), args.seed or 0)
        rows = [measure_load(path) for path in files]
        limit_ok = size_limit_refuses(files[0])
    met = all(row.met for row in rows) and limit_ok
    if args.json:
        print(json.dumps({"target_ratio": TARGET_RATIO, "size_limit_refuses": limit_ok, "met": met,
                          "loads": [{**asdict(row), "ratio": row.ratio, "met": row.met} for row in rows]},
                         indent=2))  # fmt: skip
    else:
        print(format_rows(rows, limit_ok))
    return 0 if met else 1


def _child(path: Path) -> None:
    """In the fresh process: import the loader, note the RSS, load, report. Whatever the load itself
    imports or compiles counts against its figure (conservative)."""
    from stress_pipeline.market import load_bars

    baseline = _status_bytes("VmRSS")
    start = time.perf_counter()
    bars = load_bars(path)
    seconds = time.perf_counter() - start
    peak = _status_bytes("VmHWM")
    print(json.dumps(asdict(IngestMemory(
        file=path.name, file_bytes=path.stat().st_size, rows=len(bars),
        decoded_bytes=int(bars.memory_usage(deep=True).sum()), baseline_bytes=baseline, peak_bytes=peak,
        seconds=seconds,
    ))))  # fmt: skip


def _status_bytes(field: str) -> int:
    """A memory figure of this process from /proc/self/status. VmHWM (peak RSS) starts afresh at exec,
    unlike ``getrusage``'s ru_maxrss, which keeps the peak of the process that forked this one."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


if __name__ == "__main__":
    _child(Path(sys.argv[1]))
