"""A trading run seen as a live system sees it: the :class:`~stress_pipeline.monitoring.monitors.Observation`
of a paper run (its event log and equity) and of the market bars it traded on.

A bar's close is known at the bar's end, not at its label, so market marks and equity marks are
stamped at ``ts + bar length``; a monitor reading them never sees a price before the run could.
Probes, webhooks and live-state flags come from where the run has them (empty when it has none).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from stress_pipeline.monitoring.monitors import (
    FLAG_COLUMNS,
    PROBE_COLUMNS,
    WEBHOOK_COLUMNS,
    Observation,
    empty_table,
)


def observation_from_run(
    events: pd.DataFrame, equity: pd.DataFrame, bars: pd.DataFrame, *, probes: pd.DataFrame | None = None,
    webhooks: pd.DataFrame | None = None, flags: pd.DataFrame | None = None,
) -> Observation:  # fmt: skip
    """``events`` (the event log), ``equity`` (indexed or keyed by ``ts``, with ``equity``) and ``bars``
    (ts, symbol, close) as an observation up to the last bar's close."""
    if not len(bars):
        raise ValueError("bars: no rows, so no market marks and no end of the run")
    step = bar_length(bars)
    marks = pd.DataFrame({"ts": bars["ts"] + step, "symbol": bars["symbol"].astype(str).to_numpy(),
                          "price": bars["close"].to_numpy(dtype=float)})  # fmt: skip
    marked = equity.reset_index() if "ts" not in equity.columns else equity
    equity_marks = pd.DataFrame({"ts": marked["ts"] + step, "equity": marked["equity"].to_numpy(dtype=float)})
    return Observation(
        as_of=marks["ts"].max(), events=events, equity=equity_marks, marks=marks,
        probes=empty_table(PROBE_COLUMNS) if probes is None else probes,
        webhooks=empty_table(WEBHOOK_COLUMNS) if webhooks is None else webhooks,
        flags=empty_table(FLAG_COLUMNS) if flags is None else flags,
    )  # fmt: skip


def bar_length(bars: pd.DataFrame) -> pd.Timedelta:
    """The bars' length: the most common step between a symbol's consecutive bars."""
    stamps = np.unique(bars["ts"].to_numpy())
    if len(stamps) < 2:
        raise ValueError("bars: one timestamp only, the bar length is unknown")
    steps, counts = np.unique(np.diff(stamps), return_counts=True)
    return pd.Timedelta(steps[np.argmax(counts)])
