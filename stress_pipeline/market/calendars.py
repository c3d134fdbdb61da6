"""Trading calendars: where a symbol's bars are expected, and how many periods make its year.

A symbol's market names a calendar (data/symbols.yaml, :mod:`stress_pipeline.market.symbols`): an
``exchange_calendars`` code such as ``XNYS`` (New York Stock Exchange) or ``CMES`` (CME futures), or
``24/7`` for a market that never closes (crypto, the default). Sessions, holidays and early closes
come from the ``exchange_calendars`` package, never from a list kept here.

Gaps in sessions (:func:`missing_in_sessions`): each bar gets its *trading position*, in bars:

* intraday bars (interval under a day): the trading time of the calendar from its first session up
  to the bar, divided by the interval. Time outside sessions (nights, weekends, holidays, the hours
  after an early close) does not count, so a step from Friday's last bar to Monday's first is one bar;
* daily bars (interval of one day): the number of sessions up to the bar's UTC date. Longer bars
  (weekly, monthly) are counted on the clock, as on a 24/7 grid: a week is a week whatever it trades.

A step between two consecutive bars of ``k`` positions (rounded to the nearest whole number) means
``k - 1`` missing bars, as :func:`stress_pipeline.market.intervals.missing_bars` counts them on a
24/7 grid. A break inside a session (a lunch break, the CME daily halt from 16:00 to 17:00 Chicago,
which ``exchange_calendars`` does not model and :data:`DAILY_HALTS` adds) is not trading time. Everything is numpy on
the session table of the data's span (one ``exchange_calendars`` schedule per range); no loop per bar.

Annualisation (:func:`annualisation`): :data:`SESSIONS_PER_YEAR` sessions of an exchange calendar x
the bars of a regular session at the data's interval (the median over the data's sessions of the
bars of each trading period, the length divided by the interval rounded up), or 365 days x 86,400 s /
interval for ``24/7``.
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd

#: The calendar of a market that never closes (crypto); also the default of a symbol with no market.
CONTINUOUS = "24/7"
#: Trading sessions in a year of an exchange calendar (NYSE: 252 on average).
SESSIONS_PER_YEAR = 252
#: Days in a year of a market that trades every day.
CONTINUOUS_DAYS = 365
DAY_NS = 86_400 * 1_000_000_000


class CalendarError(ValueError):
    """An unknown calendar code, or a range the calendar does not cover."""


@functools.lru_cache(maxsize=1)
def calendar_names() -> frozenset[str]:
    """Every calendar code ``exchange_calendars`` knows, aliases included."""
    import exchange_calendars

    return frozenset(exchange_calendars.get_calendar_names(include_aliases=True))


def check_calendar(code: str) -> str:
    """``code`` when it names a calendar (``24/7`` or an ``exchange_calendars`` code), else CalendarError."""
    if not isinstance(code, str) or not code:
        raise CalendarError(f"calendar must be a non-empty string such as XNYS, CMES or 24/7, got {code!r}")
    if code == CONTINUOUS or code in calendar_names():
        return code
    raise CalendarError(f"unknown calendar {code!r}: expected 24/7 or an exchange_calendars code such as XNYS or CMES")


def is_continuous(code: str | None) -> bool:
    """True for ``None`` and ``24/7``: a market open every minute of every day."""
    return code is None or code == CONTINUOUS


@functools.lru_cache(maxsize=16)
def exchange_calendar(code: str, first_year: int, last_year: int):
    """The ``exchange_calendars`` calendar ``code`` over whole years (built once per process and
    range: about 0.2 s each). The one place the package's calendars are built."""
    import exchange_calendars

    try:
        return exchange_calendars.get_calendar(code, start=f"{first_year}-01-01", end=f"{last_year}-12-31")
    except Exception as exc:  # exchange_calendars raises its own types for ranges it does not cover
        raise CalendarError(f"calendar {code}: cannot cover {first_year}-{last_year}: {exc}") from None


