"""The canonical depth table, its loaders and its dense form."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from stress_pipeline.book import DEPTH_SCHEMA, DepthError, books_table, dense_books, load_depth
from stress_pipeline.book.dense import book_at
from stress_pipeline.book.schema import to_arrow

FIXTURES = Path(__file__).parent / "fixtures" / "depth"


def test_schema_is_the_canonical_columns():
    assert DEPTH_SCHEMA.names == ["ts", "symbol", "side", "level", "price", "size", "kind"]
    assert DEPTH_SCHEMA.field("ts").type == pa.timestamp("ns", tz="UTC")
    assert DEPTH_SCHEMA.field("level").type == pa.int32()


def test_canonical_csv_loads_and_replays_updates():
    table = load_depth(FIXTURES / "NVDA-depth.csv")
    assert len(table) == 7
    assert to_arrow(table).schema.equals(DEPTH_SCHEMA)
    book = dense_books(table)["NVDA"]
    assert book.ts.tolist() == [pd.Timestamp(f"2023-10-17T13:30:0{i}Z").value for i in range(3)]
    # 13:30:01 updates the best ask only; the bids carry over
    np.testing.assert_array_equal(book.ask_px[1], [439.00, 439.03])
    np.testing.assert_array_equal(book.ask_sz[1], [150, 400])
    np.testing.assert_array_equal(book.bid_px[1], [438.99, 438.98])
    # 13:30:02 is a snapshot of both sides with one level each: level 1 emptied
    assert book.bid_px[2, 0] == 438.95 and np.isnan(book.bid_px[2, 1]) and book.bid_sz[2, 1] == 0
    assert book_at(book, [book.ts[0] - 1, book.ts[1], book.ts[1] + 5]).tolist() == [-1, 1, 1]


def test_parquet_round_trip(tmp_path):
    table = load_depth(FIXTURES / "NVDA-depth.csv")
    path = tmp_path / "NVDA-depth.parquet"
    pq.write_table(to_arrow(table), path)
    again = load_depth(path)
    pd.testing.assert_frame_equal(again, table)


def test_wide_snapshot_csv():
    table = load_depth(FIXTURES / "BTCUSDT-book_snapshot_5.csv")
    book = dense_books(table)["BTCUSDT"]
    assert book.ts[0] == 1621425600000000 * 1000
    np.testing.assert_array_equal(book.bid_px[0], [37000.4, 36999.9, 36998.0])
    np.testing.assert_array_equal(book.ask_sz[0], [1.25, 0.8, 3.0])
    assert np.isnan(book.ask_px[1, 2]) and book.ask_sz[1, 2] == 0  # an empty deep level
    assert (table["kind"] == "snapshot").all()


def test_binance_json_snapshot():
    table = load_depth(FIXTURES / "BTCUSDT-depth.json")
    assert table["ts"].iloc[0] == pd.Timestamp(1621425600120, unit="ms", tz="UTC")
    assert table["symbol"].iloc[0] == "BTCUSDT"
    assert table.loc[table["side"] == "bid", "size"].tolist() == [2.5, 1.1, 4.2]


def test_dense_round_trip():
    table = load_depth(FIXTURES / "BTCUSDT-book_snapshot_5.csv")
    books = dense_books(table)
    again = books_table(books)
    pd.testing.assert_frame_equal(again, table)


# ---------------------------------------------------------------------------------------- bad input


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


HEADER = "ts,symbol,side,level,price,size\n"


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ("2023-10-17T13:30:00Z,NVDA,bid,0,439.0,100\n2023-10-17T13:30:00Z,NVDA,ask,0,438.9,100\n",
         "line 3, field price: crossed book: best bid 439.0 (line 2) >= best ask 438.9"),
        ("2023-10-17T13:30:00Z,NVDA,bid,0,439.0,-5\n", "line 2, field size: negative size -5.0"),
        ("2023-10-17T13:30:00Z,NVDA,bid,0,439.0,5\n2023-10-17T13:30:00Z,NVDA,bid,1,439.5,5\n",
         "line 3, field price: unsorted levels: bid level 1 at 439.5 is not below level 0 at 439.0"),
        ("2023-10-17T13:30:00Z,NVDA,ask,0,439.0,5\n2023-10-17T13:30:00Z,NVDA,ask,2,439.5,5\n",
         "line 3, field level: unsorted levels: level 2 after level 0 (expected 1)"),
        ("2023-10-17T13:30:00Z,NVDA,bid,0,abc,5\n", "line 2, field price: not a number: 'abc'"),
        ("2023-10-17 13:30:00,NVDA,bid,0,439.0,5\n", "line 2, field ts: expected an ISO 8601 time with a zone"),
        ("2023-10-17T13:30:00Z,NVDA,buy,0,439.0,5\n", "line 2, field side: 'buy' is not one of bid, ask"),
        ("2023-10-17T13:30:01Z,NVDA,bid,0,439.0,5\n2023-10-17T13:30:00Z,NVDA,bid,0,439.0,5\n",
         "line 3, field ts: rows are not in time order"),
    ],
)
def test_bad_canonical_csv_names_file_line_field(tmp_path, rows, message):
    path = _write(tmp_path, "NVDA-depth.csv", HEADER + rows)
    with pytest.raises(DepthError) as err:
        load_depth(path)
    assert str(err.value).startswith(f"{path}: {message}")


def test_missing_column(tmp_path):
    path = _write(tmp_path, "NVDA-depth.csv", "ts,symbol,side,price,size\n2023-10-17T13:30:00Z,NVDA,bid,1,1\n")
    with pytest.raises(DepthError, match=r"NVDA-depth.csv: line 1, field level: missing column\(s\) level"):
        load_depth(path)


def test_bad_wide_csv_names_the_wide_column(tmp_path):
    text = (FIXTURES / "BTCUSDT-book_snapshot_5.csv").read_text().replace("36989.2,2.0", "36995.0,2.0")
    path = _write(tmp_path, "BTCUSDT-book.csv", text)
    with pytest.raises(DepthError) as err:
        load_depth(path)
    assert "line 3 (bids[1].price), field price: unsorted levels: bid level 1 at 36995.0" in str(err.value)
    text = (FIXTURES / "BTCUSDT-book_snapshot_5.csv").read_text().replace("37000.4,2.5", "37000.4,-2.5")
    with pytest.raises(DepthError, match=r"line 2 \(bids\[0\]\.price\), field size: negative size -2.5"):
        load_depth(_write(tmp_path, "BTCUSDT-book2.csv", text))
    text = (FIXTURES / "BTCUSDT-book_snapshot_5.csv").read_text().replace("37000.4,2.5", "37000.6,2.5")
    with pytest.raises(DepthError, match=r"line 2 \(asks\[0\]\.price\), field price: crossed book: best bid 37000.6"):
        load_depth(_write(tmp_path, "BTCUSDT-book3.csv", text))
    text = (FIXTURES / "BTCUSDT-book_snapshot_5.csv").read_text().replace("0.8,36999.9", "x,36999.9")
    with pytest.raises(DepthError, match=r"line 2, field asks\[1\].amount: not a number: 'x'"):
        load_depth(_write(tmp_path, "BTCUSDT-book4.csv", text))


def test_bad_binance_json(tmp_path):
    raw = json.loads((FIXTURES / "BTCUSDT-depth.json").read_text())
    raw["asks"][1] = ["37000.00", "1"]
    path = _write(tmp_path, "BTCUSDT-depth.json", json.dumps(raw))
    with pytest.raises(DepthError, match=r"asks\[1\], field price: unsorted levels: ask level 1 at 37000.0"):
        load_depth(path)
    raw["asks"][1] = ["37001.00", "oops"]
    with pytest.raises(DepthError, match=r"asks\[1\], field quantity: not a number: 'oops'"):
        load_depth(_write(tmp_path, "BTCUSDT-d2.json", json.dumps(raw)))
    del raw["bids"]
    with pytest.raises(DepthError, match="field bids: missing list 'bids'"):
        load_depth(_write(tmp_path, "BTCUSDT-d3.json", json.dumps(raw)))


def test_interleaved_symbols_are_grouped_and_errors_name_the_files_line(tmp_path):
    rows = ("2023-10-17T13:30:00Z,NVDA,bid,0,439.0,5\n2023-10-17T13:30:00Z,AAPL,bid,0,178.0,5\n"
            "2023-10-17T13:30:01Z,NVDA,bid,0,439.1,5\n2023-10-17T13:30:01Z,AAPL,bid,0,-1,5\n")  # fmt: skip
    path = _write(tmp_path, "depth.csv", HEADER + rows)
    with pytest.raises(DepthError, match=r"depth.csv: line 5, field price: price must be a finite number > 0"):
        load_depth(path)
    path = _write(tmp_path, "depth2.csv", HEADER + rows.replace(",-1,", ",178.5,"))
    books = dense_books(load_depth(path))
    assert books["AAPL"].bid_px[:, 0].tolist() == [178.0, 178.5]
    assert books["NVDA"].bid_px[:, 0].tolist() == [439.0, 439.1]
