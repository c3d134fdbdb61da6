"""Scenario lengths in bars or in time: ``duration_bars: 15`` or ``duration_bars: 15min``.

A scenario's ``duration_bars``, ``recovery_bars``, ``block_bars`` and ``horizon_bars`` take a bar
count (checked against the field's bounds when the pack loads) or a time (``15min``, ``4h``, ``1d``,
``3d``; units and rounding in :mod:`stress_pipeline.market.durations`: a day is one regular session
of the market's calendar). A time is kept as written until the scenario meets its bars:
:func:`in_bars` converts it with the bars' interval and calendar and checks the field's bounds again,
so a pack means the same stress on 1-minute and on daily bars.
"""

from __future__ import annotations

from typing import Annotated

import numpy as np
from pydantic import PlainValidator, ValidationError

from stress_pipeline.market.calendars import trading_days
from stress_pipeline.market.durations import DurationError, format_interval, parse_duration, to_bars


def _length(low: int, high: int):
    def check(value: object) -> int | str:
        if isinstance(value, str):
            duration = parse_duration(value)  # a DurationError is a ValueError: pydantic reports it on the field
            if not duration.in_bars:
                return duration.text
            value = int(duration.amount)
        if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
            raise ValueError(f"expected a bar count or a time such as 15min, 4h, 1d, got {value!r}")
        if not low <= value <= high:
            raise ValueError(f"must be {low} to {high:,} bars, or a time such as 15min, 4h, 1d")
        return int(value)

    return Annotated[int | str, PlainValidator(check)]


Bars1To10k = _length(1, 10_000)
Bars0To100k = _length(0, 100_000)
Bars1To100k = _length(1, 100_000)
Bars2To100k = _length(2, 100_000)
Bars10To10M = _length(10, 10_000_000)
Bars2To10M = _length(2, 10_000_000)

LENGTH_FIELDS = ("duration_bars", "recovery_bars", "block_bars", "horizon_bars")


class ScenarioLengthError(ValueError):
    """A scenario length given in time that is under one bar, or out of its field's bounds, in bars."""


def in_bars(scenario, interval_ns: int, calendar: str | None = None, ts_ns: np.ndarray | None = None):
    """``scenario`` with every length given in time as bars of ``interval_ns`` (``scenario`` itself
    when none is). ``calendar`` (None: 24/7) says what a day is; ``ts_ns`` the span its sessions are read on."""
    params = scenario.parameters
    times = {name: getattr(params, name) for name in LENGTH_FIELDS if isinstance(getattr(params, name, None), str)}
    if not times:
        return scenario
    per_day, week = trading_days(calendar, interval_ns, ts_ns)
    bars = {}
    for name, text in times.items():
        try:
            bars[name] = to_bars(text, interval_ns, per_day, days_per_week=week)
        except DurationError as exc:
            raise ScenarioLengthError(f"scenario '{scenario.name}': parameters.{name}: {exc}") from None
    try:
        converted = type(params).model_validate({**params.model_dump(), **bars})
    except ValidationError as exc:
        error = exc.errors()[0]
        name = ".".join(str(part) for part in error["loc"])
        raise ScenarioLengthError(
            f"scenario '{scenario.name}': parameters.{name}={times.get(name, '')} is {bars.get(name)} bars of "
            f"{format_interval(interval_ns)}: {error['msg'].removeprefix('Value error, ')}"
        ) from None
    return scenario.model_copy(update={"parameters": converted})
