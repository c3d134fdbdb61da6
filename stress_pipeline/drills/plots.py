"""A drill's timeline as a PNG: one lane per kind (fault, detection, alert, action, recovery, end)."""

from __future__ import annotations

import io

import pandas as pd

from stress_pipeline.drills.core import TIMELINE_KINDS

_COLOURS = {"fault": "tab:red", "detection": "tab:orange", "alert": "tab:purple", "action": "tab:blue",
            "recovery": "tab:green", "end": "tab:gray"}  # fmt: skip


def timeline_png(timeline: pd.DataFrame, *, title: str) -> bytes:
    """Every timeline entry as a marker at its time (seconds of the drill's clock) in its kind's lane."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8.0, 2.8), dpi=90)
    try:
        lanes = {kind: i for i, kind in enumerate(reversed(TIMELINE_KINDS))}
        for kind, rows in timeline.groupby("kind"):
            ax.scatter(rows["t_s"], [lanes[kind]] * len(rows), color=_COLOURS[kind], s=40, zorder=3, label=kind)
        ax.set_yticks(list(lanes.values()), list(lanes))
        ax.set_xlabel("seconds from the drill's start")
        ax.grid(alpha=0.3)
        ax.set_title(title)
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", bbox_inches="tight")
    finally:
        plt.close(fig)
    return buffer.getvalue()
