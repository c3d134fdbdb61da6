"""Loading every supported input format, and the one clear error for every kind of bad file."""

from __future__ import annotations

import gzip
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from stress_pipeline.market import BAR_COLUMNS, BarFileError, load_bars
from stress_pipeline.market.loaders import BINANCE_COLUMNS
from stress_pipeline.market.symbols import discover_symbol_files, symbol_from_path, unnamed_data_files

T0_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z
MINUTE_MS = 60_000


@pytest.fixture
def symbols_file(tmp_path: Path) -> Path:
    path = tmp_path / "symbols.yaml"
    path.write_text("defaults:\n  spread_bps: 7.0\nsymbols:\n  BTCUSDT:\n    spread_bps: 1.0\n")
    return path


def kline_rows(n: int, *, start_ms: int = T0_MS, micros: bool = False, price: float = 42000.0) -> list[str]:
    rows = []
    for i in range(n):
        open_ms = start_ms + i * MINUTE_MS
        o, c = price + i, price + i + 0.5
        t = open_ms * 1000 if micros else open_ms
        close_t = (open_ms + MINUTE_MS) * (1000 if micros else 1) - 1
        rows.append(f"{t},{o:.2f},{c + 1:.2f},{o - 1:.2f},{c:.2f},1.5,{close_t},63000.0,10,0.7,29400.0,0")
    return rows


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def test_binance_spot_klines_in_milliseconds(tmp_path: Path, symbols_file: Path) -> None:
    bars = load_bars(write(tmp_path / "BTCUSDT-1m-2024-01.csv", kline_rows(3)), symbols_file=symbols_file)
    assert list(bars.columns) == list(BAR_COLUMNS)
    assert len(bars) == 3
    assert bars["ts"].iloc[0] == pd.Timestamp("2024-01-01T00:00:00Z")
    assert bars["ts"].iloc[2] == pd.Timestamp("2024-01-01T00:02:00Z")
    assert str(bars["ts"].dtype) == "datetime64[ns, UTC]"
    assert bars["symbol"].unique().tolist() == ["BTCUSDT"]
    first = bars[["open", "high", "low", "close", "volume"]].iloc[0].tolist()
    assert first == [42000.0, 42001.5, 41999.0, 42000.5, 1.5]
    assert (bars["spread_bps"] == 1.0).all()  # from symbols.yaml


def test_binance_klines_in_microseconds_match_milliseconds(tmp_path: Path, symbols_file: Path) -> None:
    ms = load_bars(write(tmp_path / "BTCUSDT-1m-a.csv", kline_rows(5)), symbols_file=symbols_file)
    us = load_bars(write(tmp_path / "BTCUSDT-1m-b.csv", kline_rows(5, micros=True)), symbols_file=symbols_file)
    pd.testing.assert_frame_equal(ms, us)


def test_gzip_and_zip_files(tmp_path: Path, symbols_file: Path) -> None:
    text = ("\n".join(kline_rows(4)) + "\n").encode()
    gz = tmp_path / "ETHUSDT-1m-2024-01.csv.gz"
    gz.write_bytes(gzip.compress(text))
    zipped = tmp_path / "SOLUSDT-1m-2024-01.zip"
    with zipfile.ZipFile(zipped, "w") as archive:
        archive.writestr("SOLUSDT-1m-2024-01.csv", text)
    bars = load_bars([gz, zipped], symbols_file=symbols_file)
    assert bars.groupby("symbol").size().to_dict() == {"ETHUSDT": 4, "SOLUSDT": 4}
    assert (bars["spread_bps"] == 7.0).all()  # the defaults entry


def test_futures_klines_with_header(tmp_path: Path, symbols_file: Path) -> None:
    header = ",".join(BINANCE_COLUMNS)
    bars = load_bars(write(tmp_path / "BTCUSDT-1m-2024-01.csv", [header, *kline_rows(3)]), symbols_file=symbols_file)
    assert len(bars) == 3
    assert bars["ts"].iloc[1] == pd.Timestamp("2024-01-01T00:01:00Z")


