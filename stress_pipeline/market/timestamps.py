"""Bar times as exported files write them, turned into UTC nanoseconds, vectorised.

- Epoch numbers (s, ms, us or ns, told apart by magnitude) are UTC; Binance open times are ms or us.
- ISO 8601 text (``2024-01-02``, ``2024-01-02 09:30``, ``2024-01-02T09:30:00-05:00``); a time with an
  offset keeps it.
- Dates with the year first (``2024.01.02``, ``2024/01/02``), the year last (``1/4/1999``,
  ``04.01.1999``: day and month in the order ``date_order`` says), or eight digits (``20240102``).
- A separate time column: ``09:30``, ``09:30:00``, ``093000`` or ``0930``.

A time without an offset is wall-clock time in ``timezone`` (UTC unless the file's sidecar says
otherwise). A wall-clock time that does not exist there (the spring-forward hour) or that exists twice
(the fall-back hour) is a bad value, never shifted silently. A date without a time of day labels a
trading day (a daily bar): it is stamped at midnight UTC of that date in any zone, as daily klines are,
so the stamps of daily bars keep a one-day step across clock changes.

Every parser returns ``(ns, bad)``: int64 nanoseconds and a mask of the values that could not be read,
so the caller can name the first bad line.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

DATE_ORDERS = ("ymd", "dmy", "mdy")

# Epoch magnitudes used to tell units apart (2001-09-09 in seconds is 1e9, in ms 1e12, ...).
_MS_MIN, _US_MIN, _NS_MIN = 10**11, 10**14, 10**17

_YEAR_FIRST = r"^(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})(?:[ T]+(.*))?$"
_YEAR_LAST = r"^(\d{1,2})[-/.](\d{1,2})[-/.](\d{4})(?:[ T]+(.*))?$"
_EIGHT_DIGITS = r"^(\d{4})(\d{2})(\d{2})(?:[ T]+(.*))?$"
_OFFSET = r"(?:Z|[+-]\d{2}:?\d{2})$"


class AmbiguousDates(ValueError):
    """Every year-last date of a file reads as day/month and as month/day."""


def binance_time_to_ns(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Binance open times: milliseconds until 2025, microseconds since; told apart per value."""
    values = values.astype(np.int64, copy=False)
    is_us = values >= _US_MIN
    ns = np.where(is_us, values * 1_000, values * 1_000_000)
    bad = (values < _MS_MIN) | (values >= _NS_MIN)
    return ns, bad


