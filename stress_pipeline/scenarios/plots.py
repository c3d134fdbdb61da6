"""The picture of a stressed scenario: base vs stressed close and spread around the window."""

from __future__ import annotations

import pandas as pd

from stress_pipeline.plots import downsample, png_markdown, stacked_plot_png

CONTEXT_BARS = 120


def scenario_plot_markdown(run) -> str:
    """A two-panel PNG (close, spread) for the first symbol, base vs stressed, as markdown."""
    symbol = run.scenario.symbols[0]
    base = run.base.to_frame()
    base = base[base["symbol"] == symbol].set_index("ts")
    stressed = run.stressed[run.stressed["symbol"] == symbol]
    if "path" in stressed.columns:
        stressed = stressed[stressed["path"] == 0]
    stressed = stressed.set_index("ts")
    window = run.result.windows.get(symbol)
    if window is not None:
        start, end = pd.Timestamp(window[0], tz="UTC"), pd.Timestamp(window[1], tz="UTC")
        span = max(end - start, pd.Timedelta(minutes=1))
        lo, hi = start - span * 2 - pd.Timedelta(minutes=CONTEXT_BARS // 2), end + span * 2 + pd.Timedelta(minutes=30)
        base, stressed = base.loc[lo:hi], stressed.loc[lo:hi]
    png = stacked_plot_png(
        [
            ({"base close": downsample(base["close"]), "stressed close": downsample(stressed["close"])}, "close"),
            ({"base": downsample(base["spread_bps"]), "stressed": downsample(stressed["spread_bps"])}, "spread (bps)"),
        ],
        title=f"{run.scenario.name}: {symbol}",
    )
    return png_markdown(png, f"{run.scenario.name} {symbol}")