def test_generic_csv_with_iso_timestamps_and_spread(tmp_path: Path, symbols_file: Path) -> None:
    lines = [
        "timestamp,open,high,low,close,volume,spread_bps",
        "2024-01-01T00:01:00Z,2,3,1,2.5,10,4.5",
        "2024-01-01T00:00:00Z,1,2,0.5,1.5,10,4.0",
    ]
    bars = load_bars(write(tmp_path / "AAPL_1m.csv", lines), symbols_file=symbols_file)
    assert bars["symbol"].iloc[0] == "AAPL"
    assert bars["open"].tolist() == [1.0, 2.0]  # sorted by time
    assert bars["spread_bps"].tolist() == [4.0, 4.5]  # from the data


@pytest.mark.parametrize(("scale", "column"), [(1, "ts"), (1_000, "ts"), (1_000_000, "timestamp")])
def test_generic_csv_with_epoch_timestamps(tmp_path: Path, symbols_file: Path, scale: int, column: str) -> None:
    seconds = 1_704_067_200
    lines = [f"{column},open,high,low,close,volume", f"{seconds * scale},1,2,0.5,1.5,3"]
    bars = load_bars(write(tmp_path / "NVDA.csv", lines), symbols_file=symbols_file)
    assert bars["ts"].iloc[0] == pd.Timestamp("2024-01-01T00:00:00Z")


def test_parquet_with_timestamp_column(tmp_path: Path, symbols_file: Path) -> None:
    frame = pd.DataFrame(
        {
            "ts": pd.date_range("2024-01-01", periods=4, freq="1min"),  # naive: taken as UTC
            "open": [1.0, 2, 3, 4],
            "high": [2.0, 3, 4, 5],
            "low": [0.5, 1, 2, 3],
            "close": [1.5, 2.5, 3.5, 4.5],
            "volume": [1.0, 1, 1, 1],
        }
    )
    path = tmp_path / "BTCUSDT_1m.parquet"
    frame.to_parquet(path)
    bars = load_bars(path, symbols_file=symbols_file)
    assert bars["ts"].iloc[3] == pd.Timestamp("2024-01-01T00:03:00Z")
    assert bars["close"].tolist() == [1.5, 2.5, 3.5, 4.5]


def test_files_of_one_symbol_concatenate_dedupe_and_sort(tmp_path: Path, symbols_file: Path) -> None:
    rows = kline_rows(6)
    second = write(tmp_path / "BTCUSDT-1m-2024-01-b.csv", rows[3:])
    first = write(tmp_path / "BTCUSDT-1m-2024-01-a.csv", rows[:4])  # row 3 in both files
    bars = load_bars([second, first], symbols_file=symbols_file)
    assert len(bars) == 6
    assert bars["ts"].is_monotonic_increasing and bars["ts"].is_unique


def test_symbol_from_file_names() -> None:
    assert symbol_from_path("BTCUSDT-1m-2024-01.csv.gz") == "BTCUSDT"
    assert symbol_from_path("/x/y/BTCUSDT_1m.parquet") == "BTCUSDT"
    assert symbol_from_path("ethusdt.csv") == "ETHUSDT"


def test_discover_groups_files_by_symbol(tmp_path: Path) -> None:
    names = ("BTCUSDT-1m-2024-01.csv.gz", "BTCUSDT-1m-2024-02.csv.gz", "ETHUSDT_1m.parquet", ".hidden.csv", "notes.txt")
    for name in names:
        (tmp_path / name).write_bytes(b"x")
    found = discover_symbol_files(tmp_path)
    assert {k: [p.name for p in v] for k, v in found.items()} == {
        "BTCUSDT": ["BTCUSDT-1m-2024-01.csv.gz", "BTCUSDT-1m-2024-02.csv.gz"],
        "ETHUSDT": ["ETHUSDT_1m.parquet"],
    }


# ------------------------------------------------------------------------------------------ bad files


def load_error(path: Path, symbols_file: Path) -> BarFileError:
    with pytest.raises(BarFileError) as info:
        load_bars(path, symbols_file=symbols_file)
    return info.value


