"""What a user wants to know first about a bar table: size, span, interval, gaps."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from stress_pipeline.market.gaps import gap_profile


@dataclass(frozen=True)
class BarSummary:
    rows: int
    first_ts: pd.Timestamp | None
    last_ts: pd.Timestamp | None
    interval: pd.Timedelta | None
    gaps: int  # places where one or more bars are missing
    missing_bars: int
    gap_ratio: float  # missing bars / expected bars

    def as_dict(self) -> dict[str, object]:
        return {
            "rows": self.rows,
            "first_ts": None if self.first_ts is None else self.first_ts.isoformat(),
            "last_ts": None if self.last_ts is None else self.last_ts.isoformat(),
            "interval": None if self.interval is None else _format_interval(self.interval),
            "gaps": self.gaps,
            "missing_bars": self.missing_bars,
            "gap_ratio": self.gap_ratio,
        }


def summarize_bars(bars: pd.DataFrame, calendar: str | None = None) -> BarSummary:
    """Summarise one symbol's bars: interval and gaps as the quality suite counts them
    (:func:`~stress_pipeline.market.gaps.gap_profile`: distinct timestamps, the market's interval rule,
    only bars missing inside the sessions of ``calendar`` when it is an exchange's)."""
    ts = bars["ts"]
    if ts.empty:
        return BarSummary(0, None, None, None, 0, 0, 0.0)
    profile = gap_profile(ts, calendar=calendar)
    return BarSummary(
        rows=len(ts),
        first_ts=ts.min(),
        last_ts=ts.max(),
        interval=profile.interval,
        gaps=profile.gaps,
        missing_bars=profile.missing_bars,
        gap_ratio=profile.ratio,
    )


def _format_interval(interval: pd.Timedelta) -> str:
    seconds = int(interval.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{interval.total_seconds():g}s"