def sessions(code: str, start_ns: int, end_ns: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(labels, opens, closes) as int64 ns UTC of the trading periods of the sessions from the day
    before ``start_ns`` to the day after ``end_ns``, in time order. Labels are the sessions' dates at
    midnight UTC; closes honour early closes. A session with a break (a lunch break, the CME daily
    halt) is two periods with the same label, so time in the break is not trading time."""
    check_calendar(code)
    if is_continuous(code):
        raise CalendarError("a 24/7 calendar has no sessions")
    first, last = pd.Timestamp(int(start_ns), tz="UTC"), pd.Timestamp(int(end_ns), tz="UTC")
    # Whole years on either side, so that neighbouring ranges share one cached calendar.
    calendar = exchange_calendar(code, first.year - 1, last.year + 1)
    lo = (first - pd.Timedelta(days=1)).tz_localize(None).normalize()
    hi = (last + pd.Timedelta(days=1)).tz_localize(None).normalize()
    table = calendar.schedule.loc[lo:hi]

    def column(name: str) -> np.ndarray:
        return table[name].dt.tz_convert(None).to_numpy(dtype="datetime64[ns]").view(np.int64)

    labels = table.index.to_numpy(dtype="datetime64[ns]").view(np.int64)
    opens, closes = column("open"), column("close")
    break_start, break_end = column("break_start"), column("break_end")
    if calendar.name in DAILY_HALTS:
        halt, zone = DAILY_HALTS[calendar.name]
        local = table.index.tz_localize(zone) + pd.Timedelta(halt)
        halt_ns = local.tz_convert("UTC").tz_localize(None).to_numpy(dtype="datetime64[ns]").view(np.int64)
        closes = np.minimum(closes, halt_ns)
    has_break = break_start != np.iinfo(np.int64).min  # NaT
    labels = np.concatenate([labels, labels[has_break]])
    starts = np.concatenate([opens, break_end[has_break]])
    stops = np.concatenate([np.where(has_break, break_start, closes), closes[has_break]])
    order = np.argsort(starts, kind="stable")
    return labels[order], starts[order], stops[order]


#: Daily halts exchange_calendars does not model, as (time of day, zone) of the halt on the session's
#: date: CME Globex stops at 16:00 Chicago and reopens at 17:00 for the next session.
DAILY_HALTS = {"CMES": ("16h", "America/Chicago")}


def trading_positions(ts_ns: np.ndarray, interval_ns: int, code: str) -> np.ndarray:
    """Each timestamp's trading position in bars of ``interval_ns`` on calendar ``code`` (module doc).

    ``ts_ns`` are int64 ns UTC in increasing order; the result is float64, same length.
    """
    ts = np.asarray(ts_ns, dtype=np.int64)
    if interval_ns <= 0:
        raise ValueError(f"interval must be positive, got {interval_ns} ns")
    if is_continuous(code):
        return ts / float(interval_ns)
    if not len(ts):
        return np.zeros(0)
    labels, opens, closes = sessions(code, int(ts[0]), int(ts[-1]))
    if interval_ns >= DAY_NS:
        day = ts - ts % DAY_NS
        return np.searchsorted(np.unique(labels), day, side="right").astype(np.float64)
    length = closes - opens
    before = np.concatenate(([0], np.cumsum(length)))
    index = np.searchsorted(opens, ts, side="right") - 1
    inside = np.clip(ts - opens[np.maximum(index, 0)], 0, length[np.maximum(index, 0)])
    elapsed = np.where(index >= 0, before[np.maximum(index, 0)] + inside, 0)
    return elapsed / float(interval_ns)


def missing_in_sessions(ts_ns: np.ndarray, interval_ns: int, code: str) -> np.ndarray:
    """Bars missing inside sessions before each timestamp after the first (length ``len(ts_ns) - 1``).

    ``ts_ns`` are distinct int64 ns UTC timestamps in increasing order. With ``24/7`` this is
    :func:`~stress_pipeline.market.intervals.missing_bars` itself.
    """
    from stress_pipeline.market.intervals import missing_bars

    ts = np.asarray(ts_ns, dtype=np.int64)
    if is_continuous(code) or interval_ns > DAY_NS:  # weekly or monthly bars: counted on the clock
        return missing_bars(ts, interval_ns)
    if len(ts) < 2:
        return np.zeros(0, dtype=np.int64)
    steps = np.rint(np.diff(trading_positions(ts, interval_ns, code))).astype(np.int64)
    return np.maximum(steps - 1, 0)


def bars_per_session(code: str, interval_ns: int, ts_ns: np.ndarray | None = None) -> float:
    """Bars of a regular session at ``interval_ns``: the median session length over the span of
    ``ts_ns`` (the current year when None) / the interval, rounded up; 1 for daily bars or longer."""
    if interval_ns <= 0:
        raise ValueError(f"interval must be positive, got {interval_ns} ns")
    if is_continuous(code):
        return DAY_NS / interval_ns
    if interval_ns >= DAY_NS:
        return 1.0
    ts = np.asarray(ts_ns if ts_ns is not None else [], dtype=np.int64)
    if len(ts):
        start, end = int(ts.min()), int(ts.max())
    else:
        now = pd.Timestamp.now(tz="UTC").normalize()
        start, end = now.value - 180 * DAY_NS, now.value
    labels, opens, closes = sessions(code, start, end)
    if not len(opens):
        raise CalendarError(f"calendar {code}: no session between {pd.Timestamp(start)} and {pd.Timestamp(end)}")
    # Bars of each trading period (a break restarts the grid), summed per session.
    per_period = np.ceil((closes - opens) / interval_ns - 1e-9)
    _, session = np.unique(labels, return_inverse=True)
    return float(np.median(np.bincount(session, weights=per_period)))


def trading_days(code: str | None, interval_ns: int, ts_ns: np.ndarray | None = None) -> tuple[float, int]:
    """(bars in a trading day, trading days in a week) at ``interval_ns`` on calendar ``code`` (None: 24/7):
    what a length in days or weeks means in bars (``market.durations.to_bars``)."""
    code = code or CONTINUOUS
    return bars_per_session(code, interval_ns, ts_ns), 7 if is_continuous(code) else 5


def annualisation(code: str, interval_ns: int, ts_ns: np.ndarray | None = None) -> tuple[int, float]:
    """(periods per year of daily returns, bars per trading day) for calendar ``code`` at ``interval_ns``.

    ``24/7``: (365, 86,400 s / interval). An exchange calendar: (252, bars of a regular session), so
    bar returns are annualised with 252 x bars per session.
    """
    check_calendar(code)
    if is_continuous(code):
        return CONTINUOUS_DAYS, bars_per_session(code, interval_ns)
    return SESSIONS_PER_YEAR, bars_per_session(code, interval_ns, ts_ns)