def test_empty_file(tmp_path: Path, symbols_file: Path) -> None:
    err = load_error(write(tmp_path / "BTCUSDT.csv", []), symbols_file)
    assert str(err) == f"{tmp_path / 'BTCUSDT.csv'}: line 1: the file is empty: no bars"


def test_header_only_file(tmp_path: Path, symbols_file: Path) -> None:
    err = load_error(write(tmp_path / "BTCUSDT.csv", ["ts,open,high,low,close,volume"]), symbols_file)
    assert err.location == "line 2" and "no bars" in str(err)


def test_wrong_column_count_names_the_line(tmp_path: Path, symbols_file: Path) -> None:
    rows = kline_rows(5)
    rows[3] = rows[3].rsplit(",", 1)[0]  # 11 columns on line 4
    err = load_error(write(tmp_path / "BTCUSDT-1m.csv", rows), symbols_file)
    assert str(err) == f"{tmp_path / 'BTCUSDT-1m.csv'}: line 4: expected 12 columns, found 11"


def test_unparsable_number_names_line_and_column(tmp_path: Path, symbols_file: Path) -> None:
    rows = kline_rows(5)
    fields = rows[2].split(",")
    fields[4] = "4x2.5"
    rows[2] = ",".join(fields)
    err = load_error(write(tmp_path / "BTCUSDT-1m.csv", rows), symbols_file)
    assert (err.location, err.column) == ("line 3", "close")
    assert "cannot parse '4x2.5' as a number" in str(err)


def test_empty_value_names_line_and_column(tmp_path: Path, symbols_file: Path) -> None:
    lines = ["ts,open,high,low,close,volume", "2024-01-01T00:00:00Z,1,2,0.5,1.5,3", "2024-01-01T00:01:00Z,1,,0.5,1.5,3"]
    err = load_error(write(tmp_path / "BTCUSDT.csv", lines), symbols_file)
    assert (err.location, err.column) == ("line 3", "high")


def test_unparsable_timestamp_names_line_and_column(tmp_path: Path, symbols_file: Path) -> None:
    lines = ["timestamp,open,high,low,close,volume", "2024-01-01T00:00:00Z,1,2,0.5,1.5,3", "yesterday,1,2,0.5,1.5,3"]
    err = load_error(write(tmp_path / "BTCUSDT.csv", lines), symbols_file)
    assert (err.location, err.column) == ("line 3", "timestamp")
    assert "'yesterday'" in str(err)


def test_binance_open_time_in_seconds_is_rejected(tmp_path: Path, symbols_file: Path) -> None:
    rows = kline_rows(2)
    rows[1] = "1704067260" + rows[1][len("1704067260000") :]
    err = load_error(write(tmp_path / "BTCUSDT-1m.csv", rows), symbols_file)
    assert (err.location, err.column) == ("line 2", "open_time")


def test_gzip_that_is_not_gzip(tmp_path: Path, symbols_file: Path) -> None:
    path = tmp_path / "BTCUSDT-1m.csv.gz"
    path.write_bytes(b"this is not gzip")
    err = load_error(path, symbols_file)
    assert str(err).startswith(f"{path}: not a readable gzip file")


def test_bad_line_inside_a_gzip_file(tmp_path: Path, symbols_file: Path) -> None:
    rows = kline_rows(4)
    rows[1] = rows[1].replace("1.5,", "abc,", 1)
    path = tmp_path / "BTCUSDT-1m.csv.gz"
    path.write_bytes(gzip.compress(("\n".join(rows) + "\n").encode()))
    err = load_error(path, symbols_file)
    assert err.location == "line 2" and err.column == "volume"


def test_corrupt_parquet(tmp_path: Path, symbols_file: Path) -> None:
    path = tmp_path / "BTCUSDT.parquet"
    path.write_bytes(b"PAR1 garbage")
    assert "not a readable Parquet file" in str(load_error(path, symbols_file))


def test_parquet_missing_column(tmp_path: Path, symbols_file: Path) -> None:
    path = tmp_path / "BTCUSDT.parquet"
    pd.DataFrame({"ts": [1_704_067_200], "open": [1.0], "high": [1.0], "low": [1.0], "close": [1.0]}).to_parquet(path)
    err = load_error(path, symbols_file)
    assert err.column == "volume" and "missing column" in str(err)


