"""A drill's timeline as a PNG: one lane per kind (fault, detection, alert, action, recovery, end)."""

from __future__ import annotations

import pandas as pd

from stress_pipeline.drills.core import TIMELINE_KINDS
from stress_pipeline.plots import figure_png, new_figure

_COLOURS = {"fault": "tab:red", "detection": "tab:orange", "alert": "tab:purple", "action": "tab:blue",
            "recovery": "tab:green", "end": "tab:gray"}  # fmt: skip


def timeline_png(timeline: pd.DataFrame, *, title: str) -> bytes:
    """Every timeline entry as a marker at its time (seconds of the drill's clock) in its kind's lane."""
    fig = new_figure(8.0, 2.8)
    ax = fig.subplots()
    lanes = {kind: i for i, kind in enumerate(reversed(TIMELINE_KINDS))}
    for kind, rows in timeline.groupby("kind"):
        ax.scatter(rows["t_s"], [lanes[kind]] * len(rows), color=_COLOURS[kind], s=40, zorder=3, label=kind)
    ax.set_yticks(list(lanes.values()), list(lanes))
    ax.set_xlabel("seconds from the drill's start")
    ax.grid(alpha=0.3)
    ax.set_title(title)
    return figure_png(fig, tight=True)
