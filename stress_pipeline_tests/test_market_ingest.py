"""Ingest robustness on real files: NaN and empty values named, streamed reads, size limits, provenance."""

from __future__ import annotations

import gzip
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stress_pipeline.bench.ingest import kline_table, measure_load, size_limit_refuses, write_files
from stress_pipeline.market import BarFileError, load_bars, loaders
from stress_pipeline.market.loaders import BINANCE_COLUMNS, load_bars_with_sources

from .test_market_loaders import kline_rows, load_error, write


@pytest.fixture
def symbols_file(tmp_path: Path) -> Path:
    path = tmp_path / "symbols.yaml"
    path.write_text("defaults:\n  spread_bps: 3.0\n")
    return path


@pytest.mark.parametrize(
    ("value", "problem"),
    [("nan", "'nan' is not a finite number"), ("NaN", "'NaN' is not a finite number"),
     ("inf", "'inf' is not a finite number"), ("", "empty value, expected a number")],
    ids=["nan", "NaN", "inf", "empty"],
)  # fmt: skip
def test_csv_nan_infinite_or_empty_value_names_line_and_column(
    tmp_path: Path, symbols_file: Path, value: str, problem: str
) -> None:
    rows = kline_rows(20)
    fields = rows[13].split(",")
    fields[4] = value  # close
    rows[13] = ",".join(fields)
    path = write(tmp_path / "BTCUSDT-1m.csv", rows)
    err = load_error(path, symbols_file)
    assert str(err) == f"{path}: line 14, column close: {problem}"


