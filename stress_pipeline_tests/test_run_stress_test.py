"""``run_stress_test``: a custom scenario judged in one call, anchored windows on the system's book."""

from __future__ import annotations

import numpy as np
import pytest

import stress_pipeline
from stress_pipeline.market.synthetic import generate_bars
from stress_pipeline.scenarios.windows import WindowError, anchor_index
from stress_pipeline.verdicts.table import OUTCOMES

FAST = {"strategy": "trend", "strategy_params": {"fast": 15, "slow": 90, "band": 0.0005}}
CRASH = {
    "name": "My Crash",
    "type": "flash_crash",
    "severity": "catastrophic",
    "symbols": ["BTCUSDT", "ETHUSDT"],
    "parameters": {"drop_pct": 0.25, "duration_bars": 5, "recovery_bars": 10},
    "window": {"at": "max_exposure", "recovery_tail_s": 3600},
    "expect": {"max_loss_pct": 0.5},
}


@pytest.fixture(scope="module")
def bars():
    return generate_bars(symbols=("BTCUSDT", "ETHUSDT"), days=3)


def test_one_call_returns_verdict_metrics_and_curves_with_the_window_on_the_largest_book(bars) -> None:
    result = stress_pipeline.run_stress_test(CRASH, bars, FAST)
    assert result.verdict in OUTCOMES
    assert result.table["scenario"].unique().tolist() == ["My Crash"]
    assert {"exercised", "max_loss_pct", "max_drawdown_pct", "flat_after", "hard_limit_breaches"} <= set(
        result.table["criterion"]
    )
    # The shock starts at the bar after the baseline's largest gross exposure (after the warm-up bars).
    exposure = result.baseline.equity["gross_exposure"].to_numpy()
    largest = 60 + int(np.argmax(exposure[60:-1]))
    assert result.anchor is not None and result.anchor.start == result.baseline.equity.index[largest + 1]
    assert result.details.window.start == result.anchor.start
    figures = result.metrics.set_index("figure")
    assert figures.loc["exposure_at_shock", "stressed"] == pytest.approx(exposure[largest])
    assert figures.loc["exposure_at_shock", "stressed"] > 0
    # The crash hit a held book: the stressed run lost more than the baseline over the same window.
    assert figures.loc["pnl", "impact"] < 0
    assert {"equity", "drawdown", "gross_exposure", "baseline_equity"} <= set(result.curves.columns)
    assert len(result.curves) == len(result.paper.equity)


def test_a_failed_criterion_fails_the_call_with_its_value(bars) -> None:
    strict = {**CRASH, "expect": {"max_stress_drawdown_pct": 0.0001}}
    result = stress_pipeline.run_stress_test(strict, bars, FAST)
    assert result.verdict == "fail"
    (detail,) = [d for d in result.failed if d.startswith("max_stress_drawdown_pct")]
    assert "(limit <= 0.01%)" in detail


def test_bad_scenarios_and_systems_are_refused_by_name(bars) -> None:
    with pytest.raises(ValueError, match=r"expect.*max_drawdwn_pct"):
        stress_pipeline.run_stress_test({**CRASH, "expect": {"max_drawdwn_pct": 0.1}}, bars, FAST)
    with pytest.raises(ValueError, match=r"window\.at: a monte_carlo scenario has no shock"):
        stress_pipeline.run_stress_test(
            {"name": "mc", "type": "monte_carlo", "symbols": ["BTCUSDT"], "window": {"at": "max_exposure"},
             "parameters": {"n_paths": 2, "horizon_bars": 100}},
            bars,
        )  # fmt: skip
    with pytest.raises(TypeError, match="system: expected a strategy name"):
        stress_pipeline.run_stress_test(CRASH, bars, 42)


def test_an_anchor_on_an_empty_book_is_refused() -> None:
    with pytest.raises(WindowError, match="holds no position"):
        anchor_index("max_exposure", np.zeros(500))
    exposure = np.zeros(500)
    exposure[[10, 200, 300]] = [9.0, 5.0, 7.0]  # bar 10 is inside the warm-up
    assert anchor_index("max_exposure", exposure) == 300
    assert anchor_index("position_open", exposure) == 200
