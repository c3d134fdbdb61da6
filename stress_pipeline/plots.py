"""Small PNG plots for asset metadata, embedded in markdown as base64 images.

matplotlib is imported inside the functions: loading the Dagster definitions must stay fast.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping

import pandas as pd


def line_plot_png(
    series: Mapping[str, pd.Series], *, title: str, ylabel: str, width: float = 8.0, height: float = 3.0
) -> bytes:
    """Render one or more time series (index = time) as a PNG."""
    return stacked_plot_png([(series, ylabel)], title=title, width=width, panel_height=height)


def stacked_plot_png(
    panels: list[tuple[Mapping[str, pd.Series], str]], *, title: str, width: float = 8.0, panel_height: float = 2.4
) -> bytes:
    """Several panels sharing the time axis, each with one or more series (label -> series) and a y label."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(panels), 1, figsize=(width, panel_height * len(panels)), dpi=90, sharex=True)
    axes = list(axes) if len(panels) > 1 else [axes]
    try:
        for ax, (series, ylabel) in zip(axes, panels, strict=True):
            for label, values in series.items():
                ax.plot(values.index, values.to_numpy(), label=label, linewidth=0.9)
            ax.set_ylabel(ylabel)
            ax.grid(alpha=0.3)
            if len(series) > 1:
                ax.legend(loc="best", fontsize="small")
        axes[0].set_title(title)
        fig.autofmt_xdate()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", bbox_inches="tight")
    finally:
        plt.close(fig)
    return buffer.getvalue()


def png_markdown(png: bytes, alt: str) -> str:
    """A markdown image with the PNG inlined, the form the Dagster UI renders in metadata."""
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode('ascii')})"


def downsample(values: pd.Series, max_points: int = 2000) -> pd.Series:
    """Every n-th point so that a long series plots quickly and the PNG stays small."""
    step = max(1, len(values) // max_points)
    return values.iloc[::step]
