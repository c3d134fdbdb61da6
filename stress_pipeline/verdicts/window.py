"""The stress window of a scenario: where its transform changed the data, plus a recovery tail.

The verdict judges what happened inside this window, not over the whole simulated span: a crash is a
few bars of a 90-day run. The window is read from the stressed bars themselves (their ``stressed``,
``corrupted`` and ``halted`` flags, path 0 of a Monte Carlo scenario); a scenario that changes no bar
(a replay carrying faults) is stressed where its faults are in force; with neither, the whole run is
the window and says so.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

#: The recovery tail when neither the scenario's window nor its pack sets one: 24 hours.
DEFAULT_RECOVERY_TAIL_S = 86_400.0
FLAGS = ("stressed", "corrupted", "halted")


@dataclass(frozen=True)
class StressWindow:
    """``start_ns`` .. ``shock_end_ns``: the first bar and the end of the last bar the stress changed;
    ``end_ns``: the end of the recovery tail (clipped to the bars). ``source``: where it was read from
    ("bars", "faults" or "whole run")."""

    start_ns: int
    shock_end_ns: int
    end_ns: int
    source: str

    @property
    def start(self) -> pd.Timestamp:
        return pd.Timestamp(self.start_ns, tz="UTC")

    @property
    def end(self) -> pd.Timestamp:
        return pd.Timestamp(self.end_ns, tz="UTC")

    def describe(self) -> str:
        return f"{self.start:%Y-%m-%d %H:%M} to {self.end:%Y-%m-%d %H:%M} UTC ({self.source})"


def recovery_tail_s(scenario) -> float:
    """The scenario's recovery tail in seconds (its window's, else the default)."""
    window = getattr(scenario, "window", None)
    tail = window.recovery_tail_s if window is not None else None
    return DEFAULT_RECOVERY_TAIL_S if tail is None else float(tail)


def stress_window(stressed: pd.DataFrame, *, tail_s: float, faults=()) -> StressWindow:
    """The stress window of ``stressed`` (a scenario's stressed bars) with a recovery tail of ``tail_s``.

    ``faults``: the scenario's faults (timed from the first bar), used when no bar is flagged.
    """
    if not len(stressed):
        raise ValueError("stress window: the stressed bars are empty")
    if "path" in stressed.columns:
        stressed = stressed[stressed["path"].to_numpy() == stressed["path"].min()]
    ts = ns_of(stressed["ts"])
    first, last = int(ts.min()), int(ts.max())
    interval = _interval_ns(stressed, ts)
    flagged = np.zeros(len(stressed), dtype=bool)
    for flag in FLAGS:
        if flag in stressed.columns:
            flagged |= stressed[flag].to_numpy(dtype=bool)
    tail_ns = round(float(tail_s) * 1e9)
    if flagged.any():
        hit = ts[flagged]
        start, shock_end, source = int(hit.min()), int(hit.max()) + interval, "bars"
    elif len(faults):
        spans = np.array([fault.window_ns(first) for fault in faults], dtype=np.int64)
        start, shock_end, source = int(spans[:, 0].min()), int(spans[:, 1].max()), "faults"
    else:
        return StressWindow(first, last + interval, last + interval, "whole run")
    end = min(shock_end + tail_ns, last + interval)
    return StressWindow(max(start, first), max(min(shock_end, end), start), max(end, start), source)


def ns_of(values) -> np.ndarray:
    """Timestamps (a column or an index, any resolution) as int64 nanoseconds since the epoch, UTC."""
    return pd.DatetimeIndex(pd.to_datetime(values, utc=True)).as_unit("ns").asi8


def _interval_ns(stressed: pd.DataFrame, ts: np.ndarray) -> int:
    """The bar interval: the most common step between a symbol's consecutive bars (60 s if unknown)."""
    if "symbol" in stressed.columns:
        codes = pd.factorize(stressed["symbol"])[0]
        order = np.lexsort((ts, codes))
        steps = np.diff(ts[order])[np.diff(codes[order]) == 0]
    else:
        steps = np.diff(np.sort(ts))
    steps = steps[steps > 0]
    if not len(steps):
        return 60_000_000_000
    values, counts = np.unique(steps, return_counts=True)
    return int(values[np.argmax(counts)])
