"""The paper engine as a whole: the idealised case reproduces the backtest, each realism toggle
switches off exactly its own effect, the result has the documented shape, and invariants hold on
random markets (hypothesis)."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stress_pipeline.market.panel import MarketPanel, prepare_panel
from stress_pipeline.market.synthetic import generate_bars
from stress_pipeline.scenarios import apply_scenario, load_packs
from stress_pipeline.settings import get_settings
from stress_pipeline.simulation.backtest import run_backtest
from stress_pipeline.simulation.config import SimConfig
from stress_pipeline.simulation.events import EVENT_COLUMNS, FILL_COLUMNS
from stress_pipeline.simulation.paper import RealismToggles, run_paper
from stress_pipeline.simulation.result import RESULT_FIELDS
from stress_pipeline.trading import get_strategy
from stress_pipeline.trading.risk.policy import GuardLimits, RiskPolicy, TradingPolicy
from stress_pipeline_tests.test_exchange import MIN, T0, FixedWeights

NONE = RealismToggles.none()
INTRADAY = {
    "trend": {"fast": 20, "slow": 120, "band": 0.0005},
    "mean_reversion": {"window": 120, "entry_z": 2.0, "exit_z": 0.5},
    "breakout": {"entry_window": 120, "exit_window": 60},
}


@pytest.fixture(scope="module")
def panel() -> MarketPanel:
    prepared, _ = prepare_panel(generate_bars(days=3, seed=5))
    return prepared


# ------------------------------------------------------------------------------ the idealised case


@pytest.mark.parametrize("name", sorted(INTRADAY))
def test_everything_off_reproduces_a_frictionless_backtest(panel, name):
    strategy = get_strategy(name, **INTRADAY[name])
    config = SimConfig(backtest_fee_bps=0.0, backtest_slippage_bps=0.0)
    backtest = run_backtest(panel, strategy, config)
    paper = run_paper(panel, strategy, config, toggles=NONE)
    assert len(paper.fills) == len(backtest.fills) > 10
    np.testing.assert_allclose(paper.fills.qty, backtest.fills.qty, rtol=1e-9)
    np.testing.assert_allclose(paper.fills.price, backtest.fills.price, rtol=1e-12)
    assert (paper.fills.symbol.to_numpy() == backtest.fills.symbol.to_numpy()).all()
    # the backtest labels a fill with its bar, the paper run with its time: the bar's close
    close_times = backtest.fills.ts + pd.Timedelta(minutes=1)
    assert (paper.fills.ts.to_numpy() == close_times.to_numpy()).all()
    np.testing.assert_allclose(paper.equity.equity, backtest.equity.equity, rtol=1e-10)
    assert paper.metrics["total_trades"] == backtest.metrics["total_trades"]
    assert paper.metrics["total_pnl"] == pytest.approx(backtest.metrics["total_pnl"], rel=1e-9, abs=1e-6)


def _only(name: str) -> RealismToggles:
    return replace(NONE, **{name: True})


def test_each_toggle_switches_on_exactly_its_own_cost(panel):
    strategy = get_strategy("trend", **INTRADAY["trend"])
    config = SimConfig()
    base = run_paper(panel, strategy, config, toggles=NONE).fills
    runs = {name: run_paper(panel, strategy, config, toggles=_only(name)).fills
            for name in ("fees", "spread", "impact", "latency", "partial_fills")}  # fmt: skip
    costs = ("fee", "spread_cost", "impact_cost")
    for name, column in (("fees", "fee"), ("spread", "spread_cost"), ("impact", "impact_cost")):
        fills = runs[name]
        assert (fills[column] > 0).all()
        assert all((fills[c] == 0).all() for c in costs if c != column)
        assert (fills.ts.to_numpy() == base.ts.to_numpy()[: len(fills)]).all()  # same timing
    np.testing.assert_allclose(runs["fees"].price, base.price)  # fees do not move prices
    latency = runs["latency"]
    assert all((latency[c] == 0).all() for c in costs)
    assert (latency.ts > latency.ts.dt.floor("min")).all()  # after the close they were sent at
    partial = runs["partial_fills"]
    assert all((partial[c] == 0).all() for c in costs)


def test_rate_limits_and_outages_change_nothing_without_faults(panel):
    strategy = get_strategy("breakout", **INTRADAY["breakout"])
    base = run_paper(panel, strategy, SimConfig(), toggles=NONE)
    for name in ("rate_limits", "outages"):
        other = run_paper(panel, strategy, SimConfig(), toggles=_only(name))
        pd.testing.assert_frame_equal(other.fills, base.fills)


def test_risk_toggle_switches_the_whole_risk_stack(panel):
    strategy = get_strategy("trend", **INTRADAY["trend"])
    tight = TradingPolicy(risk=RiskPolicy(guard=GuardLimits(max_position_notional=10_000)))
    full = SimConfig(position_scale=1.0)
    on = run_paper(panel, strategy, full, policy=tight, toggles=_only("risk"))
    off = run_paper(panel, strategy, full, policy=tight, toggles=NONE)
    assert (on.events.kind == "risk_block").any() and not (off.events.kind == "risk_block").any()
    held = on.details["positions"].abs() * panel.close
    at_fills = [held.loc[f.ts - pd.Timedelta(minutes=1), f.symbol] for f in on.fills.itertuples()]  # no latency
    assert 9_000 < max(at_fills) <= 10_000 * (1 + 1e-9)
    assert (off.details["positions"].abs() * panel.close).max().max() > 20_000
    blocks = on.events[on.events.kind == "risk_block"]
    signals = on.events[on.events.kind == "signal"]
    assert len(blocks) <= len(signals)  # logged once per target cut, not at every retry


# ------------------------------------------------------------------------------------- the result


def test_result_has_the_documented_shape():
    bars = generate_bars(symbols=["BTCUSDT", "ETHUSDT"], days=1, seed=2)
    config = SimConfig(strategy="trend", strategy_params=INTRADAY["trend"])
    faults = [
        {"kind": "exchange_outage", "at_s": 3_600, "duration_s": 300},
        {"kind": "redis_down", "at_s": 86_400 * 5, "duration_s": 60},  # after the run: not in the log
    ]
    result = run_paper(bars, None, config, policy=get_settings().policies_dir / "default.yaml", faults=faults,
                       scenario_name="shape")
    assert result.kind == "paper" and result.scenario_name == "shape"
    assert tuple(result.events.columns) == EVENT_COLUMNS
    assert tuple(result.fills.columns) == FILL_COLUMNS
    assert list(result.equity.columns)[:3] == ["equity", "cash", "gross_exposure"]
    record = result.record()
    assert list(record)[: len(RESULT_FIELDS)] == list(RESULT_FIELDS)
    assert record["scenario_name"] == "shape" and record["success"] is True
    assert set(result.fills.liquidity) <= {"maker", "taker"}
    assert result.events.kind.isin(["fault_start", "fault_end"]).sum() == 2


def test_a_stress_pack_scenario_runs_end_to_end():
    packs = {s.name: s for s in load_packs(get_settings().stress_packs_dir)}
    scenario = packs["Black Swan Combo"]
    stressed = apply_scenario(scenario, generate_bars(days=2, seed=1))
    strategy = get_strategy("trend", **INTRADAY["trend"])
    result = run_paper(stressed, strategy, SimConfig(), faults=scenario.faults, scenario_name=scenario.name)
    assert result.metrics["success"] and len(result.equity) == stressed.ts.nunique()
    assert np.isfinite(result.equity.equity).all()


# ------------------------------------------------------------------------------------- invariants

LIMITS = GuardLimits(max_order_notional=40_000, max_position_notional=45_000, max_open_positions=2,
                     max_gross_exposure=1.2)  # fmt: skip


def _random_market(seed: int, n_bars: int, n_sym: int):
    rng = np.random.default_rng(seed)
    returns = rng.normal(0, 0.012, (n_bars, n_sym))
    returns[rng.random((n_bars, n_sym)) < 0.03] *= 6  # occasional crash or spike bars
    close = 100 * np.exp(np.cumsum(returns, axis=0))
    open_ = np.vstack([np.full((1, n_sym), 100.0), close[:-1]])
    wiggle = np.abs(rng.normal(0, 0.004, (2, n_bars, n_sym)))
    high = np.maximum(open_, close) * (1 + wiggle[0])
    low = np.minimum(open_, close) * (1 - wiggle[1])
    volume = rng.lognormal(np.log(3_000), 1.0, (n_bars, n_sym))
    spread = rng.uniform(1, 15, (n_bars, n_sym))
    tradable = rng.random((n_bars, n_sym)) > 0.03
    panel = MarketPanel(
        symbols=tuple(f"S{i}" for i in range(n_sym)), ts=T0 + np.arange(n_bars, dtype=np.int64) * MIN,
        open=open_, high=high, low=low, close=close, volume=volume, spread_bps=spread, tradable=tradable,
        bar_seconds=60.0,
    )  # fmt: skip
    changes = rng.random((n_bars, n_sym)) < 0.08
    levels = rng.choice([-1.0, 0.0, 1.0], (n_bars, n_sym))
    weights = np.where(changes, levels, np.nan)
    weights[0] = levels[0]
    weights = pd.DataFrame(weights).ffill().to_numpy()
    faults = [
        {"kind": "exchange_outage", "at_s": float(rng.integers(0, n_bars * 60)), "duration_s": 180.0},
        {"kind": "rate_limit", "at_s": float(rng.integers(0, n_bars * 60)), "duration_s": 240.0},
    ]
    return panel, weights, faults


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31), n_bars=st.integers(20, 150), n_sym=st.integers(1, 3))
def test_invariants_on_random_markets(seed, n_bars, n_sym):
    panel, weights, faults = _random_market(seed, n_bars, n_sym)
    policy = TradingPolicy(risk=RiskPolicy(guard=LIMITS))
    result = run_paper(panel, FixedWeights(weights), SimConfig(seed=seed), policy=policy, faults=faults)
    fills, events = result.fills, result.events
    positions = result.details["positions"].to_numpy()

    # cash + positions x close = equity, at every bar
    equity = result.equity
    marked = equity.cash.to_numpy() + (positions * panel.close).sum(axis=1)
    np.testing.assert_allclose(marked, equity.equity.to_numpy(), rtol=1e-9, atol=1e-6)

    # the recorded positions are the running sum of the fills
    bar = np.ceil((fills.ts.array.asi8 - T0) / MIN).astype(int) - 1  # a fill in (open, close] of its bar
    for j, symbol in enumerate(panel.symbols):
        mine = fills.symbol == symbol
        running = np.zeros(n_bars)
        np.add.at(running, bar[mine], fills.qty[mine].to_numpy())
        np.testing.assert_allclose(np.cumsum(running), positions[:, j], atol=1e-7)

    # no symbol fills more than 10% of a bar's volume
    per_bar = pd.DataFrame({"symbol": fills.symbol, "bar": bar, "qty": fills.qty.abs()})
    filled = per_bar.groupby(["symbol", "bar"]).qty.sum()
    for (symbol, k), qty in filled.items():
        assert qty <= 0.10 * panel.volume[k, panel.symbols.index(symbol)] * (1 + 1e-9)

    # orders respect the guard at the price they were sized at: no order above the order limit, and
    # no fill takes a position past the position limit (unless it was already past it, from drift)
    orders = events[events.kind == "order"].drop_duplicates("order_id").set_index("order_id")
    after = fills.groupby("symbol").qty.cumsum().to_numpy()
    for i, fill in enumerate(fills.itertuples()):
        order = orders.loc[fill.order_id]
        j = panel.symbols.index(fill.symbol)
        k = int((order.ts.value - T0) // MIN) - 1
        price = panel.close[k, j]
        before = fills.qty[(fills.symbol == fill.symbol) & (fills.ts <= order.ts)].sum()
        if fill.reason == "REBALANCE":
            adds_risk = abs(before + order.qty) > abs(before) or (before + order.qty) * before < 0
            if adds_risk:  # the closing part of a flip is never cut, however large
                opening = abs(before + order.qty) if (before + order.qty) * before < 0 else abs(order.qty)
                assert opening * price <= LIMITS.max_order_notional * (1 + 1e-9)
            assert abs(after[i]) * price <= max(LIMITS.max_position_notional, abs(before) * price) * (1 + 1e-9)
        else:  # stop-loss exits and safety-governor flattening only take risk off
            assert abs(after[i]) <= abs(before) * (1 + 1e-9)

    # the log is ordered and its ids are its positions
    assert (events.event_id.to_numpy() == np.arange(len(events))).all()
    assert events.ts.is_monotonic_increasing
    assert not fills.price.isna().any() and (fills.price > 0).all()


def test_no_position_opens_while_the_ledger_is_down_and_trading_resumes_after() -> None:
    cfg = SimConfig(strategy_params={"fast": 15, "slow": 90, "band": 0.0005})
    bars = generate_bars(days=3)
    base = run_paper(bars, None, cfg)
    start = base.fills["ts"].min().floor("D")
    at = (base.fills["ts"].iloc[0] - start).total_seconds() - 120  # two minutes before the first entry
    window = (start + pd.Timedelta(seconds=at), start + pd.Timedelta(seconds=at + 3600))
    outage = {"kind": "postgres_down", "at_s": at, "duration_s": 3600}
    blocked = run_paper(bars, None, cfg, faults=[outage])
    events = blocked.events
    assert (events.loc[events["kind"] == "risk_block", "reason"] == "LEDGER_DOWN").sum() == 3  # one per symbol
    inside = blocked.fills[(blocked.fills["ts"] >= window[0]) & (blocked.fills["ts"] < window[1])]
    assert inside.empty
    assert (blocked.fills["ts"] >= window[1]).any()  # the targets are taken again once the ledger is back
    policy = TradingPolicy()
    off = policy.model_copy(update={"risk": policy.risk.model_copy(update={"block_openings_when_ledger_down": False})})
    unblocked = run_paper(bars, None, cfg, policy=off, faults=[outage])
    assert not (unblocked.events["reason"] == "LEDGER_DOWN").any()


def test_the_exchange_session_sends_nothing_while_the_exchange_is_known_down() -> None:
    bars = generate_bars(days=1, seed=5)
    n_bars = bars["ts"].nunique()
    strategy = FixedWeights(0.3 + 0.2 * ((np.arange(n_bars) // 5) % 2))  # a new target every 5 minutes
    outage = {"kind": "exchange_outage", "at_s": 7230, "duration_s": 900}
    begin = pd.Timestamp(bars["ts"].min()) + pd.Timedelta(seconds=7230)
    end = begin + pd.Timedelta(seconds=900)
    data = TradingPolicy().model_dump()
    data["router"]["pause_on_outage"] = True
    session = TradingPolicy.model_validate(data)
    plain = run_paper(bars, strategy, SimConfig(), faults=[outage])
    paused = run_paper(bars, strategy, SimConfig(), policy=session, faults=[outage])
    for run in (plain, paused):
        events = run.events
        refused = events[(events["kind"] == "reject") & (events["reason"] == "EXCHANGE_OUTAGE")]
        known = refused["ts"].min()
        sent = events[(events["kind"] == "order") & (events["ts"] > known) & (events["ts"] < end)]
        if run is plain:  # the default router sends the refused targets again at every decision
            assert len(sent) > 10 and not (events["kind"] == "reconnect").any()
            continue
        assert sent.empty and len(refused) == 3  # the three orders in flight, then nothing
        reconnects = events[events["kind"] == "reconnect"]
        gaps = reconnects["ts"].diff().dropna()
        assert (gaps == pd.Timedelta(seconds=60)).all() and reconnects["ts"].iloc[0] == known + pd.Timedelta(seconds=60)
        assert list(reconnects["reason"]) == ["EXCHANGE_OUTAGE"] * (len(reconnects) - 1) + [""]
        assert reconnects["ts"].iloc[-2] < end <= reconnects["ts"].iloc[-1]
        details = [json.loads(d) for d in reconnects["details"]]
        assert [d["ok"] for d in details] == [False] * (len(details) - 1) + [True]
        assert sum(d["waiting"] for d in details) > 0  # sends were held for them
        assert (run.fills["ts"] >= reconnects["ts"].iloc[-1]).any()  # it resumes after the successful reconnect
    # the same run until the exchange went down
    before = plain.fills[plain.fills["ts"] < begin]
    pd.testing.assert_frame_equal(before, paused.fills[paused.fills["ts"] < begin])
