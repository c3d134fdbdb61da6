"""Divergence between backtest and paper records, and the bias check across scenarios."""

from __future__ import annotations

import pytest

from stress_pipeline.simulation.divergence import bias_check, compare_metrics, divergence_floors


def record(pnl: float, winrate: float, drawdown: float, trades: int) -> dict[str, float]:
    return {"total_pnl": pnl, "winrate": winrate, "max_drawdown": drawdown, "total_trades": trades}


def test_divergence_uses_the_backtest_or_the_floor() -> None:
    rows = {r.metric: r for r in compare_metrics(record(5_000, 50, 4.0, 100), record(4_500, 48, 4.5, 90),
                                                 initial_capital=100_000)}
    assert rows["total_pnl"].divergence == pytest.approx(500 / 5_000)
    assert rows["winrate"].divergence == pytest.approx(2 / 50)
    assert rows["max_drawdown"].divergence == pytest.approx(0.5 / 4.0)
    assert rows["total_trades"].divergence == pytest.approx(10 / 100)
    assert all(r.passed for r in rows.values())
    # near-zero backtest figures fall back to the floors
    small = {r.metric: r for r in compare_metrics(record(100, 5, 0.2, 2), record(-300, 0, 0.9, 5),
                                                  initial_capital=100_000)}
    assert small["total_pnl"].divergence == pytest.approx(400 / 1_000)
    assert small["winrate"].divergence == pytest.approx(5 / 10)
    assert small["max_drawdown"].divergence == pytest.approx(0.7 / 1.0)
    assert small["total_trades"].divergence == pytest.approx(3 / 10)
    assert not small["total_pnl"].passed


def test_limit_is_strict() -> None:
    (pnl, *_) = compare_metrics(record(10_000, 50, 5, 100), record(8_000, 50, 5, 100), initial_capital=100_000)
    assert pnl.divergence == pytest.approx(0.2) and not pnl.passed


def test_floors_scale_with_capital() -> None:
    assert divergence_floors(1_000_000)["total_pnl"] == 10_000


def test_bias_check() -> None:
    honest = bias_check([(100, 90), (-50, -80), (300, 250), (0, -5), (20, 10), (5, 7)], initial_capital=100_000)
    assert honest.passed and honest.paper_better == 0  # +2 is within the 0.01% tolerance
    optimistic = bias_check([(100, 200), (-50, 10), (300, 350), (0, 50), (20, 90), (5, 70)], initial_capital=100_000)
    assert not optimistic.passed and optimistic.paper_better == 6 and optimistic.p_value == pytest.approx(1 / 64)
    few = bias_check([(1, 100), (2, 200)], initial_capital=100_000)
    assert not few.passed and "all of them" in few.reason
    assert bias_check([], initial_capital=100_000).passed