def test_parquet_nan_names_row_group_and_row(tmp_path: Path, symbols_file: Path) -> None:
    path = tmp_path / "BTCUSDT.parquet"
    table = pa.table(
        {
            "timestamp": pa.array(np.arange(6, dtype=np.int64) * 60 + 1_704_067_200),
            "open": [1.0, 1.0, 1.0, 1.0, float("nan"), 1.0],
            "high": [2.0] * 6, "low": [0.5] * 6, "close": [1.0] * 6, "volume": [1.0] * 6,
        }
    )
    pq.write_table(table, path, row_group_size=3)
    err = load_error(path, symbols_file)
    assert (err.location, err.column) == ("row group 1, row 1", "open")
    assert str(err) == f"{path}: row group 1, row 1, column open: nan is not a finite number"


@pytest.mark.parametrize(
    ("values", "kind"), [(["1", "1", "oops"], "string"), ([True, False, True], "bool")], ids=["string", "bool"]
)
def test_parquet_non_numeric_column_is_rejected_by_name(
    tmp_path: Path, symbols_file: Path, values: list[object], kind: str
) -> None:
    path = tmp_path / "BTCUSDT.parquet"
    table = pa.table(
        {
            "timestamp": pa.array(np.arange(3, dtype=np.int64) * 60 + 1_704_067_200),
            "open": [1.0] * 3, "high": [2.0] * 3, "low": [0.5] * 3, "close": [1.0] * 3, "volume": values,
        }
    )
    pq.write_table(table, path)
    err = load_error(path, symbols_file)
    assert str(err) == f"{path}: column volume: holds {kind} values, expected numbers"


def test_one_bad_file_fails_the_load_whole(tmp_path: Path, symbols_file: Path) -> None:
    good = write(tmp_path / "BTCUSDT-1m-a.csv", kline_rows(3))
    bad = write(tmp_path / "BTCUSDT-1m-b.csv", ["garbage,row"])
    with pytest.raises(BarFileError) as info:
        load_bars([good, bad], symbols_file=symbols_file)
    assert info.value.path == str(bad)


def test_without_a_symbols_file_the_data_directory_s_one_gives_the_spreads(tmp_path: Path, symbols_file: Path) -> None:
    # symbols_file sits in tmp_path, the data directory; the files in its bars/ folder.
    (tmp_path / "bars").mkdir()
    btc = write(tmp_path / "bars" / "BTCUSDT-1m-2024-01.csv", kline_rows(3))
    eth = write(tmp_path / "bars" / "ETHUSDT-1m-2024-01.csv", kline_rows(3, price=2300.0))
    bars = load_bars([eth, btc])
    assert bars["symbol"].cat.categories.tolist() == ["BTCUSDT", "ETHUSDT"]
    assert bars.groupby("symbol")["spread_bps"].first().to_dict() == {"BTCUSDT": 1.0, "ETHUSDT": 7.0}
    pd.testing.assert_frame_equal(bars, load_bars([btc, eth], symbols_file=symbols_file))
    elsewhere = tmp_path / "x" / "y"
    elsewhere.mkdir(parents=True)
    alone = load_bars(write(elsewhere / "BTCUSDT.csv", kline_rows(2)))
    assert (alone["spread_bps"] == 5.0).all()  # no symbols.yaml: the built-in default


def test_a_file_whose_name_yields_no_symbol_is_left_out_of_discovery(tmp_path: Path, symbols_file: Path) -> None:
    good = write(tmp_path / "BTCUSDT-1m.csv", kline_rows(3))
    unnamed = write(tmp_path / "_draft bars.csv", kline_rows(3))
    assert discover_symbol_files(tmp_path) == {"BTCUSDT": [good]}
    assert unnamed_data_files(tmp_path) == [unnamed]
    err = load_error(unnamed, symbols_file)
    assert str(err) == f"{unnamed}: cannot tell the symbol from the file name (expected e.g. BTCUSDT-1m-2024-01.csv.gz)"
