"""Annualisation follows the market's calendar: 252 sessions for XNYS-like calendars, 365 days for 24/7."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from stress_pipeline.market.calendars import CalendarError, annualisation
from stress_pipeline.market.symbols import shared_calendar
from stress_pipeline.simulation.backtest import run_backtest
from stress_pipeline.simulation.config import SimConfig
from stress_pipeline.simulation.metrics import annualisation_of
from stress_pipeline_tests.test_calendar_gaps import bars_at, ns, session_minutes

MINUTE_NS = 60_000_000_000
HOUR_NS = 60 * MINUTE_NS
DAY_NS = 24 * HOUR_NS
SHIPPED = Path(__file__).resolve().parents[1] / "data" / "symbols.yaml"
TREND = {"fast": 10, "slow": 60, "band": 0.0}


@pytest.mark.parametrize(
    ("calendar", "interval_ns", "expected"),
    [
        ("XNYS", MINUTE_NS, (252, 390.0)),  # 09:30-16:00
        ("XNYS", 5 * MINUTE_NS, (252, 78.0)),
        ("XNYS", HOUR_NS, (252, 7.0)),  # six whole hours and the last half hour
        ("XNYS", DAY_NS, (252, 1.0)),
        ("CMES", HOUR_NS, (252, 23.0)),  # 17:00-16:00 Chicago
        ("CMES", MINUTE_NS, (252, 1380.0)),
        ("XHKG", MINUTE_NS, (252, 330.0)),  # 09:30-12:00 and 13:00-16:00 Hong Kong
        ("24/7", MINUTE_NS, (365, 1440.0)),
        ("24/7", HOUR_NS, (365, 24.0)),
        ("24/7", DAY_NS, (365, 1.0)),
    ],
)
def test_periods_per_calendar_and_interval(calendar: str, interval_ns: int, expected: tuple[int, float]) -> None:
    assert annualisation(calendar, interval_ns, ns(session_minutes())) == expected


def test_the_regular_session_is_the_median_so_an_early_close_does_not_shorten_it() -> None:
    friday = session_minutes({"2024-11-29": "18:00", "2024-12-02": "21:00", "2024-12-03": "21:00"})
    assert annualisation("XNYS", MINUTE_NS, ns(friday)) == (252, 390.0)


def test_configured_periods_still_override_and_no_calendar_keeps_the_inference() -> None:
    ts = ns(session_minutes())
    assert annualisation_of(ts, MINUTE_NS, calendar="XNYS") == (252, 390.0)
    assert annualisation_of(ts, MINUTE_NS, configured=260, calendar="XNYS") == (260, 390.0)
    assert annualisation_of(ts, MINUTE_NS) == (252, None)  # weekday bars spanning a weekend: inferred 252
    weekend = ns(pd.date_range("2024-11-23", periods=100, freq="1min", tz="UTC"))
    assert annualisation_of(weekend, MINUTE_NS) == (365, None)


def test_sharpe_of_equity_bars_is_annualised_by_the_calendar() -> None:
    """The same run: only the annualisation differs, by sqrt(365 x 1,440 / (252 x 390)) on bar returns."""
    bars = bars_at(session_minutes()).assign(spread_bps=1.0)
    results = {
        cal: run_backtest(bars, config=SimConfig(calendar=cal, strategy="trend", strategy_params=TREND)).metrics
        for cal in ("XNYS", "24/7")
    }
    xnys, crypto = results["XNYS"], results["24/7"]
    assert xnys["total_trades"] > 0 and xnys["returns_basis"] == "bar"
    assert xnys["total_pnl"] == crypto["total_pnl"]
    assert (xnys["periods_per_year"], crypto["periods_per_year"]) == (252, 365)
    assert xnys["sharpe_ratio"] != 0.0
    ratio = crypto["sharpe_ratio"] / xnys["sharpe_ratio"]
    assert ratio == pytest.approx(math.sqrt(365 * 1440 / (252 * 390)), rel=1e-9)
    assert crypto["sortino_ratio"] / xnys["sortino_ratio"] == pytest.approx(ratio, rel=1e-9)


def test_daily_equity_bars_use_252_daily_periods() -> None:
    days = pd.bdate_range("2024-01-02", "2024-06-28", tz="UTC").as_unit("ns")
    bars = bars_at(days, symbol="SPY", seed=3).assign(spread_bps=1.0)
    config = {"strategy": "trend", "strategy_params": {"fast": 3, "slow": 10, "band": 0.0}}
    xnys = run_backtest(bars, config=SimConfig(calendar="XNYS", **config)).metrics
    crypto = run_backtest(bars, config=SimConfig(calendar="24/7", **config)).metrics
    assert xnys["returns_basis"] == "daily" and xnys["periods_per_year"] == 252
    assert xnys["total_trades"] > 0 and xnys["sharpe_ratio"] != 0.0
    assert crypto["sharpe_ratio"] / xnys["sharpe_ratio"] == pytest.approx(math.sqrt(365 / 252), rel=1e-9)


def test_the_calendar_of_a_scenario_is_the_one_its_symbols_share() -> None:
    assert shared_calendar(SHIPPED, ["BTCUSDT", "ETHUSDT"]) == "24/7"
    assert shared_calendar(SHIPPED, ["NVDA", "spy"]) == "XNYS"
    assert shared_calendar(SHIPPED, ["MES", "MNQ", "M2K"]) == "CMES"
    assert shared_calendar(SHIPPED, ["BTCUSDT", "NVDA"]) is None  # mixed: inferred from the bars
    assert shared_calendar(SHIPPED, []) is None


def test_bad_calendars_are_refused() -> None:
    with pytest.raises(ValidationError, match="unknown calendar 'XNYZ'"):
        SimConfig(calendar="XNYZ")
    with pytest.raises(CalendarError, match="unknown calendar"):
        annualisation("NYSE-", MINUTE_NS)
    with pytest.raises(ValueError, match="interval must be positive"):
        annualisation("XNYS", 0, np.array([0]))
