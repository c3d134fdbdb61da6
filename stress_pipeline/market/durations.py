"""Lengths given in bars or in time, and the one rule that turns them into bars of the data.

A strategy window or a scenario duration is written either as a bar count (``240``, ``"240 bars"``)
or as trading time (``"4h"``, ``"30min"``, ``"1d"``, ``"2w"``), so one configuration means the same
thing on 1-minute crypto bars and on daily equity bars. Units:

* ``s``, ``min`` (or ``m``), ``h``: trading time, divided by the bar interval;
* ``d`` (or ``session``): trading days, each one regular session of the market's calendar in bars
  (:func:`stress_pipeline.market.calendars.bars_per_session`: 1,440 one-minute bars for 24/7 crypto,
  390 for XNYS, 1 for daily bars);
* ``w``: weeks of trading days, 7 for a 24/7 market and 5 for an exchange calendar.

The bar count is rounded to the nearest whole bar; a length under one bar of the data (``"4h"`` on
daily bars) is a :class:`DurationError` naming the length and the interval, never a silent zero.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

NS = {"s": 1_000_000_000, "min": 60_000_000_000, "h": 3_600_000_000_000}
_UNITS = {
    "bar": "bar", "bars": "bar",
    "s": "s", "sec": "s", "secs": "s", "second": "s", "seconds": "s",
    "m": "min", "min": "min", "mins": "min", "minute": "min", "minutes": "min",
    "h": "h", "hr": "h", "hrs": "h", "hour": "h", "hours": "h",
    "d": "d", "day": "d", "days": "d", "session": "d", "sessions": "d",
    "w": "w", "wk": "w", "week": "w", "weeks": "w",
}  # fmt: skip
_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*$")


class DurationError(ValueError):
    """A length that is not a bar count or a time, or that is shorter than one bar of the data."""


@dataclass(frozen=True)
class Duration:
    """A parsed length: ``amount`` of ``unit`` (bar, s, min, h, d, w); ``text`` as the user wrote it."""

    amount: float
    unit: str
    text: str

    @property
    def in_bars(self) -> bool:
        return self.unit == "bar"


def parse_duration(value: object) -> Duration:
    """``value`` (an int bar count, or a string such as ``"240"``, ``"4h"``, ``"1.5 d"``) as a :class:`Duration`."""
    if isinstance(value, Duration):
        return value
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise DurationError(f"expected a bar count or a time such as 4h, 30min, 1d, got {value!r}")
    if isinstance(value, int | float):
        if not math.isfinite(value) or value != int(value) or value < 1:
            raise DurationError(f"a bar count must be a whole number >= 1, got {value!r}")
        return Duration(float(value), "bar", str(int(value)))
    match = _RE.match(value)
    unit = _UNITS.get(match.group(2).lower() if match and match.group(2) else "bar") if match else None
    if match is None or unit is None:
        known = "bars, s, min, h, d (sessions), w"
        raise DurationError(f"{value!r} is not a bar count or a time: write a number and a unit ({known}), e.g. 4h")
    amount = float(match.group(1))
    if amount <= 0 or (unit == "bar" and amount != int(amount)):
        whole = " and a whole number of bars" if unit == "bar" else ""
        raise DurationError(f"{value!r}: a length must be positive{whole}")
    return Duration(amount, unit, value.strip())


def to_bars(value: object, interval_ns: int, bars_per_day: float, *, days_per_week: int = 7) -> int:
    """The bars of ``value`` at ``interval_ns``, with ``bars_per_day`` bars in a trading day (module doc).

    ``days_per_week``: 7 for a 24/7 market, 5 for an exchange calendar. Raises :class:`DurationError`
    when the length is under one bar.
    """
    duration = parse_duration(value)
    if interval_ns <= 0:
        raise ValueError(f"interval must be positive, got {interval_ns} ns")
    if duration.in_bars:
        return int(duration.amount)
    if duration.unit in NS:
        bars = duration.amount * NS[duration.unit] / interval_ns
    else:
        days = duration.amount * (days_per_week if duration.unit == "w" else 1)
        bars = days * bars_per_day
    count = int(np.rint(bars))
    if count < 1:
        raise DurationError(f"{duration.text} is shorter than one bar of the data ({format_interval(interval_ns)})")
    return count


def format_interval(interval_ns: int) -> str:
    """A bar interval as people write it: 1min, 5min, 1h, 1d, 90s."""
    seconds = interval_ns / 1e9
    for unit, size in (("d", 86_400), ("h", 3_600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def format_span(bars: int, interval_ns: int) -> str:
    """``bars`` bars of ``interval_ns`` as text, e.g. ``900 bars of 1min``."""
    return f"{bars:,} bar{'s' if bars != 1 else ''} of {format_interval(interval_ns)}"
