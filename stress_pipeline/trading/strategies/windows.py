"""Strategy windows in bars or in time, converted once with the data's interval and calendar.

A reference strategy's windows (``TrendStrategy.fast`` / ``slow``, ``MeanReversionStrategy.window``,
``BreakoutStrategy.entry_window`` / ``exit_window``) are bar counts (``240``) or trading time
(``"4h"``, ``"1d"``; :mod:`stress_pipeline.market.durations` holds the units and the rule). A window
left unset (None) takes the strategy's default for the data: its ``intraday_windows`` on bars under
a day (trend 4h / 1d: 240 and 1,440 bars on 1-minute crypto, 240 and 390 on 1-minute XNYS bars, a
day being a session) and its ``daily_windows`` on daily or longer bars (trend 10d / 50d). A window
given explicitly is used as given: ``4h`` on daily bars is an error (under one bar).

:func:`at_interval` is the conversion the simulations make once, on the whole panel, before they ask
for weights: it returns the strategy with every window in bars and raises :class:`StrategyWindowError`
when a window is under one bar or does not fit in the data (no bar would be left after the warm-up),
naming the strategy, the window and the data's span. A strategy that cannot warm up would trade
nothing and a stress run on it would say nothing: that is an error, not a quiet pass.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from stress_pipeline.market.calendars import DAY_NS, trading_days
from stress_pipeline.market.durations import DurationError, format_span, parse_duration, to_bars


class StrategyWindowError(ValueError):
    """A strategy window that is not a length, is under one bar, or is longer than the data allows."""


def window_fields(strategy) -> tuple[str, ...]:
    """The names of ``strategy``'s window fields (``PanelStrategy.windows``); () for other strategies."""
    return tuple(getattr(type(strategy), "windows", ()))


def check_window_specs(strategy) -> None:
    """Raise :class:`StrategyWindowError` for a window field that is not a bar count or a time."""
    for name in window_fields(strategy):
        if getattr(strategy, name) is None:
            continue  # the default for the data's interval
        try:
            parse_duration(getattr(strategy, name))
        except DurationError as exc:
            raise StrategyWindowError(f"{strategy.name}: {name}: {exc}") from None


def at_interval(strategy, panel, calendar: str | None = None, *, check_warmup: bool = True):
    """``strategy`` with its windows in bars of ``panel`` (the module doc), else ``strategy`` itself.

    ``calendar``: the market's calendar (``24/7``, ``XNYS``...; None counts a day as 24 h of clock).
    ``check_warmup``: raise when a window holds as many bars as the panel or more.
    """
    names = window_fields(strategy)
    if not names:
        return strategy
    t = int(panel.shape[0])
    interval = max(round(float(panel.bar_seconds) * 1e9), 1)
    defaults = getattr(strategy, "daily_windows" if interval >= DAY_NS else "intraday_windows", {})
    specs = {name: defaults[name] if getattr(strategy, name) is None else getattr(strategy, name) for name in names}
    if all(isinstance(v, int) and not isinstance(v, bool) for v in specs.values()):
        bars = dict(specs)
    else:
        per_day, week = trading_days(calendar, interval, panel.ts if t else None)
        bars = {}
        for name, spec in specs.items():
            try:
                bars[name] = to_bars(spec, interval, per_day, days_per_week=week)
            except DurationError as exc:
                raise StrategyWindowError(f"strategy {strategy.name!r}: {name}={spec}: {exc}") from None
    if check_warmup:
        for name, count in bars.items():
            if count >= t:
                raise StrategyWindowError(
                    f"strategy {strategy.name!r}: {name}={specs[name]} is {format_span(count, interval)}, but the data "
                    f"has {format_span(t, interval)}{_span_text(panel)}: the strategy cannot warm up; give a shorter "
                    f"window or more data"
                )
    if bars == specs:
        return strategy
    return dataclasses.replace(strategy, **bars)


def _span_text(panel) -> str:
    if not len(panel.ts):
        return ""
    first, last = (pd.Timestamp(int(v), tz="UTC") for v in (np.min(panel.ts), np.max(panel.ts)))
    return f" ({first:%Y-%m-%d %H:%M} to {last:%Y-%m-%d %H:%M} UTC)"