def epoch_to_ns(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Epoch numbers in s, ms, us or ns, told apart by magnitude."""
    numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    bad = ~np.isfinite(numbers) | (numbers <= 0)
    safe = np.where(bad, 0.0, numbers)
    scale = np.select([safe < _MS_MIN, safe < _US_MIN, safe < _NS_MIN], [1e9, 1e6, 1e3], default=1.0)
    return np.rint(safe * scale).astype(np.int64), bad


def times_to_ns(
    dates: pd.Series, times: pd.Series | None = None, *, date_order: str | None = None, timezone: str = "UTC"
) -> tuple[np.ndarray, np.ndarray]:
    """Text times (one column, or a date and a time column) to UTC nanoseconds.

    ``date_order`` must be given (``dmy`` or ``mdy``) when a value has the year last; without it such
    a value is bad. Epoch numbers are read as such only without a separate time column. The layout of
    the first value gives a strptime format, parsed in C for every row; rows that do not fit it (a
    file mixing layouts) are rewritten to ISO 8601 one by one.
    """
    dates = dates.astype(str).str.strip()
    clock = None if times is None else times.astype(str).str.strip()
    if clock is None:
        numeric = pd.to_numeric(dates, errors="coerce")
        if numeric.notna().all() and not dates.str.fullmatch(r"\d{8}").all():
            return epoch_to_ns(numeric)
    ns = np.zeros(len(dates), dtype=np.int64)
    bad = np.zeros(len(dates), dtype=bool)
    if timezone == "UTC":
        _parse_into(dates, clock, date_order, None, ns, bad, np.ones(len(dates), dtype=bool))
        return ns, bad
    text = dates if clock is None else clock
    absolute = np.array(text.str.contains(_OFFSET, regex=True), dtype=bool)
    if clock is None:  # a date alone labels a session: midnight UTC of that date, whatever the zone
        absolute |= ~np.array(dates.str.contains(r"[ T]\d|:", regex=True), dtype=bool)
    for mask, zone in ((absolute, None), (~absolute, timezone)):
        if mask.any():
            _parse_into(dates[mask], None if clock is None else clock[mask], date_order, zone, ns, bad, mask)
    return ns, bad


def year_last_order(dates: pd.Series) -> tuple[int, int]:
    """The largest first and second field among year-last dates (``1/4/1999``): evidence of the order.

    A first field over 12 means day/month (``dmy``), a second one month/day (``mdy``); (0, 0) when
    no value has the year last.
    """
    parts = dates.astype(str).str.strip().str.extract(_YEAR_LAST)
    found = parts[0].notna()
    if not found.any():
        return 0, 0
    return int(parts.loc[found, 0].astype(int).max()), int(parts.loc[found, 1].astype(int).max())


def decide_date_order(first_max: int, second_max: int) -> str | None:
    """``dmy`` or ``mdy`` from :func:`year_last_order`'s evidence; None without year-last dates.

    Raises :class:`AmbiguousDates` when every such date reads both ways (no field over 12).
    """
    if first_max == 0 and second_max == 0:
        return None
    if first_max > 12:
        return "dmy"
    if second_max > 12:
        return "mdy"
    raise AmbiguousDates(
        "every date reads both as day/month and as month/day (no field over 12)"
    )


def _clock(times: pd.Series) -> pd.Series:
    """``093000`` -> ``09:30:00``, ``0930`` -> ``09:30``; other forms as they are."""
    six = times.str.fullmatch(r"\d{6}")
    four = times.str.fullmatch(r"\d{4}")
    out = times.copy()
    out[six] = times[six].str.slice(0, 2) + ":" + times[six].str.slice(2, 4) + ":" + times[six].str.slice(4, 6)
    out[four] = times[four].str.slice(0, 2) + ":" + times[four].str.slice(2, 4)
    return out


def _as_iso(text: pd.Series, date_order: str | None) -> pd.Series:
    """Dates rewritten with the year first and dashes, so the ISO 8601 parser reads them."""
    out = text.copy()
    for pattern, order in ((_YEAR_FIRST, "ymd"), (_EIGHT_DIGITS, "ymd"), (_YEAR_LAST, date_order)):
        parts = text.str.extract(pattern)
        found = parts[0].notna()
        if not found.any():
            continue
        if order is None:  # year last and no order known: leave it unparsable
            out[found] = ""
            continue
        a, b, c = (parts.loc[found, i] for i in range(3))
        year, month, day = {"ymd": (a, b, c), "dmy": (c, b, a), "mdy": (c, a, b)}[order]
        rest = parts.loc[found, 3].fillna("")
        iso = year + "-" + month.str.zfill(2) + "-" + day.str.zfill(2)
        out[found] = iso.where(rest == "", iso + " " + rest)
    return out


def _parse_into(
    dates: pd.Series, clock: pd.Series | None, date_order: str | None, timezone: str | None,
    ns: np.ndarray, bad: np.ndarray, where: np.ndarray,
) -> None:
    """Parse rows ``where`` into ``ns`` (UTC) and ``bad``; ``timezone`` None means UTC or an offset in the text."""
    dates = dates.reset_index(drop=True)
    clock = None if clock is None else clock.reset_index(drop=True)
    text = dates if clock is None else dates + " " + clock
    layout = _strptime_format(dates.iloc[0], None if clock is None else clock.iloc[0], date_order)
    values, missing = _to_ns(pd.to_datetime(text, format=layout or "ISO8601", errors="coerce", utc=timezone is None),
                             timezone)  # fmt: skip
    if missing.any():  # rows in another layout than the first
        retry_text = dates[missing] if clock is None else dates[missing] + " " + _clock(clock[missing])
        retry = pd.to_datetime(_as_iso(retry_text, date_order), format="ISO8601", errors="coerce", utc=timezone is None)
        values[missing], missing[missing] = _to_ns(retry, timezone)
    ns[where] = values
    bad[where] = missing


def _to_ns(parsed: pd.Series, timezone: str | None) -> tuple[np.ndarray, np.ndarray]:
    """Parsed times (UTC, or wall-clock times in ``timezone``) as UTC nanoseconds and a mask of NaT."""
    if timezone is not None:
        parsed = parsed.dt.tz_localize(timezone, ambiguous="NaT", nonexistent="NaT").dt.tz_convert("UTC")
    missing = parsed.isna().to_numpy().copy()
    values = parsed.astype("datetime64[ns, UTC]").array.asi8.copy()
    values[missing] = 0
    return values, missing


def _strptime_format(date: str, clock: str | None, date_order: str | None) -> str | None:
    """A strptime format for the layout of one value (None: ISO 8601, or no layout recognised)."""
    match = re.match(r"^(\d{1,4})([-/.])(\d{1,2})\2(\d{1,4})(?:([ T]+)(\S+))?$", date)
    eight = re.match(r"^\d{8}(?:([ T]+)(\S+))?$", date)
    if match:
        sep = match.group(2)
        if len(match.group(1)) == 4:
            if sep == "-":
                return None  # ISO 8601: pandas' own parser is faster and takes offsets
            day_part = f"%Y{sep}%m{sep}%d"
        elif len(match.group(4)) == 4 and date_order in ("dmy", "mdy"):
            day_part = f"%d{sep}%m{sep}%Y" if date_order == "dmy" else f"%m{sep}%d{sep}%Y"
        else:
            return None
        joint, time_part = match.group(5), match.group(6)
    elif eight:
        day_part, joint, time_part = "%Y%m%d", eight.group(1), eight.group(2)
    else:
        return None
    if clock is not None:
        joint, time_part = " ", clock
    if time_part is None:
        return day_part
    clock_format = {6: "%H%M%S", 4: "%H%M"}.get(len(time_part)) if time_part.isdigit() else None
    if clock_format is None:
        colons = time_part.count(":")
        if colons not in (1, 2) or not re.fullmatch(r"[\d:]+", time_part):
            return None
        clock_format = "%H:%M:%S" if colons == 2 else "%H:%M"
    return f"{day_part}{joint}{clock_format}"
