"""Synthetic bars in trading sessions: equity and futures bars cut from the 24/7 one-minute model.

:func:`session_bars` keeps the one-minute bars inside the sessions of an exchange calendar
(:mod:`stress_pipeline.market.calendars`; regular hours, early closes honoured, no bar on a weekend or
holiday) and aggregates them to the interval, anchored at each session's open (09:30, 10:30, ... for
hourly XNYS bars; the last bar of a session may be shorter, as exchanges print it). Daily bars are
one per session, labelled with the session's date at midnight UTC, as daily exports are.

The model keeps moving while the exchange is closed, so the first bar of a session opens where the
market stands then, away from the previous session's close: an overnight (or weekend) gap, as on
an exchange. Aggregation is numpy ``reduceat`` over runs of one symbol and one bar; no loop per bar.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from stress_pipeline.market.calendars import DAY_NS, check_calendar, is_continuous, sessions
from stress_pipeline.market.schema import conform_bars
from stress_pipeline.market.synthetic_model import MINUTES_PER_DAY

_NS_PER_MINUTE = 60_000_000_000


def session_bars(minute_bars: pd.DataFrame, calendar: str, minutes: int) -> pd.DataFrame:
    """``minute_bars`` (canonical one-minute bars sorted by symbol, then ts) inside the sessions of
    ``calendar``, aggregated to bars of ``minutes`` (1,440: one bar per session)."""
    check_calendar(calendar)
    if is_continuous(calendar):
        raise ValueError("session bars need an exchange calendar such as XNYS or CMES, not 24/7")
    if minutes <= 0 or MINUTES_PER_DAY % minutes:
        raise ValueError(f"interval of {minutes} minutes: must be a whole number of minutes dividing a day")
    ts = minute_bars["ts"].dt.tz_convert(None).to_numpy(dtype="datetime64[ns]").view(np.int64)
    if not len(ts):
        return minute_bars.copy()
    labels, opens, closes = sessions(calendar, int(ts.min()), int(ts.max()))
    index = np.searchsorted(opens, ts, side="right") - 1
    inside = (index >= 0) & (ts < closes[np.maximum(index, 0)])
    if not inside.any():
        raise ValueError(f"no bar falls inside a {calendar} session between {minute_bars['ts'].iloc[0]} and "
                         f"{minute_bars['ts'].iloc[-1]}")  # fmt: skip
    kept = minute_bars.loc[inside].reset_index(drop=True)
    ts, index = ts[inside], index[inside]
    if minutes * _NS_PER_MINUTE >= DAY_NS:
        bar_ts = labels[index]
    else:
        step = minutes * _NS_PER_MINUTE
        bar_ts = opens[index] + (ts - opens[index]) // step * step
    codes = kept["symbol"].astype("category").cat.codes.to_numpy()
    starts = np.flatnonzero(np.r_[True, (np.diff(bar_ts) != 0) | (np.diff(codes) != 0)])
    ends = np.r_[starts[1:], len(kept)] - 1
    frame = pd.DataFrame(
        {
            "ts": pd.DatetimeIndex(bar_ts[starts].view("datetime64[ns]")).tz_localize("UTC"),
            "symbol": kept["symbol"].iloc[starts].to_numpy(),
            "open": kept["open"].to_numpy()[starts],
            "high": np.maximum.reduceat(kept["high"].to_numpy(), starts),
            "low": np.minimum.reduceat(kept["low"].to_numpy(), starts),
            "close": kept["close"].to_numpy()[ends],
            "volume": np.add.reduceat(kept["volume"].to_numpy(), starts),
            "spread_bps": kept["spread_bps"].to_numpy()[starts],
        }
    )
    return conform_bars(frame)

