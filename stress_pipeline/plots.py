"""Small PNG plots for asset metadata, embedded in markdown as base64 images.

matplotlib is imported inside the functions: loading the Dagster definitions must stay fast. Plots are
drawn on a bare ``Figure`` with the Agg canvas (no pyplot: no global figure registry, safe to call from
several threads), with fixed margins (one draw per PNG, not two as a tight bounding box needs), and long
series are reduced to each pixel column's low and high (``downsample``) so that a spike stays visible.
"""

from __future__ import annotations

import base64
import io
import threading
from collections.abc import Mapping

import numpy as np
import pandas as pd

DPI = 90


def new_figure(width: float, height: float, *, layout: str | None = None):
    """A matplotlib ``Figure`` on the Agg canvas, outside pyplot (``layout``: as ``Figure`` takes it)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=DPI, layout=layout)
    FigureCanvasAgg(figure)
    return figure


def figure_png(figure, *, tight: bool = False) -> bytes:
    """The figure as PNG bytes (``tight``: crop to the drawn content, which costs a second draw)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight" if tight else None)
    return buffer.getvalue()


def line_plot_png(
    series: Mapping[str, pd.Series], *, title: str, ylabel: str, width: float = 8.0, height: float = 3.0
) -> bytes:
    """Render one or more time series (index = time) as a PNG."""
    return stacked_plot_png([(series, ylabel)], title=title, width=width, panel_height=height)


def stacked_plot_png(
    panels: list[tuple[Mapping[str, pd.Series], str]], *, title: str, width: float = 8.0, panel_height: float = 2.4
) -> bytes:
    """Several panels sharing the time axis, each with one or more series (label -> series) and a y label.

    A figure of a given layout (size, panels, series labels, time or numeric x) is built once per thread
    and drawn again with each call's data: building the axes and their ticks is most of a small plot's
    cost, and the PNG is the same as a new figure's."""
    columns = [[(*_x(values.index), values.to_numpy(dtype=np.float64, na_value=np.nan)) for values in series.values()]
               for series, _ in panels]  # fmt: skip
    dates = any(is_date for panel in columns for _, is_date, _ in panel)
    layout = (width, panel_height, dates, tuple(tuple(series) for series, _ in panels))
    cache = _TEMPLATES.__dict__.setdefault("figures", {})
    if layout not in cache:
        if len(cache) >= MAX_TEMPLATES:
            cache.clear()
        cache[layout] = _template(width, panel_height, dates, [list(series) for series, _ in panels])
    figure, axes, lines, heading = cache[layout]
    for ax, panel_lines, panel, (_, ylabel) in zip(axes, lines, columns, panels, strict=True):
        for line, (x, _, y) in zip(panel_lines, panel, strict=True):
            line.set_data(x, y)
        ax.set_ylabel(ylabel)
        ax.relim()
        ax.autoscale_view()
    heading.set_text(title)
    return figure_png(figure)


_TEMPLATES = threading.local()
MAX_TEMPLATES = 16


def _template(width: float, panel_height: float, dates: bool, labels: list[list[str]]):
    import matplotlib.dates as mdates
    from matplotlib.ticker import MaxNLocator

    height = panel_height * len(labels)
    figure = new_figure(width, height)
    axes = figure.subplots(len(labels), 1, sharex=True, squeeze=False)[:, 0]
    lines = []
    for ax, names in zip(axes, labels, strict=True):
        lines.append([ax.plot([], [], label=name, linewidth=0.9)[0] for name in names])
        ax.yaxis.set_major_locator(MaxNLocator(nbins=4))
        ax.margins(x=0)  # the time axis spans the data exactly
        ax.grid(alpha=0.3)
        if len(names) > 1:
            ax.legend(loc="upper left", fontsize="small", framealpha=0.6)
    if dates:
        locator = mdates.AutoDateLocator(minticks=3)
        axes[-1].xaxis.set_major_locator(locator)
        axes[-1].xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    heading = figure.suptitle("", y=1 - 0.05 / height, va="top", fontsize="large")
    figure.subplots_adjust(left=0.1, right=0.98, top=1 - 0.35 / height, bottom=0.45 / height, hspace=0.1)
    return figure, axes, lines, heading


def _x(index: pd.Index) -> tuple[np.ndarray, bool]:
    """x values for matplotlib: dates as its day numbers (UTC), anything else as numbers."""
    if isinstance(index, pd.DatetimeIndex):
        import matplotlib.dates as mdates

        naive = index.tz_convert("UTC").tz_localize(None) if index.tz is not None else index
        return mdates.date2num(naive.to_numpy()), True
    return index.to_numpy(), False


def png_markdown(png: bytes, alt: str) -> str:
    """A markdown image with the PNG inlined, the form the Dagster UI renders in metadata."""
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode('ascii')})"


def downsample(values: pd.Series, max_points: int = 2000) -> pd.Series:
    """At most about ``max_points`` points of a long series, for a plot: the series cut into
    ``max_points / 2`` runs of consecutive points, each run kept as its lowest and its highest point in
    time order, so a one-bar spike or crash stays in the picture. Missing values are never chosen while a
    run has a number."""
    n = len(values)
    if n <= max_points:
        return values
    size = -(-n // max(1, max_points // 2))  # points per run, rounded up
    runs = -(-n // size)
    data = values.to_numpy(dtype=np.float64, na_value=np.nan)
    padded = np.full(runs * size, np.nan)
    padded[:n] = data
    blocks = padded.reshape(runs, size)
    missing = np.isnan(blocks)
    low = np.where(missing, np.inf, blocks).argmin(axis=1)
    high = np.where(missing, -np.inf, blocks).argmax(axis=1)
    starts = np.arange(runs) * size
    positions = np.unique(np.concatenate([starts + low, starts + high]))
    return values.iloc[positions[positions < n]]
