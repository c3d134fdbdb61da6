"""The PnL attribution waterfall: its parts sum to the backtest-to-paper gap, and each part is its source's."""

from __future__ import annotations

import pytest

from stress_pipeline.market.panel import prepare_panel
from stress_pipeline.market.synthetic import generate_bars
from stress_pipeline.scenarios.model import SCENARIO_ADAPTER
from stress_pipeline.scenarios.stress_run import stress_scenario
from stress_pipeline.simulation import RealismToggles, SimConfig, run_backtest, run_paper
from stress_pipeline.simulation.attribution import FIRST_PART, LADDER, attribute_pnl

CONFIG = SimConfig(strategy="trend", strategy_params={"fast": 30, "slow": 240, "band": 0.0005})


@pytest.fixture(scope="module")
def panel():
    crash = SCENARIO_ADAPTER.validate_python(
        {"name": "a", "type": "flash_crash", "symbols": ["BTCUSDT", "ETHUSDT"], "seed": 3,
         "window": {"offset_bars": 2000}, "parameters": {"drop_pct": 0.25, "recovery_bars": 60}}
    )  # fmt: skip
    stressed = stress_scenario(crash, generate_bars(symbols=("BTCUSDT", "ETHUSDT"), days=3)).stressed
    return prepare_panel(stressed)[0]


def test_parts_sum_to_the_gap_within_a_millionth_of_capital(panel) -> None:
    backtest = run_backtest(panel, None, CONFIG)
    paper = run_paper(panel, None, CONFIG)
    attribution = attribute_pnl(
        lambda toggles: run_paper(panel, None, CONFIG, toggles=toggles).metrics["total_pnl"],
        RealismToggles,
        backtest_pnl=backtest.metrics["total_pnl"],
    )
    assert [name for name, _ in attribution.parts] == [FIRST_PART, *(name for name, _ in LADDER)]
    assert attribution.paper_pnl == pytest.approx(paper.metrics["total_pnl"], abs=1e-9)
    assert abs(attribution.residual) < 1e-6 * CONFIG.initial_capital
    table = attribution.table()
    assert table["pnl"].iloc[-1] == pytest.approx(paper.metrics["total_pnl"])
    assert table["pnl_change"].iloc[1:-1].sum() == pytest.approx(attribution.total, abs=1e-6)
    parts = dict(attribution.parts)
    assert parts["fees"] < 0 and parts["spread"] < 0 and parts["impact"] <= 0  # costs only cost


def test_first_part_is_the_backtest_fixed_costs_when_the_engine_matches(panel) -> None:
    free = CONFIG.model_copy(update={"backtest_fee_bps": 0.0, "backtest_slippage_bps": 0.0})
    backtest = run_backtest(panel, None, free)
    idealised = run_paper(panel, None, free, toggles=RealismToggles.none())
    assert idealised.metrics["total_pnl"] == pytest.approx(backtest.metrics["total_pnl"], abs=1e-6)


def test_the_ladder_runs_the_engine_alone_on_the_prepared_panel_and_matches_whole_runs(panel) -> None:
    from dataclasses import replace

    from stress_pipeline.simulation.attribution import paper_pnl_runner
    from stress_pipeline.trading import get_strategy
    from stress_pipeline.trading.risk.policy import TradingPolicy

    strategy = get_strategy("trend", **CONFIG.strategy_params)
    runner = paper_pnl_runner(panel, strategy, CONFIG, TradingPolicy())
    for toggles in (RealismToggles(), RealismToggles.none(), replace(RealismToggles.none(), fees=True, risk=True)):
        whole = run_paper(panel, strategy, CONFIG, toggles=toggles).metrics["total_pnl"]
        assert runner(toggles) == pytest.approx(whole, abs=1e-9)


def test_compare_scenario_takes_the_bars_or_their_prepared_panel() -> None:
    from stress_pipeline.simulation.scenario_sims import compare_scenario, simulate_scenario
    from stress_pipeline.trading.risk.policy import TradingPolicy

    scenario = SCENARIO_ADAPTER.validate_python(
        {"name": "b", "type": "flash_crash", "symbols": ["BTCUSDT"], "seed": 1, "window": {"offset_bars": 500},
         "parameters": {"drop_pct": 0.2, "recovery_bars": 30},
         "faults": [{"kind": "exchange_outage", "at_s": 40_000, "duration_s": 600}]}
    )  # fmt: skip
    stressed = stress_scenario(scenario, generate_bars(symbols=("BTCUSDT",), days=1)).stressed
    policy = TradingPolicy()
    backtest = simulate_scenario("backtest", stressed, scenario, CONFIG, policy)
    paper = simulate_scenario("paper", stressed, scenario, CONFIG, policy)
    from_bars = compare_scenario(backtest, paper, stressed, scenario, CONFIG, policy)
    from_panel = compare_scenario(backtest, paper, prepare_panel(stressed)[0], scenario, CONFIG, policy)
    assert from_bars.attribution == from_panel.attribution
    assert from_bars.attribution.paper_pnl == pytest.approx(paper.metrics["total_pnl"], abs=1e-9)
