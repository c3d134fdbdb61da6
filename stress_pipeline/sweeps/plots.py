"""Heat maps of a sweep for asset metadata: the failure rate, and a metric, over its two widest axes.

Drawn on a bare figure, as in :mod:`stress_pipeline.plots`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from stress_pipeline.plots import figure_png, new_figure, png_markdown
from stress_pipeline.sweeps.summary import failure_matrix, heatmap_axes


def heatmap_png(
    panels: list[tuple[pd.DataFrame, str, str, tuple[float, float] | None]], *, title: str, xlabel: str, ylabel: str
) -> bytes:
    """Side-by-side heat maps, each (matrix, panel title, colour map, colour limits or None), cells
    annotated with their value."""
    first = panels[0][0]
    width = max(4.5, 0.8 * first.shape[1] + 3.0) * len(panels)
    height = max(2.6, 0.5 * first.shape[0] + 1.6)
    fig = new_figure(width, height, layout="constrained")
    axes = list(np.atleast_1d(fig.subplots(1, len(panels))))
    for ax, (matrix, label, cmap, limits) in zip(axes, panels, strict=True):
        values = matrix.to_numpy(dtype=np.float64)
        vmin, vmax = limits if limits is not None else (None, None)
        image = ax.imshow(values, cmap=cmap, aspect="auto", origin="lower", vmin=vmin, vmax=vmax)
        ax.set_xticks(range(matrix.shape[1]), [_label(v) for v in matrix.columns])
        ax.set_yticks(range(matrix.shape[0]), [_label(v) for v in matrix.index])
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(label, fontsize="medium")
        for (row, col), value in np.ndenumerate(values):
            if np.isfinite(value):
                ax.text(col, row, f"{value:.2g}", ha="center", va="center", fontsize="x-small")
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    fig.suptitle(title)
    return figure_png(fig, tight=True)


def sweep_heatmap_markdown(grid: pd.DataFrame, sweep: str, metric: str = "stress_drawdown_pct") -> str:
    """The failure rate and the mean ``metric`` over the sweep's two widest axes, as a markdown image."""
    x, y = heatmap_axes(grid)
    if x is None:
        return "no axis to plot"
    panels = [
        (failure_matrix(grid, x, y), "share of points failing", "Reds", (0.0, 1.0)),
        (failure_matrix(grid, x, y, metric), f"mean {metric}", "viridis", None),
    ]
    png = heatmap_png(panels, title=f"sweep {sweep}", xlabel=x, ylabel=y or "")
    return png_markdown(png, f"sweep {sweep}: failures over {x} and {y}")


def _label(value: object) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)