def test_streamed_csv_equals_a_whole_read_and_names_a_bad_line_in_a_late_block(
    tmp_path: Path, symbols_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = kline_rows(3000)
    plain = write(tmp_path / "BTCUSDT-1m.csv", rows)
    gz = tmp_path / "ETHUSDT-1m.csv.gz"
    gz.write_bytes(gzip.compress(plain.read_bytes()))
    whole = load_bars([plain, gz], symbols_file=symbols_file)
    monkeypatch.setattr(loaders, "CSV_BLOCK_BYTES", 4096)  # ~50 blocks per file
    streamed = load_bars([plain, gz], symbols_file=symbols_file)
    pd.testing.assert_frame_equal(whole, streamed)
    assert len(streamed) == 6000 and streamed["close"].iloc[2999] == 42000.0 + 2999 + 0.5

    fields = rows[2876].split(",")
    fields[5] = "NaN"  # volume
    rows[2876] = ",".join(fields)
    bad = tmp_path / "SOLUSDT-1m.csv.gz"
    bad.write_bytes(gzip.compress(("\n".join(rows) + "\n").encode()))
    err = load_error(bad, symbols_file)
    assert (err.location, err.column) == ("line 2877", "volume")


def test_file_over_the_size_limit_fails_naming_it(tmp_path: Path, symbols_file: Path) -> None:
    path = write(tmp_path / "BTCUSDT-1m.csv", kline_rows(100))
    size = path.stat().st_size
    with pytest.raises(BarFileError) as info:
        load_bars(path, symbols_file=symbols_file, max_file_bytes=size - 1)
    assert str(info.value) == (
        f"{path}: {size:,} bytes, larger than the limit of {size - 1:,} bytes (max_file_bytes)"
    )
    assert len(load_bars(path, symbols_file=symbols_file, max_file_bytes=size)) == 100


def test_compressed_file_over_the_limit_once_decompressed_fails_naming_it(tmp_path: Path, symbols_file: Path) -> None:
    text = ("\n".join(kline_rows(20_000)) + "\n").encode()
    path = tmp_path / "BTCUSDT-1m.csv.gz"
    path.write_bytes(gzip.compress(text))
    limit = len(text) // 2
    assert path.stat().st_size < limit  # small on disk
    with pytest.raises(BarFileError) as info:
        load_bars(path, symbols_file=symbols_file, max_file_bytes=limit)
    assert str(info.value) == f"{path}: larger than the limit of {limit:,} bytes once decompressed (max_file_bytes)"
    assert len(load_bars(path, symbols_file=symbols_file, max_file_bytes=len(text))) == 20_000


def test_parquet_streams_by_row_group_and_keeps_provenance(tmp_path: Path, symbols_file: Path) -> None:
    n = 1000
    ts = (np.arange(n, dtype=np.int64)[::-1] * 60 + 1_704_067_200)  # newest first: the load sorts
    table = pa.table(
        {"timestamp": ts, "open": np.full(n, 10.0), "high": np.full(n, 11.0), "low": np.full(n, 9.0),
         "close": np.full(n, 10.5), "volume": np.ones(n)}
    )  # fmt: skip
    path = tmp_path / "BTCUSDT.parquet"
    pq.write_table(table, path, row_group_size=128)
    loaded = load_bars_with_sources(path, symbols_file=symbols_file)
    assert loaded.bars["ts"].is_monotonic_increasing and len(loaded.bars) == n
    # sorted row 0 is the file's last record: row group 7 (rows 896..999), row 103
    assert loaded.sources.locations([0, n - 1, 5]) == [
        f"{path}: row group 7, row 103", f"{path}: row group 0, row 0", f"{path}: row group 7, row 98"
    ]


def test_csv_provenance_counts_the_header_and_skips_blank_lines(tmp_path: Path, symbols_file: Path) -> None:
    rows = kline_rows(6)
    path = write(tmp_path / "BTCUSDT.csv", ["open_time,open,high,low,close,volume,close_time,qv,n,tb,tq,ig",
                                            rows[3], "", rows[0], rows[1], rows[2], rows[4], rows[5]])  # fmt: skip
    loaded = load_bars_with_sources(path, symbols_file=symbols_file)
    assert loaded.sources.locations([0, 3, 5]) == [f"{path}: line 4", f"{path}: line 2", f"{path}: line 8"]


OUT_OF_MEMORY_CHILD = """
import resource, sys
from pathlib import Path
from stress_pipeline.bench.ingest import kline_table, measure_load, size_limit_refuses, write_files
from stress_pipeline.market import BarFileError, load_bars
load_bars(Path(sys.argv[2]))  # imports and first-use allocations before the limit
vm = int(Path("/proc/self/statm").read_text().split()[0]) * resource.getpagesize()
resource.setrlimit(resource.RLIMIT_AS, (vm + 10 * 1024**2, resource.RLIM_INFINITY))
try:
    load_bars(Path(sys.argv[1]))
except BarFileError as err:
    print(err)
"""


def test_running_out_of_memory_names_the_file(tmp_path: Path) -> None:
    big = tmp_path / "BTCUSDT-1m.csv"
    pacsv.write_csv(kline_table(300_000, 1), big, pacsv.WriteOptions(include_header=False))
    small = write(tmp_path / "ETHUSDT-1m.csv", kline_rows(50))
    proc = subprocess.run(
        [sys.executable, "-c", OUT_OF_MEMORY_CHILD, str(big), str(small)], capture_output=True, text=True, timeout=300
    )
    assert proc.stdout.strip() == (
        f"{big}: out of memory while loading it: lower max_file_bytes (STRESS_MAX_FILE_BYTES) or split the file"
    ), proc.stderr[-2000:]


def test_bench_ingest_measures_a_load_in_a_fresh_process(tmp_path: Path) -> None:
    csv_path, gz_path, parquet_path, mt4_path = write_files(tmp_path, seed=3, target_bytes=4 * 1024**2)
    rows = [measure_load(path) for path in (csv_path, gz_path, parquet_path, mt4_path)]
    assert len({row.rows for row in rows[:3]}) == 1 and rows[0].rows > 30_000
    assert rows[3].file == "EURUSD-1m-bench-mt4.csv" and rows[3].rows == 4 * 1024**2 // 60
    for row in rows:
        assert row.decoded_bytes >= row.rows * 57  # ts, six floats, symbol codes
        assert row.peak_bytes >= row.baseline_bytes > 50 * 1024**2
        assert 0.0 <= row.ratio < 20.0
    assert size_limit_refuses(csv_path)


@settings(max_examples=25, deadline=None)
@given(
    order=st.permutations(range(40)),
    split=st.integers(1, 39),
    blanks=st.sets(st.integers(1, 45), max_size=5),
    duplicate=st.integers(0, 39),
    block=st.sampled_from([300, 1000, 4096, 1024**2]),
)
def test_every_row_s_location_holds_that_row(tmp_path_factory, order, split, blanks, duplicate, block) -> None:
    """Across two files in shuffled order, with blank lines, a header, a duplicated row and any CSV block
    size: the line each row is said to come from holds exactly that bar."""
    folder = tmp_path_factory.mktemp("prov")
    symbols_file = folder / "symbols.yaml"
    symbols_file.write_text("defaults:\n  spread_bps: 3.0\n")
    rows = kline_rows(40)
    lines = [rows[i] for i in order] + [rows[duplicate]]
    first, second = lines[:split], lines[split:]
    for position in sorted(blanks, reverse=True):
        first.insert(min(position, len(first)), "")
    a = write(folder / "BTCUSDT-1m-a.csv", first)
    b = write(folder / "BTCUSDT-1m-b.csv", [",".join(BINANCE_COLUMNS), *second])
    saved = loaders.CSV_BLOCK_BYTES
    loaders.CSV_BLOCK_BYTES = block
    try:
        loaded = load_bars_with_sources([a, b], symbols_file=symbols_file)
    finally:
        loaders.CSV_BLOCK_BYTES = saved
    assert len(loaded.bars) == 40 and loaded.bars["ts"].is_monotonic_increasing
    texts = {path: path.read_text().splitlines() for path in (a, b)}
    for row, where in enumerate(loaded.sources.locations(range(40))):
        name, line = where.rsplit(": line ", 1)
        fields = texts[Path(name)][int(line) - 1].split(",")
        assert pd.Timestamp(int(fields[0]), unit="ms", tz="UTC") == loaded.bars["ts"].iloc[row]
        assert float(fields[4]) == loaded.bars["close"].iloc[row]
