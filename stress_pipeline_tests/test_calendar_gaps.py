"""Calendar-aware gap counting: only bars missing inside the sessions of the symbol's calendar are gaps.

The sessions below are written out by hand (November 2024, New York on EST, UTC-5): the regular
session is 14:30-21:00 UTC, Thanksgiving (Thursday 28) is a holiday and the Friday after closes
early at 18:00 UTC. The code under test takes them from ``exchange_calendars``; the test does not.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from stress_pipeline.market.calendars import CalendarError, missing_in_sessions, trading_positions
from stress_pipeline.market.gaps import gap_profile
from stress_pipeline.market.quality import validate_bars

MINUTE_NS = 60_000_000_000
DAY_NS = 86_400 * 1_000_000_000
REGULAR_MINUTES = 390  # 09:30-16:00 New York
EARLY_CLOSE_MINUTES = 210  # 09:30-13:00 New York

# Thursday 2024-11-21 to Tuesday 2024-12-03: one weekend inside, Thanksgiving and its early close.
SESSION_DAYS = {
    "2024-11-21": "21:00", "2024-11-22": "21:00",
    "2024-11-25": "21:00", "2024-11-26": "21:00", "2024-11-27": "21:00",
    "2024-11-29": "18:00",  # early close, 13:00 New York
    "2024-12-02": "21:00", "2024-12-03": "21:00",
}  # fmt: skip


def session_minutes(
    days: dict[str, str] = SESSION_DAYS, *, last_minute: dict[str, str] | None = None
) -> pd.DatetimeIndex:
    """One-minute bar opens of the listed sessions (09:30 New York to the close, close excluded)."""
    parts = []
    for day, close in days.items():
        end = (last_minute or {}).get(day)
        stop = pd.Timestamp(f"{day} {end or close}", tz="UTC") - pd.Timedelta("0min" if end else "1min")
        parts.append(pd.date_range(pd.Timestamp(f"{day} 14:30", tz="UTC"), stop, freq="1min").as_unit("ns"))
    return parts[0].append(parts[1:])


def bars_at(ts: pd.DatetimeIndex, symbol: str = "NVDA", seed: int = 0) -> pd.DataFrame:
    """Valid bars (a random walk, no frozen bar, no spike) at the given opens."""
    n = len(ts)
    rng = np.random.default_rng(seed)
    mid = 100.0 + np.cumsum(rng.normal(0.0, 0.05, n))
    open_ = mid + rng.uniform(-0.02, 0.02, n)
    close = mid + rng.uniform(-0.02, 0.02, n)
    return pd.DataFrame(
        {
            "ts": ts,
            "symbol": pd.array([symbol] * n, dtype="str"),
            "open": open_,
            "high": np.maximum(open_, close) + rng.uniform(0.0, 0.05, n),
            "low": np.minimum(open_, close) - rng.uniform(0.0, 0.05, n),
            "close": close,
            "volume": rng.uniform(1_000.0, 5_000.0, n),
        }
    )


def ns(ts: pd.DatetimeIndex) -> np.ndarray:
    return ts.as_unit("ns").tz_convert(None).to_numpy().view(np.int64)


def test_complete_sessions_have_no_gap_across_weekend_holiday_and_early_close() -> None:
    ts = session_minutes()
    assert len(ts) == 7 * REGULAR_MINUTES + EARLY_CLOSE_MINUTES
    missing = missing_in_sessions(ns(ts), MINUTE_NS, "XNYS")
    assert missing.shape == (len(ts) - 1,)
    assert int(missing.sum()) == 0
    report = validate_bars(bars_at(ts), calendar="XNYS")
    assert report.success, report.summary()
    assert report.gap_ratio == 0.0
    assert report.outcome("gap_ratio").unexpected_count == 0


def test_the_same_bars_on_a_24_7_grid_count_nights_and_weekends_as_gaps() -> None:
    """The verdict can fail: without the calendar the overnight and weekend hours are missing bars."""
    report = validate_bars(bars_at(session_minutes()))
    assert not report.success
    assert [o.name for o in report.failures] == ["gap_ratio"]
    assert report.gap_ratio > 0.7  # 6.5 h traded of 24 h on session days, none at weekends


def test_a_missing_tuesday_session_is_a_gap() -> None:
    days = {d: c for d, c in SESSION_DAYS.items() if d != "2024-11-26"}
    ts = session_minutes(days)
    missing = missing_in_sessions(ns(ts), MINUTE_NS, "XNYS")
    assert int(missing.sum()) == REGULAR_MINUTES
    gap_after = np.flatnonzero(missing)
    assert len(gap_after) == 1
    assert ts[gap_after[0] + 1] == pd.Timestamp("2024-11-27 14:30", tz="UTC")  # Wednesday's open follows it
    report = validate_bars(bars_at(ts), calendar="XNYS")
    outcome = report.outcome("gap_ratio")
    assert not outcome.success
    assert outcome.unexpected_count == 1
    assert outcome.unexpected_rows["ts"].tolist() == [pd.Timestamp("2024-11-27 14:30", tz="UTC")]
    assert f"{REGULAR_MINUTES} missing of {len(ts) + REGULAR_MINUTES} expected bars" in outcome.details
    assert report.gap_ratio == pytest.approx(REGULAR_MINUTES / (len(ts) + REGULAR_MINUTES))


def test_bars_missing_inside_a_session_count_and_those_after_an_early_close_do_not() -> None:
    # Wednesday's bars stop at 15:00 New York (20:00 UTC): the last hour is missing, 60 bars.
    ts = session_minutes(last_minute={"2024-11-27": "19:59"})
    assert int(missing_in_sessions(ns(ts), MINUTE_NS, "XNYS").sum()) == 60
    # Friday's bars stop at the early close (13:00 New York) by themselves: nothing missing; if the
    # calendar ignored the early close, 180 bars (13:00-16:00) would be.
    friday_end = pd.Timestamp("2024-11-29 17:59", tz="UTC")
    assert friday_end in session_minutes() and pd.Timestamp("2024-11-29 18:00", tz="UTC") not in session_minutes()
    # Friday stopping one hour before the early close: 60 missing, not 240.
    ts = session_minutes(last_minute={"2024-11-29": "16:59"})
    assert int(missing_in_sessions(ns(ts), MINUTE_NS, "XNYS").sum()) == 60


def test_bars_outside_sessions_are_neither_gaps_nor_break_the_count() -> None:
    """Pre-market bars (extended hours) sit outside the regular session: they add no gap."""
    ts = session_minutes()
    extra = pd.date_range("2024-11-26 13:00", "2024-11-26 14:29", freq="1min", tz="UTC")
    both = ts.append(extra).sort_values()
    assert int(missing_in_sessions(ns(both), MINUTE_NS, "XNYS").sum()) == 0


def test_daily_bars_count_missing_sessions_not_weekends_or_holidays() -> None:
    # Every weekday of November 2024 except Thanksgiving (28th), dated at midnight UTC as exports are.
    days = pd.bdate_range("2024-11-01", "2024-11-29", tz="UTC").as_unit("ns")
    sessions = days[days != pd.Timestamp("2024-11-28", tz="UTC")]
    assert len(sessions) == 20
    profile = gap_profile(pd.Series(sessions), calendar="XNYS")
    assert profile.interval == pd.Timedelta(days=1)
    assert profile.missing_bars == 0
    # Without Tuesday the 12th: one session missing.
    without = sessions[sessions != pd.Timestamp("2024-11-12", tz="UTC")]
    profile = gap_profile(pd.Series(without), calendar="XNYS")
    assert profile.missing_bars == 1
    assert profile.ratio == pytest.approx(1 / 20)
    report = validate_bars(bars_at(without, symbol="SPY"), calendar="XNYS", max_gap_ratio=0.01)
    assert report.outcome("gap_ratio").unexpected_count == 1
    assert not report.success
    # The same daily bars on a 24/7 grid: weekends and the holiday count (10 days missing of 29).
    assert gap_profile(pd.Series(sessions)).missing_bars == 9


def test_futures_hours_on_the_cme_calendar() -> None:
    """CME Globex (CMES): 17:00 to 16:00 Chicago (23:00-22:00 UTC in November), Sunday evening to
    Friday; the daily 16:00-17:00 halt is not a gap (exchange_calendars does not model it)."""
    hour = 3_600 * 10**9
    hours = pd.DatetimeIndex(["2024-11-22 21:00", "2024-11-24 23:00", "2024-11-25 00:00"], tz="UTC")
    steps = np.diff(trading_positions(ns(hours), hour, "CMES"))
    assert np.rint(steps).tolist() == [1.0, 1.0]  # Friday's last hour, then Sunday's open, then the next hour
    # Friday's last two hours missing: two bars.
    hours = pd.DatetimeIndex(["2024-11-22 19:00", "2024-11-24 23:00"], tz="UTC")
    assert missing_in_sessions(ns(hours), hour, "CMES").tolist() == [2]
    # Minute bars of Monday and Tuesday with the halt (22:00-22:59 UTC) empty: complete.
    minutes = pd.date_range("2024-11-24 23:00", "2024-11-26 21:59", freq="1min", tz="UTC")
    minutes = minutes[minutes.hour != 22].as_unit("ns")
    assert len(minutes) == 2 * 23 * 60
    assert int(missing_in_sessions(ns(minutes), MINUTE_NS, "CMES").sum()) == 0
    assert int(missing_in_sessions(ns(minutes.delete(slice(100, 130))), MINUTE_NS, "CMES").sum()) == 30


def test_a_lunch_break_is_not_a_gap() -> None:
    """Hong Kong (XHKG): 09:30-12:00 and 13:00-16:00 local (01:30-04:00, 05:00-08:00 UTC)."""
    day = pd.date_range("2024-11-25 01:30", "2024-11-25 07:59", freq="1min", tz="UTC").as_unit("ns")
    traded = day[(day.hour < 4) | (day.hour >= 5)]
    assert len(traded) == 330
    assert int(missing_in_sessions(ns(traded), MINUTE_NS, "XHKG").sum()) == 0
    assert int(missing_in_sessions(ns(day), MINUTE_NS, "24/7").sum()) == 0
    assert int(missing_in_sessions(ns(traded), MINUTE_NS, "24/7").sum()) == 60  # on a 24/7 grid the lunch is a gap


def test_weekly_bars_are_counted_on_the_clock() -> None:
    mondays = ns(pd.date_range("2024-11-04", periods=6, freq="7D", tz="UTC").delete(2))
    assert missing_in_sessions(mondays, 7 * DAY_NS, "XNYS").tolist() == [0, 1, 0, 0]


def test_24_7_is_the_plain_grid() -> None:
    ts = ns(pd.date_range("2024-11-23", periods=10, freq="1min", tz="UTC").delete([3, 4]))
    assert missing_in_sessions(ts, MINUTE_NS, "24/7").tolist() == [0, 0, 2, 0, 0, 0, 0]


def test_unknown_calendar_is_an_error_naming_it() -> None:
    with pytest.raises(CalendarError, match="unknown calendar 'NYSEE'"):
        validate_bars(bars_at(session_minutes()), calendar="NYSEE")
    with pytest.raises(CalendarError, match="calendar must be a non-empty string"):
        missing_in_sessions(np.array([0, MINUTE_NS]), MINUTE_NS, "")
