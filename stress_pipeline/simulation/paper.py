"""The paper run: the trading system under test, event-driven, against the simulated venue.

The same target weights as the backtest (``strategy.target_weights(panel)`` on the same cleaned
panel, clipped to +-``max_weight``) go through the policy controller, the risk stack (balancer,
guard, safety governor, stop-loss), the order router and the exchange simulator, bar by bar, in the
compiled loop of ``simulation/engine``. This module is the thin layer around it: policy and toggles
into the engine's named parameters, the loop's arrays out into the result tables.

Sizing, booking and round trips are the backtest's own functions (``simulation/booking.py``): a
weight w means clip(w x position_scale, +-max_weight) x equity / n_symbols of notional, equity
marked at the decision bar's close, and a position is re-sized only when its weight changes (or an
order for it did not complete). With every realism
source switched off (:class:`RealismToggles`), orders fill at the close of the signal bar, whole,
at no cost: the run then reproduces a backtest with zero fee and slippage. Each toggle switches off
exactly one source, so the divergence report can attribute the PnL gap source by source:

* ``risk``: guard, balancer, safety governor, policy controller scaling, stop-loss;
* ``latency``: order entry latency (and its stress and latency-spike multipliers);
* ``partial_fills``: the participation cap (orders fill whole);
* ``spread``: half the bar's spread paid by takers;
* ``impact``: square-root market impact;
* ``fees``: maker and taker fees;
* ``rate_limits``: venue request limits (and rate-limit faults);
* ``outages``: exchange outage faults.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from stress_pipeline.book.dense import panel_books
from stress_pipeline.book.schema import DenseBook
from stress_pipeline.market.panel import MarketPanel
from stress_pipeline.scenarios.model import FaultSpec
from stress_pipeline.simulation.backtest import (
    as_panel,
    panel_interval_ns,
    resolve_strategy,
    scale_weights,
    strategy_weights,
)
from stress_pipeline.simulation.config import SimConfig
from stress_pipeline.simulation.engine import (
    EngineState,
    RealismToggles,
    engine_params,
    market_of,
    new_engine_state,
    run_engine,
)
from stress_pipeline.simulation.events import (
    ESS_TRANSITION,
    POLICY_CHANGE,
    RISK_BLOCK,
    event_table,
    fill_rows,
    fill_table,
)
from stress_pipeline.simulation.metrics import annualisation_of, compute_metrics, equity_frame
from stress_pipeline.simulation.result import SimResult
from stress_pipeline.simulation.trades import round_trips_from_arrays
from stress_pipeline.trading.exchange.faults import as_fault_specs, fault_windows
from stress_pipeline.trading.risk.balancer import detect_stress
from stress_pipeline.trading.risk.policy import TradingPolicy, load_policy
from stress_pipeline.trading.risk.reasons import CATASTROPHIC_DRAWDOWN, DRAWDOWN_LIMIT
from stress_pipeline.trading.risk.safety_governor import ARMED, STATE_NAMES
from stress_pipeline.trading.strategies.windows import at_interval

__all__ = ["EngineRun", "RealismToggles", "paper_weights", "run_paper", "simulate"]


class EngineRun(NamedTuple):
    """What the compiled loop returns: the event log (``events.EVENT_DTYPE``), per-bar equity, cash,
    gross exposure and positions (T, S), and the final engine state (account and counters)."""

    events: np.ndarray
    equity: np.ndarray
    cash: np.ndarray
    gross: np.ndarray
    positions: np.ndarray
    state: EngineState


def run_paper(
    bars: pd.DataFrame | MarketPanel,
    strategy=None,
    config: SimConfig | None = None,
    *,
    policy: TradingPolicy | str | Path | None = None,
    faults: Iterable[FaultSpec | Mapping] = (),
    scenario_name: str = "",
    toggles: RealismToggles | None = None,
    books: Mapping[str, DenseBook] | None = None,
) -> SimResult:
    """Paper-trade ``strategy`` on ``bars`` (canonical bars, cleaned here, or a prepared panel).

    ``strategy``: a spec for ``get_strategy`` (built with ``config.strategy_params``), a strategy
    object or function, or None for ``config.strategy``. ``policy``: a :class:`TradingPolicy`, a
    path to a policy file, or None for ``TradingPolicy()`` (the defaults, which are
    data/policies/default.yaml). ``faults``: the scenario's faults (``FaultSpec`` or mappings),
    timed from the first bar. ``books``: order books per symbol (``book.dense_books``,
    ``book.synthetic.synthetic_books``); where one is in force, fills walk it (``engine/venue.py``).
    """
    started = time.perf_counter()
    config = config or SimConfig()
    toggles = toggles or RealismToggles()
    policy = as_policy(policy)
    faults = as_fault_specs(faults)
    details: dict[str, object] = {"policy": policy.name, "toggles": asdict(toggles)}
    panel = as_panel(bars, details)
    strat = at_interval(resolve_strategy(strategy, config), panel, config.calendar)
    run = simulate(panel, paper_weights(strat, panel, config), config, policy, faults=faults, toggles=toggles,
                   books=books)  # fmt: skip

    symbols = panel.symbols
    interval = panel_interval_ns(panel)
    events = event_table(run.events, symbols, faults, int(panel.ts[0]), int(panel.ts[-1]) + interval)
    executions = fill_rows(run.events)
    fills = fill_table(executions, symbols)
    trades = round_trips_from_arrays(
        executions["symbol"], np.asarray(symbols, dtype=object), executions["ts"], executions["qty"],
        executions["price"], executions["c"],
    )  # fmt: skip
    curve = equity_frame(panel.ts, run.equity, run.cash, run.gross, config.initial_capital)
    stops = emergency_stops(run.events)
    account = run.state.account[0]
    failures = int(account["failures"])
    kinds = run.events["kind"]
    final_state = final_ess_state(run.events)
    details.update(
        {
            "strategy": strat.name, "symbols": symbols, "bars": panel.shape[0],
            "positions": pd.DataFrame(run.positions, index=curve.index, columns=list(symbols), copy=False),
            "orders": int(account["next_order_id"]), "risk_blocks": int((kinds == RISK_BLOCK).sum()),
            "final_ess_state": final_state,
        }
    )  # fmt: skip
    annual, per_day = annualisation_of(panel.ts, interval, configured=config.periods_per_year, calendar=config.calendar)
    metrics = compute_metrics(
        curve, trades, fills,
        initial_capital=config.initial_capital,
        periods_per_year=annual,
        bars_per_day=per_day,
        scenario_name=scenario_name,
        duration_sec=time.perf_counter() - started,
        emergency_stops=stops,
        execution_failures=failures,
        notes=_notes(stops, failures, final_state),
        equity_sample_points=config.equity_sample_points,
        interval_ns=interval,
    )  # fmt: skip
    metrics["policy_transitions"] = int((kinds == POLICY_CHANGE).sum())
    metrics["risk_blocks"] = details["risk_blocks"]
    return SimResult(kind="paper", scenario_name=scenario_name, trades=trades, fills=fills, equity=curve,
                     metrics=metrics, events=events, details=details)  # fmt: skip


def simulate(
    panel: MarketPanel, weights: np.ndarray, config: SimConfig, policy: TradingPolicy, *,
    faults: Iterable[FaultSpec] = (), toggles: RealismToggles | None = None, event_capacity: int | None = None,
    stressed: np.ndarray | None = None, books: Mapping[str, DenseBook] | None = None,
) -> EngineRun:  # fmt: skip
    """The compiled loop on prepared inputs (``weights`` from :func:`paper_weights`; ``stressed``
    from ``detect_stress``, computed here when None). Table building is left out: this is what the
    engine benchmark times and what the PnL attribution runs once per realism source."""
    toggles = toggles or RealismToggles()
    risk = policy.risk
    if stressed is None:
        stressed = detect_stress(panel.high, panel.low, panel.spread_bps, panel.tradable, risk.stress)
    bar_ns = panel_interval_ns(panel)
    windows = fault_windows(faults, int(panel.ts[0]), outages=toggles.outages, rate_limits=toggles.rate_limits,
                            latency=toggles.latency, ledger=toggles.risk, kill_switch=toggles.risk)  # fmt: skip
    params = engine_params(policy, toggles, config, panel.shape[1])
    state = new_engine_state(panel.shape[1], float(config.initial_capital), risk.controller.window)
    capacity = event_capacity if event_capacity is not None else 4 * panel.shape[0] + 1_024
    aligned = panel_books(books, panel.symbols, panel.ts) if books else None
    market = market_of(panel, weights, stressed, bar_ns, aligned)
    log, equity, cash, gross, positions = run_engine(market, windows, params, state, int(capacity))
    return EngineRun(log, equity, cash, gross, positions, state)


def paper_weights(strategy, panel: MarketPanel, config: SimConfig) -> np.ndarray:
    """The strategy's target weights on the panel, sized exactly as the backtest sizes them."""
    return scale_weights(strategy_weights(strategy, panel), config)


