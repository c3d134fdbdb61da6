"""The risk stack: guard limits at their exact boundaries, balancer, stress detector, safety governor
(unit and in the engine), policy controller, stop-loss, and the policy files."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from stress_pipeline.simulation.config import SimConfig
from stress_pipeline.simulation.paper import RealismToggles, run_paper
from stress_pipeline.trading.risk import (
    BalancerConfig,
    GuardLimits,
    PolicyController,
    PolicyControllerConfig,
    PolicyFileError,
    PortfolioBalancer,
    RiskGuard,
    RiskPolicy,
    SafetyConfig,
    SafetyGovernor,
    StopLossConfig,
    TradingPolicy,
    detect_stress,
    load_policy,
    stop_trigger,
)
from stress_pipeline_tests.test_exchange import MIN, T0, FixedWeights, make_panel

LIMITS = GuardLimits(max_order_notional=100_000, max_position_notional=120_000, max_open_positions=3,
                     max_gross_exposure=1.5)  # fmt: skip
RISK_ONLY = RealismToggles(**{**RealismToggles.none().__dict__, "risk": True})

FULL = SimConfig(position_scale=1.0)  # weight 1 = the whole equity, as the figures below are worked out


# ------------------------------------------------------------------------------------------- guard


def test_guard_order_notional_limit_is_inclusive():
    guard = RiskGuard(LIMITS)
    exact = guard.check(1_000, 100.0, equity=1e6)
    assert exact.approved_qty == 1_000 and exact.reason == ""
    over = guard.check(1_000.5, 100.0, equity=1e6)
    assert over.approved_qty == pytest.approx(1_000) and over.reason == "RISK_MAX_ORDER_NOTIONAL"
    assert not over.blocked


def test_guard_position_limit_is_inclusive_and_cuts_the_order():
    guard = RiskGuard(LIMITS)
    exact = guard.check(700, 100.0, position=500, equity=1e6, gross_notional=50_000)
    assert exact.approved_qty == 700 and exact.reason == ""
    over = guard.check(701, 100.0, position=500, equity=1e6, gross_notional=50_000)
    assert over.approved_qty == pytest.approx(700) and over.reason == "RISK_MAX_POSITION"
    full = guard.check(10, 100.0, position=1_200, equity=1e6, gross_notional=120_000)
    assert full.blocked and full.reason == "RISK_MAX_POSITION"


def test_guard_max_open_positions():
    guard = RiskGuard(LIMITS)
    assert guard.check(10, 100.0, equity=1e6, open_positions=2).reason == ""
    refused = guard.check(10, 100.0, equity=1e6, open_positions=3)
    assert refused.blocked and refused.reason == "RISK_MAX_OPEN_POSITIONS"
    # adding to an open position does not open a new one
    assert guard.check(10, 100.0, position=5, equity=1e6, open_positions=3, gross_notional=500).reason == ""


def test_guard_gross_exposure_limit_is_inclusive():
    guard = RiskGuard(LIMITS)  # 1.5 x 100,000 equity = 150,000 gross
    exact = guard.check(500, 100.0, equity=100_000, gross_notional=100_000)
    assert exact.approved_qty == 500 and exact.reason == ""
    over = guard.check(600, 100.0, equity=100_000, gross_notional=100_000)
    assert over.approved_qty == pytest.approx(500) and over.reason == "RISK_MAX_GROSS_EXPOSURE"


def test_guard_never_blocks_risk_reduction():
    guard = RiskGuard(GuardLimits(max_order_notional=1_000, max_position_notional=1_000, max_open_positions=1,
                                  max_gross_exposure=0.01))  # fmt: skip
    # closing a 200,000 position far beyond every limit passes whole
    close = guard.check(-2_000, 100.0, position=2_000, equity=100_000, open_positions=5, gross_notional=200_000)
    assert close.approved_qty == -2_000 and close.reason == ""
    # a flip is cut to its closing part when the new side breaks a limit
    flip = guard.check(-3_000, 100.0, position=2_000, equity=100_000, open_positions=5, gross_notional=200_000)
    assert flip.approved_qty == pytest.approx(-2_000) and flip.reason == "RISK_MAX_ORDER_NOTIONAL"


def test_guard_reports_the_deepest_cut():
    guard = RiskGuard(LIMITS)
    # order limit allows 1,000, position limit allows 200 more: the position limit binds
    cut = guard.check(1_500, 100.0, position=1_000, equity=1e6, gross_notional=100_000)
    assert cut.approved_qty == pytest.approx(200) and cut.reason == "RISK_MAX_POSITION"


# ---------------------------------------------------------------------------------------- balancer


def test_balancer_concentration_limit_is_inclusive():
    balancer = PortfolioBalancer(BalancerConfig(max_concentration=0.5))
    assert balancer.target(500, 100.0, equity=100_000).qty == 500  # exactly 50%
    cut = balancer.target(-501, 100.0, equity=100_000)
    assert cut.qty == pytest.approx(-500) and cut.reason == "BALANCER_CONCENTRATION"


def test_balancer_allows_fewer_new_positions_under_stress():
    balancer = PortfolioBalancer(BalancerConfig(stressed_max_positions=2))
    assert balancer.target(10, 100.0, equity=1e6, stressed=True, open_positions=1).qty == 10
    refused = balancer.target(10, 100.0, equity=1e6, stressed=True, open_positions=2)
    assert refused.qty == 0 and refused.reason == "BALANCER_STRESS_MAX_POSITIONS"
    assert balancer.target(10, 100.0, equity=1e6, stressed=True, is_open=True, open_positions=5).qty == 10
    assert balancer.target(10, 100.0, equity=1e6, stressed=False, open_positions=5).qty == 10


def test_stress_detector_flags_spread_and_range_shocks_causally():
    n = 50
    high, low = np.full((n, 1), 100.1), np.full((n, 1), 99.9)
    spread = np.full((n, 1), 2.0)
    spread[20] = 6.5  # above 3x normal
    high[30], low[30] = 101.0, 99.0  # a range 10x normal
    flags = detect_stress(high, low, spread, np.ones((n, 1), bool))
    assert flags[:, 0].nonzero()[0].tolist() == [20, 30]
    later = spread.copy()
    later[40:] = 50.0  # what happens later does not change earlier flags
    again = detect_stress(high, low, later, np.ones((n, 1), bool))
    assert (again[:40] == flags[:40]).all()


def test_balancer_blocks_a_new_position_while_the_market_is_stressed_and_retries_after():
    n = 40
    spread = np.full((n, 2), 2.0)
    spread[10, 0] = 20.0  # BTC looks stressed at bar 10
    weights = np.zeros((n, 2))
    weights[:, 0] = 1.0  # BTC open from bar 0
    weights[11:, 1] = 1.0  # ETH wants to open at bar 11
    risk = RiskPolicy(balancer=BalancerConfig(stressed_max_positions=1))
    panel = make_panel([[100.0, 100.1, 99.9, 100.0]] * n, spread=0.0, symbols=("BTCUSDT", "ETHUSDT"))
    panel = panel.__class__(**{**panel.__dict__, "spread_bps": spread})
    result = run_paper(panel, FixedWeights(weights), FULL, policy=TradingPolicy(risk=risk), toggles=RISK_ONLY)
    blocks = result.events[result.events.kind == "risk_block"]
    assert blocks.reason.tolist() == ["BALANCER_STRESS_MAX_POSITIONS"]
    assert blocks.ts.iloc[0] == pd.Timestamp(T0 + 12 * MIN, tz="UTC")
    eth = result.fills[result.fills.symbol == "ETHUSDT"]
    # stressed from bar 10 until 15 bars later (hold_bars): ETH opens at the close of bar 26
    assert eth.ts.iloc[0] == pd.Timestamp(T0 + 27 * MIN, tz="UTC")


# ------------------------------------------------------------------------------- safety governor


def test_governor_trips_cools_down_resets_and_rearms():
    ts = T0 + np.arange(40, dtype=np.int64) * MIN
    equity = np.full(40, 99_000.0)
    equity[:3] = [100_000.0, 110_000.0, 99_000.0]  # exactly 10% below the peak: not yet
    equity[3:] = 98_999.0  # past 10%: trips
    transitions, states = SafetyGovernor().run(ts, equity)
    got = [(t.bar, t.from_state, t.to_state, t.reason) for t in transitions]
    assert got == [
        (3, "ARMED", "TRIPPED", "DRAWDOWN_LIMIT"),
        (4, "TRIPPED", "COOLDOWN", "FLATTENED"),
        (9, "COOLDOWN", "AWAITING_RESET", "COOLDOWN_ELAPSED"),  # 5 minutes after bar 4
        (24, "AWAITING_RESET", "ARMED", "OPERATOR_RESET"),  # 15 minutes after the cooldown
    ]
    assert states[2] == "ARMED" and states[5] == "COOLDOWN" and states[30] == "ARMED"
    assert transitions[0].drawdown == pytest.approx(1 - 98_999 / 110_000)


def test_governor_waits_for_flat_positions_and_for_an_operator():
    ts = T0 + np.arange(60, dtype=np.int64) * MIN
    equity = np.r_[100_000.0, np.full(59, 85_000.0)]
    flat = np.zeros(60, bool)
    flat[6:] = True
    governor = SafetyGovernor(SafetyConfig(operator_reset_delay_s=None))
    transitions, states = governor.run(ts, equity, flat)
    assert [(t.bar, t.to_state) for t in transitions] == [(1, "TRIPPED"), (6, "COOLDOWN"), (11, "AWAITING_RESET")]
    assert states[-1] == "AWAITING_RESET"  # nobody resets it


def test_governor_hard_stop_halts_for_good():
    ts = T0 + np.arange(10, dtype=np.int64) * MIN
    equity = np.array([100_000, 120_000, 105_000, 84_000, 83_999, 150_000, 150_000, 150_000, 150_000, 150_000.0])
    transitions, states = SafetyGovernor().run(ts, equity)
    assert [(t.bar, t.from_state, t.to_state) for t in transitions] == [
        (2, "ARMED", "TRIPPED"), (3, "TRIPPED", "COOLDOWN"), (4, "COOLDOWN", "HALTED"),
    ]  # fmt: skip
    assert set(states[4:]) == {"HALTED"}


def _falling_panel(closes):
    rows = [[c, c, c, c] for c in closes]
    return make_panel(rows)


def test_engine_trips_flattens_blocks_and_rearms():
    closes = [100.0, 100.0, 100.0, 97.0, 89.9] + [89.9] * 30
    risk = RiskPolicy(stop_loss=StopLossConfig(enabled=False))
    result = run_paper(_falling_panel(closes), FixedWeights(1.0), FULL, policy=TradingPolicy(risk=risk),
                       toggles=RISK_ONLY)  # fmt: skip
    ev = result.events
    ess = ev[ev.kind == "ess_transition"]
    minutes = [(t.value - T0) // MIN for t in ess.ts]
    assert [json.loads(d)["to"] for d in ess.details] == ["TRIPPED", "COOLDOWN", "AWAITING_RESET", "ARMED"]
    assert minutes == [5, 6, 11, 26]  # trip at the close of bar 4, cooldown 5 min, operator 15 min later
    flatten = result.fills[result.fills.reason == "ESS_FLATTEN"]
    assert len(flatten) == 1 and flatten.qty.iloc[0] == pytest.approx(-1_000)
    rebalances = ev[(ev.kind == "order") & (ev.reason == "REBALANCE")]
    between = rebalances[(rebalances.ts > ess.ts.iloc[0]) & (rebalances.ts < ess.ts.iloc[-1])]
    assert between.empty  # nothing sent while the governor is not armed
    assert rebalances.ts.iloc[-1] == ess.ts.iloc[-1]  # re-entry at the reset
    assert result.metrics["emergency_stops"] == 1


def test_engine_blocks_orders_that_add_risk_while_tripped_without_flatten():
    closes = [100.0, 100.0, 89.0] + [89.0] * 10
    weights = np.r_[np.ones(5), -np.ones(8)]  # flips short at bar 5, while tripped
    risk = RiskPolicy(safety=SafetyConfig(flatten_on_trip=False, operator_reset_delay_s=None),
                      stop_loss=StopLossConfig(enabled=False))  # fmt: skip
    result = run_paper(_falling_panel(closes), FixedWeights(weights), FULL, policy=TradingPolicy(risk=risk),
                       toggles=RISK_ONLY)  # fmt: skip
    blocks = result.events[result.events.kind == "risk_block"]
    assert blocks.reason.tolist() == ["ESS_BLOCKED"]
    assert json.loads(blocks.details.iloc[0])["approved_qty"] == pytest.approx(-1_000)  # only the close passes
    assert result.details["positions"].iloc[-1, 0] == 0.0


def test_engine_hard_stop_halts_trading_for_the_rest_of_the_run():
    closes = [100.0, 100.0, 69.0] + [100.0] * 10
    weights = np.r_[np.ones(6), -np.ones(7)]
    result = run_paper(_falling_panel(closes), FixedWeights(weights), FULL,
                       policy=TradingPolicy(risk=RiskPolicy(stop_loss=StopLossConfig(enabled=False))),
                       toggles=RISK_ONLY)  # fmt: skip
    ess = result.events[result.events.kind == "ess_transition"]
    assert [json.loads(d)["to"] for d in ess.details] == ["HALTED"]
    assert ess.reason.iloc[0] == "CATASTROPHIC_DRAWDOWN"
    orders = result.events[result.events.kind == "order"]
    assert orders.reason.tolist() == ["REBALANCE", "ESS_FLATTEN"]
    assert result.metrics["emergency_stops"] == 1 and result.details["final_ess_state"] == "HALTED"


# ---------------------------------------------------------------------------------- controller


def test_policy_controller_switches_on_the_rolling_win_rate():
    controller = PolicyController(PolicyControllerConfig(window=5, min_trades=5))
    pnls = [-1, -1, -1, -1, -1, 1, 1, 1, 1, 0, -1, -1, -1]
    changes, modes = controller.run(pnls)
    assert [(c.trade_index, c.from_mode, c.to_mode) for c in changes] == [
        (5, "NORMAL", "DEFENSIVE"),  # 0 of 5
        (7, "DEFENSIVE", "NORMAL"),  # 2 of 5 = 40%: not below 40%
        (9, "NORMAL", "AGGRESSIVE"),  # 4 of 5
        (11, "AGGRESSIVE", "NORMAL"),  # the zero-PnL trade is not a win: 3 of 5 = 60%, not above
        (13, "NORMAL", "DEFENSIVE"),  # 1 of 5
    ]
    assert modes[:4] == ["NORMAL"] * 4  # fewer than min_trades: NORMAL
    assert controller.scale("DEFENSIVE") == 0.5 and controller.scale("AGGRESSIVE") == 1.25


def test_engine_sizes_new_positions_by_the_policy_mode():
    n = 12
    closes = [100.0 if i % 2 == 0 else 99.0 for i in range(n)]
    weights = np.array([1.0 if i % 2 == 0 else 0.0 for i in range(n)])  # buy at 100, sell at 99: losers
    risk = RiskPolicy(controller=PolicyControllerConfig(window=3, min_trades=3),
                      stop_loss=StopLossConfig(enabled=False))  # fmt: skip
    result = run_paper(_falling_panel(closes), FixedWeights(weights), FULL, policy=TradingPolicy(risk=risk),
                       toggles=RISK_ONLY)  # fmt: skip
    change = result.events[result.events.kind == "policy_change"]
    assert json.loads(change.details.iloc[0])["to"] == "DEFENSIVE"
    assert change.ts.iloc[0] == pd.Timestamp(T0 + 7 * MIN, tz="UTC")  # third loss booked at bar 5's close
    buys = result.fills[result.fills.qty > 0]
    equity_before = result.equity.equity.iloc[5]
    assert buys.qty.iloc[3] == pytest.approx(0.5 * equity_before / 100.0)  # bar 6: half size
    assert result.metrics["policy_transitions"] == 1


# ------------------------------------------------------------------------------------ stop-loss


def test_stop_trigger_on_the_bar_path():
    # long from 100, stop 95: a down bar 100 -> 100.5 -> 94 -> 95 reaches it on the high -> low leg
    frac = stop_trigger(100, 100.5, 94, 95, side=1, entry=100, pct=0.05)
    assert frac == pytest.approx(1 / 3 + (5.5 / 6.5) / 3)
    assert stop_trigger(100, 101, 96, 99, side=1, entry=100, pct=0.05) is None
    assert stop_trigger(106, 107, 105, 106, side=-1, entry=100, pct=0.05) == 0.0  # gapped through at the open


def test_engine_stop_loss_closes_and_does_not_reenter_until_the_signal_turns():
    rows = [[100.0] * 4, [100.0] * 4, [100.0, 100.5, 94.0, 95.0]] + [[95.0] * 4] * 4 + [[95.0] * 4] * 3
    weights = np.r_[np.ones(7), -np.ones(3)]
    risk = RiskPolicy(stop_loss=StopLossConfig(pct=0.05))
    result = run_paper(make_panel(rows), FixedWeights(weights), FULL, policy=TradingPolicy(risk=risk),
                       toggles=RISK_ONLY)  # fmt: skip
    ev = result.events
    stop = ev[ev.kind == "stop_loss"].iloc[0]
    frac = 1 / 3 + (5.5 / 6.5) / 3
    assert stop.ts == pd.Timestamp(T0 + 2 * MIN + math.ceil(frac * MIN), tz="UTC") and stop.price == pytest.approx(95)
    exit_fill = result.fills[result.fills.reason == "STOP_LOSS"].iloc[0]
    assert exit_fill.qty == pytest.approx(-1_000) and exit_fill.price == pytest.approx(95.0, rel=1e-9)
    buys_after = result.fills[(result.fills.ts > stop.ts) & (result.fills.qty > 0)]
    assert buys_after.empty  # the weight stays long: no re-entry
    shorts = result.fills[result.fills.qty < 0]
    assert shorts.ts.iloc[-1] == pd.Timestamp(T0 + 8 * MIN, tz="UTC")  # the weight turns short at bar 7


# -------------------------------------------------------------------------------- policy files


def test_default_policy_file_is_the_model_defaults_field_for_field():
    from stress_pipeline.settings import get_settings

    loaded = load_policy("default", policies_dir=get_settings().policies_dir)
    assert loaded == TradingPolicy()  # so run_paper without a policy trades as the pipeline's default run
    assert load_policy(get_settings().policies_dir / "default.yaml") == loaded


def test_a_policy_name_needs_the_policies_folder():
    with pytest.raises(PolicyFileError, match="policies_dir"):
        load_policy("default")
    with pytest.raises(PolicyFileError, match="policies_dir"):
        load_policy()


def test_every_shipped_policy_file_validates():
    from stress_pipeline.settings import get_settings

    files = sorted(get_settings().policies_dir.glob("*.yaml"))
    assert files
    for path in files:
        assert load_policy(path).name == path.stem


def test_policy_errors_name_the_file_and_the_field(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("risk:\n  safety:\n    trip_drawdown: 1.5\n  guard:\n    max_open: 3\n")
    with pytest.raises(PolicyFileError) as err:
        load_policy(bad)
    message = str(err.value)
    assert str(bad) in message and "risk.safety.trip_drawdown" in message and "risk.guard.max_open" in message
    with pytest.raises(PolicyFileError, match="no such policy file"):
        load_policy("nope", policies_dir=tmp_path)
