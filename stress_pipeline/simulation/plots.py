"""Pictures of simulation results for asset metadata: equity and drawdown, backtest vs paper."""

from __future__ import annotations

from stress_pipeline.plots import downsample, png_markdown, stacked_plot_png
from stress_pipeline.simulation.result import SimResult


def equity_drawdown_markdown(result: SimResult) -> str:
    equity = result.equity
    png = stacked_plot_png(
        [
            ({"equity": downsample(equity["equity"])}, "equity"),
            ({"drawdown %": downsample(-100 * equity["drawdown"])}, "drawdown %"),
        ],
        title=f"{result.kind}: {result.scenario_name}",
    )
    return png_markdown(png, f"{result.kind} equity and drawdown")


def equity_comparison_markdown(backtest: SimResult, paper: SimResult) -> str:
    png = stacked_plot_png(
        [
            (
                {"backtest": downsample(backtest.equity["equity"]), "paper": downsample(paper.equity["equity"])},
                "equity",
            ),
            (
                {
                    "backtest": downsample(-100 * backtest.equity["drawdown"]),
                    "paper": downsample(-100 * paper.equity["drawdown"]),
                },
                "drawdown %",
            ),
        ],
        title=f"backtest vs paper: {paper.scenario_name}",
    )
    return png_markdown(png, "backtest vs paper equity")