def as_policy(policy: TradingPolicy | str | Path | None) -> TradingPolicy:
    """A policy object; None: the defaults; a string or path: that policy file."""
    if policy is None:
        return TradingPolicy()
    return policy if isinstance(policy, TradingPolicy) else load_policy(policy)


def emergency_stops(log: np.ndarray) -> int:
    """ESS activations: trips, and halts straight from ARMED (a halt after a trip is the same stop)."""
    ess = log["kind"] == ESS_TRANSITION
    reason = log["reason"]
    trips = ess & (reason == DRAWDOWN_LIMIT)
    halts = ess & (reason == CATASTROPHIC_DRAWDOWN) & (log["a"] == ARMED)
    return int(trips.sum() + halts.sum())


def final_ess_state(log: np.ndarray) -> str:
    """The safety governor's state at the end of the run."""
    rows = np.flatnonzero(log["kind"] == ESS_TRANSITION)
    return STATE_NAMES[int(log["b"][rows[-1]])] if len(rows) else STATE_NAMES[ARMED]


def _notes(stops: int, failures: int, final_state: str) -> str:
    parts = []
    if stops:
        parts.append(f"{stops} emergency stop(s); safety governor ends {final_state}")
    if failures:
        parts.append(f"{failures} execution failure(s)")
    return "; ".join(parts) or "Completed successfully"
