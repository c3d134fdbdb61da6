"""The exports people have (Yahoo, TradingView, MetaTrader, Stooq, date and time columns), recognised by
content, each with its bad-input case naming file, line and column; day/month order and sidecars."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from stress_pipeline.market import BarFileError, load_bars
from stress_pipeline.market.loaders import load_bars_with_sources

FIXTURES = Path(__file__).parent / "fixtures" / "formats"


@pytest.fixture
def symbols_file(tmp_path: Path) -> Path:
    path = tmp_path / "symbols.yaml"
    path.write_text("defaults:\n  spread_bps: 2.0\n")
    return path


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def load(path: Path, symbols_file: Path) -> pd.DataFrame:
    return load_bars(path, symbols_file=symbols_file)


def load_error(path: Path, symbols_file: Path) -> BarFileError:
    with pytest.raises(BarFileError) as info:
        load_bars(path, symbols_file=symbols_file)
    return info.value


def utc(*stamps: str) -> list[pd.Timestamp]:
    return [pd.Timestamp(s, tz="UTC") for s in stamps]


def copy_fixture(name: str, tmp_path: Path) -> Path:
    target = tmp_path / name
    target.write_bytes((FIXTURES / name).read_bytes())
    return target


# --------------------------------------------------------------------------------------------- Yahoo


def test_yahoo_daily_export_with_us_dates(symbols_file: Path) -> None:
    bars = load(FIXTURES / "SPX-yahoo.csv", symbols_file)
    assert len(bars) == 10 and set(bars["symbol"]) == {"SPX"}
    # 1/13/1999 decides month/day; Adj Close is not used without the sidecar saying so
    assert list(bars["ts"][:2]) == utc("1999-01-04", "1999-01-05")
    assert bars["ts"].iloc[-1] == pd.Timestamp("1999-01-15", tz="UTC")
    first = bars.iloc[0]
    assert (first.open, first.high, first.low, first.close, first.volume) == (1229.23, 1248.81, 1219.10, 1228.10, 877e6)
    assert (bars["spread_bps"] == 2.0).all()


def test_yahoo_adjusted_close_used_where_the_sidecar_says_so(symbols_file: Path) -> None:
    bars = load(FIXTURES / "AAPL-yahoo-adjusted.csv", symbols_file)
    factor = 184.53 / 185.64
    first = bars.iloc[0]
    assert first.close == 184.53
    assert first.open == pytest.approx(187.15 * factor, rel=1e-12)
    assert first.high == pytest.approx(188.44 * factor, rel=1e-12)
    assert first.low == pytest.approx(183.89 * factor, rel=1e-12)
    assert first.volume == 82488700
    # a date alone labels the trading day: midnight UTC of that date, whatever the sidecar's timezone
    assert list(bars["ts"]) == utc("2024-01-02", "2024-01-03", "2024-01-04")


def test_yahoo_day_first_dates_decided_by_a_day_over_twelve(tmp_path: Path, symbols_file: Path) -> None:
    path = write(tmp_path / "DAX-yahoo.csv", (
        "date,open,high,low,close,adj close,volume\n"
        "11/1/2024,10,11,9,10.5,10.5,100\n"
        "12/1/2024,10.5,11,10,10.8,10.8,100\n"
        "15/1/2024,10.8,11,10,10.9,10.9,100\n"
    ))  # fmt: skip
    assert list(load(path, symbols_file)["ts"]) == utc("2024-01-11", "2024-01-12", "2024-01-15")


def test_dates_that_read_both_ways_are_an_error_asking_for_the_sidecar(tmp_path: Path, symbols_file: Path) -> None:
    text = "Date,Open,High,Low,Close,Volume\n1/4/1999,10,11,9,10.5,100\n2/4/1999,10,11,9,10.5,100\n"
    path = write(tmp_path / "IDX.csv", text)
    err = load_error(path, symbols_file)
    assert err.path == str(path) and err.column == "Date"
    assert "date_order" in err.problem and "IDX.csv.yaml" in err.problem
    write(tmp_path / "IDX.csv.yaml", "date_order: dmy\n")
    assert list(load(path, symbols_file)["ts"]) == utc("1999-04-01", "1999-04-02")
    write(tmp_path / "IDX.csv.yaml", "date_order: mdy\n")
    assert list(load(path, symbols_file)["ts"]) == utc("1999-01-04", "1999-02-04")


def test_day_month_order_decided_past_the_first_block(tmp_path: Path, symbols_file: Path) -> None:
    # Two days of minute bars (about 100 kB) whose dates read both ways, then 1/13/2024: month/day.
    minutes = pd.date_range("2024-01-02", periods=2 * 1440, freq="1min")
    lines = ["Date,Time,Open,High,Low,Close,Volume"]
    lines += [f"{t.month}/{t.day}/{t.year},{t:%H:%M},100.0,101.0,99.0,100.5,7" for t in minutes]
    lines.append("1/13/2024,00:00,100.0,101.0,99.0,100.5,7")
    path = tmp_path / "ES.csv.gz"
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    assert len(lines[1]) * 2 * 1440 > 64 * 1024
    bars = load(path, symbols_file)
    assert len(bars) == 2 * 1440 + 1
    assert bars["ts"].iloc[0] == pd.Timestamp("2024-01-02", tz="UTC")
    assert bars["ts"].iloc[-1] == pd.Timestamp("2024-01-13", tz="UTC")


def test_yahoo_bad_value_names_file_line_and_column(tmp_path: Path, symbols_file: Path) -> None:
    lines = (FIXTURES / "SPX-yahoo.csv").read_text().splitlines()
    lines[3] = "1/6/1999,null,null,null,null,null,null"  # how Yahoo writes a day without data
    path = write(tmp_path / "SPX.csv", "\n".join(lines) + "\n")
    err = load_error(path, symbols_file)
    assert (err.path, err.location, err.column) == (str(path), "line 4", "Open")
    assert "'null'" in err.problem


def test_yahoo_impossible_date_names_line_and_column(tmp_path: Path, symbols_file: Path) -> None:
    lines = (FIXTURES / "SPX-yahoo.csv").read_text().splitlines()
    lines[4] = lines[4].replace("1/7/1999", "2/30/1999")
    path = write(tmp_path / "SPX.csv", "\n".join(lines) + "\n")
    err = load_error(path, symbols_file)
    assert (err.location, err.column) == ("line 5", "Date")
    assert "'2/30/1999'" in err.problem and "mdy" in err.problem


# ---------------------------------------------------------------------------------------- TradingView


def test_tradingview_export_in_unix_seconds(symbols_file: Path) -> None:
    bars = load(FIXTURES / "MES1-tradingview.csv", symbols_file)
    assert len(bars) == 10 and set(bars["symbol"]) == {"MES1"}
    assert bars["ts"].iloc[0] == pd.Timestamp("2024-01-02 14:30", tz="UTC")
    assert (bars["ts"].diff().dropna() == pd.Timedelta(minutes=1)).all()
    assert list(bars["volume"][:2]) == [1200, 1210]
    assert bars["close"].iloc[-1] == 4782.75  # the indicator columns (Plot, with NaN) are not read


def test_tradingview_export_in_iso_time_with_offset(tmp_path: Path, symbols_file: Path) -> None:
    path = write(tmp_path / "MNQ1.csv", (
        "time,open,high,low,close,Volume\n"
        "2024-01-02T09:30:00-05:00,16800,16810,16790,16805,50\n"
        "2024-01-02T09:31:00-05:00,16805,16812,16800,16808,40\n"
    ))  # fmt: skip
    write(tmp_path / "MNQ1.csv.yaml", "timezone: Asia/Tokyo\n")  # an offset in the data wins
    assert list(load(path, symbols_file)["ts"]) == utc("2024-01-02 14:30", "2024-01-02 14:31")


def test_tradingview_bad_time_names_line_and_column(tmp_path: Path, symbols_file: Path) -> None:
    lines = (FIXTURES / "MES1-tradingview.csv").read_text().splitlines()
    lines[7] = "yesterday" + lines[7][lines[7].index(","):]
    path = write(tmp_path / "MES1.csv", "\n".join(lines) + "\n")
    err = load_error(path, symbols_file)
    assert (err.path, err.location, err.column) == (str(path), "line 8", "time")
    assert "'yesterday'" in err.problem


# ---------------------------------------------------------------------------------------- MetaTrader


def test_metatrader5_tab_separated_export_uses_tick_volume_when_volume_is_zero(symbols_file: Path) -> None:
    bars = load(FIXTURES / "EURUSD-mt5.csv", symbols_file)
    assert len(bars) == 6
    assert list(bars["ts"][:2]) == utc("2024-01-02 09:30", "2024-01-02 09:31")
    assert list(bars["volume"]) == [100, 101, 102, 103, 104, 105]
    assert bars.iloc[0].open == 1.095 and bars.iloc[0].close == 1.0951
    assert (bars["spread_bps"] == 2.0).all()  # <SPREAD> is in points, not read as a spread in bps


def test_metatrader5_real_volume_when_it_has_one(tmp_path: Path, symbols_file: Path) -> None:
    text = (FIXTURES / "EURUSD-mt5.csv").read_text().replace("\t0\t3\n", "\t7\t3\n")
    assert list(load(write(tmp_path / "FDAX.csv", text), symbols_file)["volume"]) == [7] * 6


def test_metatrader4_headerless_history_in_broker_time(tmp_path: Path, symbols_file: Path) -> None:
    path = copy_fixture("GBPUSD-mt4.csv", tmp_path)
    bars = load(path, symbols_file)
    assert list(bars["ts"][:2]) == utc("2024-01-02 09:30", "2024-01-02 09:31")
    assert bars.iloc[5].close == 1.09515 and bars.iloc[5].volume == 105
    write(tmp_path / "GBPUSD-mt4.csv.yaml", "timezone: Europe/Helsinki\n")  # a broker on EET (UTC+2 in winter)
    assert load(path, symbols_file)["ts"].iloc[0] == pd.Timestamp("2024-01-02 07:30", tz="UTC")


def test_metatrader_bad_time_names_line_and_column(tmp_path: Path, symbols_file: Path) -> None:
    text = (FIXTURES / "EURUSD-mt5.csv").read_text().replace("09:33:00", "09:73:00")
    err = load_error(write(tmp_path / "EURUSD.csv", text), symbols_file)
    assert (err.location, err.column) == ("line 5", "<TIME>")
    assert "'09:73:00'" in err.problem


def test_metatrader4_bad_price_names_line_and_column(tmp_path: Path, symbols_file: Path) -> None:
    lines = (FIXTURES / "GBPUSD-mt4.csv").read_text().splitlines()
    lines[2] = "2024.01.02,09:32,1.09502,1.09522,1.0948x,1.09512,102"
    err = load_error(write(tmp_path / "GBPUSD.csv", "\n".join(lines) + "\n"), symbols_file)
    assert (err.location, err.column) == ("line 3", "low")
    assert "'1.0948x'" in err.problem


def test_metatrader4_bad_date_names_line_and_column(tmp_path: Path, symbols_file: Path) -> None:
    lines = (FIXTURES / "GBPUSD-mt4.csv").read_text().splitlines()
    lines[4] = lines[4].replace("2024.01.02", "2024.13.02")
    err = load_error(write(tmp_path / "GBPUSD.csv", "\n".join(lines) + "\n"), symbols_file)
    assert (err.location, err.column) == ("line 5", "date")


# --------------------------------------------------------------------------------------------- Stooq


def test_stooq_daily_export(symbols_file: Path) -> None:
    bars = load(FIXTURES / "MSFT-stooq.csv", symbols_file)
    assert list(bars["ts"]) == utc("2024-01-02", "2024-01-03", "2024-01-04")
    assert bars.iloc[2].open == 370.665 and bars.iloc[2].volume == 20901500


def test_stooq_database_form_with_ticker_period_date_and_time(tmp_path: Path, symbols_file: Path) -> None:
    path = copy_fixture("MSFT-stooq-db.csv", tmp_path)
    bars = load(path, symbols_file)
    assert set(bars["symbol"]) == {"MSFT"}  # from the file name, as for every format
    assert list(bars["ts"]) == utc("2024-01-02 15:35", "2024-01-02 15:40", "2024-01-02 15:45")
    assert list(bars["volume"]) == [120000, 98000, 101500]
    write(tmp_path / "MSFT-stooq-db.csv.yaml", "timezone: Europe/Warsaw\n")  # Stooq writes Polish time
    assert load(path, symbols_file)["ts"].iloc[0] == pd.Timestamp("2024-01-02 14:35", tz="UTC")


def test_stooq_bad_close_names_line_and_column(tmp_path: Path, symbols_file: Path) -> None:
    text = (FIXTURES / "MSFT-stooq-db.csv").read_text().replace("373.80,98000", ",98000")
    err = load_error(write(tmp_path / "MSFT.csv", text), symbols_file)
    assert (err.location, err.column) == ("line 3", "<CLOSE>")
    assert "empty value" in err.problem


def test_stooq_missing_column_names_line_one(tmp_path: Path, symbols_file: Path) -> None:
    text = "Date,Open,High,Low,Volume\n2024-01-02,1,2,0.5,10\n"
    err = load_error(write(tmp_path / "MSFT.csv", text), symbols_file)
    assert (err.location, err.column) == ("line 1", "close")


# ------------------------------------------------------------------------------ date and time columns


@pytest.mark.parametrize(
    ("header", "row", "expected"),
    [
        ("date", "2024-01-05", "2024-01-05"),
        ("DATE", "2024/01/05", "2024-01-05"),
        ("Datetime", "2024-01-05 13:45:00", "2024-01-05 13:45"),
        ("datetime", "2024-01-05 13:45:00+01:00", "2024-01-05 12:45"),
        ("Time", "1704462300", "2024-01-05 13:45"),
        ("Date,Time", "05.01.2024,13:45", "2024-01-05 13:45"),  # a day over 12 would decide; sidecar below
        ("Date,Time", "20240105,134500", "2024-01-05 13:45"),
        ("Date,Time", "2024-01-05,1345", "2024-01-05 13:45"),
    ],
)
def test_date_and_time_columns(tmp_path: Path, symbols_file: Path, header: str, row: str, expected: str) -> None:
    path = write(tmp_path / "X.csv", f"{header},Open,High,Low,Close,Volume\n{row},1,2,0.5,1.5,10\n")
    write(tmp_path / "X.csv.yaml", "date_order: dmy\n")
    assert list(load(path, symbols_file)["ts"]) == utc(expected)


def test_semicolon_separated_file(tmp_path: Path, symbols_file: Path) -> None:
    path = write(tmp_path / "X.csv", "Date;Open;High;Low;Close;Volume\n2024-01-05;1;2;0.5;1.5;10\n")
    assert load(path, symbols_file).iloc[0].close == 1.5


def test_daily_dates_keep_a_one_day_step_across_a_clock_change(tmp_path: Path, symbols_file: Path) -> None:
    path = write(tmp_path / "SPY.csv", (
        "Date,Open,High,Low,Close,Volume\n2024-03-08,1,2,0.5,1.5,10\n2024-03-11,1,2,0.5,1.5,10\n"
        "2024-03-12 09:30,1,2,0.5,1.5,10\n"
    ))  # fmt: skip
    write(tmp_path / "SPY.csv.yaml", "timezone: America/New_York\n")
    # the dates stay midnight UTC; a time of day in the same file is New York time (EDT from 03-10)
    assert list(load(path, symbols_file)["ts"]) == utc("2024-03-08", "2024-03-11", "2024-03-12 13:30")


def test_a_clock_change_hour_in_local_time_is_an_error(tmp_path: Path, symbols_file: Path) -> None:
    path = write(tmp_path / "ES.csv", (
        "date,time,open,high,low,close,volume\n"
        "2024-03-10,01:59,1,2,0.5,1.5,10\n"
        "2024-03-10,02:30,1,2,0.5,1.5,10\n"
    ))  # fmt: skip
    write(tmp_path / "ES.csv.yaml", "timezone: America/New_York\n")
    err = load_error(path, symbols_file)
    assert (err.location, err.column) == ("line 3", "time")
    assert "America/New_York" in err.problem


def test_a_repeated_column_that_is_read_is_an_error(tmp_path: Path, symbols_file: Path) -> None:
    path = write(tmp_path / "X.csv", "time,open,high,low,close,close,volume\n1704462300,1,2,0.5,1.5,1.5,10\n")
    err = load_error(path, symbols_file)
    assert (err.location, err.column) == ("line 1", "close")


def test_parquet_with_a_date_column_and_the_sidecar(tmp_path: Path, symbols_file: Path) -> None:
    path = tmp_path / "SPY.parquet"
    table = pa.table({
        "Date": pa.array([pd.Timestamp("2024-01-02").date(), pd.Timestamp("2024-01-03").date()], pa.date32()),
        "Open": [470.0, 468.0], "High": [472.0, 469.0], "Low": [468.0, 465.0],
        "Close": [471.0, 466.0], "Adj Close": [469.0, 464.0], "Volume": [1e6, 2e6],
    })  # fmt: skip
    pq.write_table(table, path)
    write(tmp_path / "SPY.parquet.yaml", "adjusted: true\ntimezone: America/New_York\n")
    bars = load(path, symbols_file)
    assert list(bars["ts"]) == utc("2024-01-02", "2024-01-03")  # dates label trading days
    assert list(bars["close"]) == [469.0, 464.0]
    assert bars.iloc[0].open == pytest.approx(470.0 * 469.0 / 471.0, rel=1e-12)


def test_parquet_year_last_text_dates_order_from_the_data_or_the_sidecar(tmp_path: Path, symbols_file: Path) -> None:
    path = tmp_path / "SPY.parquet"
    dates = ["1/4/1999", "2/4/1999", "3/4/1999", "13/4/1999"]  # decided in the second row group: day first
    pq.write_table(pa.table({"date": dates, "open": [1.0] * 4, "high": [2.0] * 4, "low": [0.5] * 4,
                             "close": [1.5] * 4, "volume": [3.0] * 4}), path, row_group_size=2)  # fmt: skip
    assert list(load(path, symbols_file)["ts"]) == utc("1999-04-01", "1999-04-02", "1999-04-03", "1999-04-13")
    pq.write_table(pa.table({"date": dates[:2], "open": [1.0] * 2, "high": [2.0] * 2, "low": [0.5] * 2,
                             "close": [1.5] * 2, "volume": [3.0] * 2}), path)  # fmt: skip
    err = load_error(path, symbols_file)
    assert (err.path, err.column) == (str(path), "date") and "date_order" in err.problem
    write(tmp_path / "SPY.parquet.yaml", "date_order: mdy\n")
    assert list(load(path, symbols_file)["ts"]) == utc("1999-01-04", "1999-02-04")
    write(tmp_path / "SPY.parquet.yaml", "date_order: ymd\n")  # year-last dates in a file said to be ymd
    err = load_error(path, symbols_file)
    assert (err.location, err.column) == ("row group 0, row 0", "date") and "'1/4/1999'" in err.problem


# -------------------------------------------------------------------------------------------- sidecar


@pytest.mark.parametrize(
    ("sidecar", "column", "words"),
    [
        ("date_order: ydm\n", "date_order", "'ydm' is not one of ymd, dmy, mdy"),
        ("adjusted: yes please\n", "adjusted", "not true or false"),
        ("timezone: Mars/Olympus\n", "timezone", "not a known time zone"),
        ("date_format: dmy\n", "date_format", "unknown key"),
        ("- dmy\n", None, "expected a mapping"),
        ("date_order: [dmy\n", None, "not valid YAML"),
    ],
)
def test_a_bad_sidecar_names_itself_and_the_key(
    tmp_path: Path, symbols_file: Path, sidecar: str, column: str | None, words: str
) -> None:
    path = copy_fixture("MSFT-stooq.csv", tmp_path)
    write(tmp_path / "MSFT-stooq.csv.yaml", sidecar)
    err = load_error(path, symbols_file)
    assert err.path == str(tmp_path / "MSFT-stooq.csv.yaml") and err.column == column
    assert words in err.problem


def test_adjusted_without_an_adjusted_close_column(tmp_path: Path, symbols_file: Path) -> None:
    path = copy_fixture("MSFT-stooq.csv", tmp_path)
    write(tmp_path / "MSFT-stooq.csv.yaml", "adjusted: true\n")
    err = load_error(path, symbols_file)
    assert err.path == str(path) and "Adj Close" in err.problem


def test_a_sidecar_is_not_a_data_file(tmp_path: Path) -> None:
    from stress_pipeline.market.symbols import discover_symbol_files

    copy_fixture("MSFT-stooq.csv", tmp_path)
    write(tmp_path / "MSFT-stooq.csv.yaml", "timezone: Europe/Warsaw\n")
    assert discover_symbol_files(tmp_path) == {"MSFT": [tmp_path / "MSFT-stooq.csv"]}


# ----------------------------------------------------------------------------------------- provenance


def test_provenance_names_the_line_of_each_bar(tmp_path: Path, symbols_file: Path) -> None:
    mt4 = copy_fixture("GBPUSD-mt4.csv", tmp_path)  # headerless: line N is record N
    rows = (FIXTURES / "SPX-yahoo.csv").read_text().splitlines()
    yahoo = write(tmp_path / "SPX-yahoo.csv", "\n".join([rows[0], *reversed(rows[1:])]) + "\n")  # newest first
    loaded = load_bars_with_sources([mt4, yahoo], symbols_file=symbols_file)
    bars = loaded.bars
    spx = np.flatnonzero((bars["symbol"] == "SPX").to_numpy())
    gbp = np.flatnonzero((bars["symbol"] == "GBPUSD").to_numpy())
    assert bars["ts"].iloc[spx[0]] == pd.Timestamp("1999-01-04", tz="UTC")
    assert loaded.sources.locations([int(spx[0]), int(gbp[2])]) == [f"{yahoo}: line 11", f"{mt4}: line 3"]


# ------------------------------------------------------------------------------- the symbol's market


@pytest.fixture
def market_symbols(tmp_path: Path) -> Path:
    path = tmp_path / "markets.yaml"
    path.write_text(
        "defaults:\n  spread_bps: 2.0\nsymbols:\n"
        "  NVDA:\n    asset_class: equity\n    currency: USD\n    calendar: XNYS\n"
        "  MES:\n    asset_class: future\n    currency: USD\n    tick_size: 0.25\n    contract_multiplier: 5\n"
        "    calendar: CMES\n"
    )
    return path


def test_times_of_day_default_to_the_zone_of_the_symbol_s_calendar(tmp_path: Path, market_symbols: Path) -> None:
    text = "date,time,open,high,low,close,volume\n2024-01-02,09:30,1,2,0.5,1.5,10\n"
    nvda = write(tmp_path / "NVDA.csv", text)
    assert list(load(nvda, market_symbols)["ts"]) == utc("2024-01-02 14:30")  # XNYS: New York
    assert list(load(write(tmp_path / "MES.csv", text), market_symbols)["ts"]) == utc("2024-01-02 15:30")  # Chicago
    assert list(load(write(tmp_path / "BTCUSDT.csv", text), market_symbols)["ts"]) == utc("2024-01-02 09:30")  # 24/7
    write(tmp_path / "NVDA.csv.yaml", "timezone: Europe/Helsinki\n")  # the sidecar wins
    assert list(load(nvda, market_symbols)["ts"]) == utc("2024-01-02 07:30")


def _walk(n: int, start: float, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    close = np.round(start * np.exp(np.cumsum(rng.normal(0.0, 0.002, n))), 2)
    open_ = np.concatenate([[start], close[:-1]])
    return {"open": open_, "high": np.maximum(open_, close) + 0.25, "low": np.minimum(open_, close) - 0.25,
            "close": close, "volume": rng.integers(100, 10_000, n)}  # fmt: skip


def test_yahoo_daily_equity_bars_ingest_unchanged_and_pass_the_quality_check(
    tmp_path: Path, market_symbols: Path
) -> None:
    from stress_pipeline.market.calendars import sessions
    from stress_pipeline.market.quality import validate_bars

    labels, _, _ = sessions("XNYS", pd.Timestamp("2024-01-02").value, pd.Timestamp("2024-06-28").value)
    days = pd.to_datetime(np.unique(labels)).tz_localize("UTC")
    days = days[(days >= pd.Timestamp("2024-01-02", tz="UTC")) & (days <= pd.Timestamp("2024-06-28", tz="UTC"))]
    bars = _walk(len(days), 480.0, 1)
    lines = ["Date,Open,High,Low,Close,Adj Close,Volume"] + [
        f"{d.month}/{d.day}/{d.year},{o:.2f},{h:.2f},{lo:.2f},{c:.2f},{c:.2f},{v}"
        for d, o, h, lo, c, v in zip(days, *bars.values(), strict=True)
    ]
    path = write(tmp_path / "NVDA.csv", "\n".join(lines) + "\n")
    loaded = load(path, market_symbols)
    assert list(loaded["ts"]) == list(days) and np.allclose(loaded["close"], bars["close"])
    report = validate_bars(loaded, calendar="XNYS")
    assert report.success, [(o.name, o.details) for o in report.failures]
    tuesday = next(i for i, d in enumerate(days) if d.dayofweek == 1 and i > 10)
    missing = write(tmp_path / "NVDA-missing.csv", "\n".join(lines[: tuesday + 1] + lines[tuesday + 2 :]) + "\n")
    assert validate_bars(load(missing, market_symbols), calendar="XNYS", max_gap_ratio=0.0).gap_ratio > 0


def test_tradingview_minute_futures_bars_ingest_unchanged_and_pass_the_quality_check(
    tmp_path: Path, market_symbols: Path
) -> None:
    from stress_pipeline.market.calendars import sessions
    from stress_pipeline.market.quality import validate_bars

    _, starts, stops = sessions("CMES", pd.Timestamp("2024-01-08").value, pd.Timestamp("2024-01-12").value)
    keep = (starts >= pd.Timestamp("2024-01-07 23:00").value) & (stops <= pd.Timestamp("2024-01-12 23:00").value)
    minutes = np.concatenate([np.arange(a, b, 60 * 10**9) for a, b in zip(starts[keep], stops[keep], strict=True)])
    bars = _walk(len(minutes), 4780.0, 2)
    rows = zip(minutes // 10**9, *bars.values(), strict=True)
    lines = ["time,open,high,low,close,Volume"]
    lines += [f"{t},{o:.2f},{h:.2f},{lo:.2f},{c:.2f},{v}" for t, o, h, lo, c, v in rows]
    loaded = load(write(tmp_path / "MES.csv", "\n".join(lines) + "\n"), market_symbols)
    assert len(loaded) == len(minutes) > 5 * 1300 and (loaded["ts"].array.asi8 == minutes).all()
    report = validate_bars(loaded, calendar="CMES")
    assert report.success, [(o.name, o.details) for o in report.failures]
    assert report.gap_ratio == 0.0
