"""Synthetic equity and futures bars in sessions: regular hours, overnight gaps, the quality check passed,
through the generator, the command line and a real Dagster run of the market group."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from stress_pipeline.defs import build_definitions
from stress_pipeline.defs.market.assets import market_bars
from stress_pipeline.defs.market.checks import MARKET_BARS_QUALITY, market_bars_quality
from stress_pipeline.defs.partitions import symbols_partitions
from stress_pipeline.market.calendars import CalendarError
from stress_pipeline.market.loaders import load_bars
from stress_pipeline.market.ohlc import ohlc_faults
from stress_pipeline.market.quality import validate_bars
from stress_pipeline.market.synthetic import generate_bars
from stress_pipeline.market.synthetic_sessions import session_bars

SHIPPED_SYMBOLS = Path(__file__).resolve().parents[1] / "data" / "symbols.yaml"
# 2024-11-20 (Wednesday) for 14 days: two weekends, Thanksgiving (28th) and its early close (29th).
START, DAYS = "2024-11-20", 14
REGULAR = {
    "2024-11-20", "2024-11-21", "2024-11-22", "2024-11-25", "2024-11-26", "2024-11-27", "2024-12-02", "2024-12-03"
}  # fmt: skip


@pytest.fixture(scope="module")
def nvda_minutes() -> pd.DataFrame:
    return generate_bars(["NVDA"], start=START, days=DAYS, calendar="XNYS")


def test_minute_bars_trade_regular_hours_only(nvda_minutes: pd.DataFrame) -> None:
    ts = nvda_minutes["ts"]
    per_day = ts.dt.strftime("%Y-%m-%d").value_counts().to_dict()
    assert per_day == {**dict.fromkeys(REGULAR, 390), "2024-11-29": 210}  # no weekend, no Thanksgiving
    firsts = ts.groupby(ts.dt.date).min().dt.strftime("%H:%M")
    assert set(firsts) == {"14:30"}  # 09:30 New York (EST)
    lasts = ts.groupby(ts.dt.date).max().dt.strftime("%H:%M").to_dict()
    assert lasts[pd.Timestamp("2024-11-29").date()] == "17:59"  # the early close, 13:00 New York
    assert lasts[pd.Timestamp("2024-11-27").date()] == "20:59"
    prices = [nvda_minutes[c].to_numpy() for c in ("open", "high", "low", "close")]
    assert not ohlc_faults(*prices).any()


def test_sessions_open_with_an_overnight_gap(nvda_minutes: pd.DataFrame) -> None:
    day = nvda_minutes["ts"].dt.date
    first_open = nvda_minutes.groupby(day)["open"].first().to_numpy()
    last_close = nvda_minutes.groupby(day)["close"].last().to_numpy()
    gaps = first_open[1:] / last_close[:-1] - 1.0
    assert np.all(gaps != 0.0)  # the model moved while the exchange was closed
    opens, closes, days = nvda_minutes["open"].to_numpy(), nvda_minutes["close"].to_numpy(), day.to_numpy()
    inside = (opens[1:] == closes[:-1]) | (days[1:] != days[:-1])
    assert inside.all()  # within a session each bar opens at the previous close


def test_session_bars_pass_the_quality_check_on_their_calendar_only(nvda_minutes: pd.DataFrame) -> None:
    report = validate_bars(nvda_minutes, calendar="XNYS")
    assert report.success, report.summary()
    assert report.gap_ratio == 0.0
    on_24_7 = validate_bars(nvda_minutes)
    assert [o.name for o in on_24_7.failures] == ["gap_ratio"]


@pytest.mark.parametrize(
    ("symbols", "calendar", "interval"),
    [
        (["SPY"], "XNYS", "1h"), (["NVDA", "SPY"], "XNYS", "5min"), (["SPY"], "XNYS", "1d"),
        (["MES", "MNQ", "M2K"], "CMES", "1h"),
    ],
)
def test_every_interval_and_calendar_passes(symbols: list[str], calendar: str, interval: str) -> None:
    bars = generate_bars(symbols, start=START, days=DAYS, interval=interval, calendar=calendar)
    assert sorted(bars["symbol"].unique()) == sorted(symbols)
    for symbol, rows in bars.groupby("symbol", observed=True):
        report = validate_bars(rows, calendar=calendar)
        assert report.success, f"{symbol}: {report.summary()}"


def test_hourly_bars_are_anchored_at_the_open_and_aggregate_the_minutes(nvda_minutes: pd.DataFrame) -> None:
    hourly = generate_bars(["NVDA"], start=START, days=DAYS, interval="1h", calendar="XNYS")
    wednesday = hourly[hourly["ts"].dt.strftime("%Y-%m-%d") == "2024-11-20"]
    hours = ["14:30", "15:30", "16:30", "17:30", "18:30", "19:30", "20:30"]
    assert wednesday["ts"].dt.strftime("%H:%M").tolist() == hours
    assert (hourly["ts"].dt.strftime("%Y-%m-%d") == "2024-11-29").sum() == 4  # 09:30-13:00: three hours and a half
    last = nvda_minutes[(nvda_minutes["ts"] >= "2024-11-20 20:30") & (nvda_minutes["ts"] < "2024-11-20 21:00")]
    bar = wednesday.iloc[-1]
    assert len(last) == 30  # the session's last hourly bar holds its last half hour
    assert bar["open"] == last["open"].iloc[0] and bar["close"] == last["close"].iloc[-1]
    assert bar["high"] == last["high"].max() and bar["low"] == last["low"].min()
    assert bar["volume"] == pytest.approx(last["volume"].sum())


def test_daily_bars_are_one_per_session_dated_at_midnight() -> None:
    daily = generate_bars(["SPY"], start=START, days=DAYS, interval="1d", calendar="XNYS")
    assert daily["ts"].dt.strftime("%Y-%m-%d").tolist() == sorted([*REGULAR, "2024-11-29"])
    assert set(daily["ts"].dt.strftime("%H:%M")) == {"00:00"}


def test_24_7_is_the_shipped_generator_and_bad_calendars_fail() -> None:
    plain = generate_bars(["BTCUSDT"], start=START, days=1)
    pd.testing.assert_frame_equal(generate_bars(["BTCUSDT"], start=START, days=1, calendar="24/7"), plain)
    with pytest.raises(CalendarError, match="unknown calendar 'NYSX'"):
        generate_bars(["NVDA"], start=START, days=1, calendar="NYSX")
    with pytest.raises(ValueError, match="not 24/7"):
        session_bars(plain, "24/7", 1)
    with pytest.raises(ValueError, match="no bar falls inside a XNYS session"):
        generate_bars(["NVDA"], start="2024-11-23", days=2, calendar="XNYS")  # a weekend only
    with pytest.raises(ValueError, match="interval of 7 minutes"):
        session_bars(plain, "XNYS", 7)


def test_command_line_writes_session_files_the_loader_reads(tmp_path: Path) -> None:
    out = tmp_path / "bars"
    command = [sys.executable, "-m", "stress_pipeline.cli", "data", "generate", "--calendar", "XNYS", "--days", "14",
               "--start", START, "--out", str(out)]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out.iterdir()) == [
        "NVDA-1m-2024-11.csv.gz", "NVDA-1m-2024-12.csv.gz", "SPY-1m-2024-11.csv.gz", "SPY-1m-2024-12.csv.gz"
    ]  # fmt: skip
    assert "XNYS session bars" in done.stderr
    loaded = load_bars(sorted(out.glob("NVDA-*")), symbols_file=SHIPPED_SYMBOLS)
    expected = generate_bars(["NVDA"], start=START, days=DAYS, calendar="XNYS")
    assert len(loaded) == len(expected) == 8 * 390 + 210
    np.testing.assert_allclose(loaded["close"].to_numpy(), expected["close"].to_numpy())
    assert validate_bars(loaded, calendar="XNYS").success
    bad = subprocess.run([*command[:6], "XNYZ", "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "unknown calendar 'XNYZ'" in bad.stderr


def test_market_group_checks_equity_bars_on_the_symbols_calendar(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real Dagster run: NVDA (XNYS in symbols.yaml) passes the blocking check; the same bars filed
    under a symbol the file does not list (24/7 by default) fail it on gaps."""
    data = tmp_path / "data"
    (data / "bars").mkdir(parents=True)
    shutil.copy(SHIPPED_SYMBOLS, data / "symbols.yaml")
    from stress_pipeline.market.synthetic import write_binance_klines

    bars = generate_bars(["NVDA"], start=START, days=DAYS, interval="5min", calendar="XNYS")
    write_binance_klines(bars, data / "bars", "NVDA")
    write_binance_klines(bars.assign(symbol="OTHER"), data / "bars", "OTHER")
    monkeypatch.setenv("STRESS_DATA_DIR", str(data))
    monkeypatch.setenv("STRESS_HOME", str(tmp_path / "home"))
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(symbols_partitions.name, ["NVDA", "OTHER"])
        defs = build_definitions()
        runs = {
            key: dg.materialize([market_bars, market_bars_quality], partition_key=key, instance=instance,
                                resources=defs.resources, raise_on_error=False)
            for key in ("NVDA", "OTHER")
        }  # fmt: skip
        assert runs["NVDA"].success
        (event,) = runs["NVDA"].get_asset_materialization_events()
        assert event.materialization.metadata["gaps"].value == 0
        (check,) = runs["NVDA"].get_asset_check_evaluations()
        assert check.passed and check.check_name == MARKET_BARS_QUALITY
        assert check.metadata["calendar"].value == "XNYS" and check.metadata["gap_ratio"].value == 0.0
        assert not runs["OTHER"].success  # 24/7: nights and weekends are missing bars
        failure = runs["OTHER"].get_step_failure_events()[0].event_specific_data.error.message
        assert "gap_ratio" in failure


def test_futures_bars_stop_for_the_cme_daily_halt_and_the_weekend() -> None:
    mes = generate_bars(["MES"], start=START, days=DAYS, calendar="CMES")
    ts = mes["ts"]
    assert not (ts.dt.hour == 22).any()  # 16:00-17:00 Chicago (CST) every day
    assert not ((ts > "2024-11-22 22:00") & (ts < "2024-11-24 23:00")).any()  # Friday 16:00 to Sunday 17:00
    monday = ts[(ts >= "2024-11-24 23:00") & (ts < "2024-11-25 23:00")]
    assert len(monday) == 23 * 60
    assert validate_bars(mes, calendar="CMES").success
