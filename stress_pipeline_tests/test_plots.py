"""The metadata plots: the decimation keeps every extreme, and the PNGs are real images."""

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from stress_pipeline.drills.plots import timeline_png
from stress_pipeline.plots import downsample, stacked_plot_png

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@settings(max_examples=200, deadline=None)
@given(
    values=st.lists(st.floats(-1e6, 1e6) | st.just(float("nan")), min_size=0, max_size=3000),
    max_points=st.integers(4, 500),
)
def test_downsample_keeps_order_size_and_extremes(values, max_points):
    series = pd.Series(values, index=pd.date_range("2024-01-01", periods=len(values), freq="1min"), dtype=float)
    out = downsample(series, max_points)
    if len(series) <= max_points:
        assert out is series
        return
    assert len(out) <= max_points + 2
    assert out.index.is_monotonic_increasing and out.index.is_unique
    assert out.index.isin(series.index).all()
    assert (out.to_numpy() == series.loc[out.index].to_numpy()).sum() == out.notna().sum()
    if series.notna().any():
        assert out.max() == series.max() and out.min() == series.min()


def test_downsample_keeps_a_one_bar_crash():
    series = pd.Series(100.0, index=pd.date_range("2024-03-01", periods=43_200, freq="1min"))
    series.iloc[20_001] = 60.0
    out = downsample(series)
    assert len(out) <= 2000
    assert out.min() == 60.0 and out.index[out.argmin()] == series.index[20_001]


def test_plots_are_pngs():
    index = pd.date_range("2024-03-01", periods=5000, freq="1min", tz="UTC")
    equity = pd.Series(np.linspace(1e5, 1.1e5, len(index)), index=index)
    png = stacked_plot_png(
        [({"backtest": downsample(equity), "paper": downsample(equity * 0.99)}, "equity"), ({"dd": equity * 0}, "dd")],
        title="backtest vs paper",
    )
    assert png.startswith(PNG_MAGIC) and len(png) > 5_000
    timeline = pd.DataFrame({"t_s": [0.0, 1.5, 2.0], "kind": ["fault", "detection", "recovery"]})
    assert timeline_png(timeline, title="drill").startswith(PNG_MAGIC)


def test_a_reused_figure_draws_exactly_what_a_new_one_draws():
    from stress_pipeline import plots

    index = pd.date_range("2024-03-01", periods=3000, freq="1min", tz="UTC")
    first = pd.Series(np.sin(np.arange(len(index)) / 50.0) * 1e4, index=index)
    later = pd.Series(np.linspace(5.0, 6.0, 500), index=index[:500] + pd.Timedelta(days=3))

    def draw(series: pd.Series, title: str) -> bytes:
        return stacked_plot_png([({"a": series, "b": series * 2}, "equity"), ({"dd": -series}, "dd")], title=title)

    draw(first, "first")
    reused = draw(later, "later")
    plots._TEMPLATES.figures.clear()
    assert reused == draw(later, "later")
