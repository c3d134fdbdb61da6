"""The paper run: the trading system under test, event-driven, against the simulated venue.

The same target weights as the backtest (``strategy.target_weights(panel)`` on the same cleaned
panel, clipped to +-``max_weight``) go through the policy controller, the risk stack (balancer,
guard, safety governor, stop-loss), the order router and the exchange simulator, bar by bar, in the
compiled loop of ``simulation/paper_kernel.py``. This module is the thin layer around it: policy and
toggles into parameter arrays, the loop's arrays out into the result tables.

Sizing and rebalancing follow the backtest exactly (``backtest.target_quantities``): a weight w
means w x equity / n_symbols of notional, equity marked at the decision bar's close, and a position
is re-sized only when its weight changes (or an order for it did not complete). With every realism
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
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from stress_pipeline.market.panel import MarketPanel, prepare_panel
from stress_pipeline.scenarios.model import FaultSpec
from stress_pipeline.simulation import paper_kernel as pk
from stress_pipeline.simulation.backtest import resolve_strategy, scale_weights
from stress_pipeline.simulation.config import SimConfig
from stress_pipeline.simulation.events import (
    ESS_TRANSITION,
    EV_A,
    EV_B,
    EV_KIND,
    EV_REASON,
    POLICY_CHANGE,
    RISK_BLOCK,
    event_table,
    fill_table,
)
from stress_pipeline.simulation.metrics import compute_metrics, equity_frame, resolve_periods_per_year
from stress_pipeline.simulation.result import SimResult
from stress_pipeline.simulation.trades import round_trips_from_arrays
from stress_pipeline.trading.exchange.faults import as_fault_specs, fault_windows
from stress_pipeline.trading.exchange.rate_limits import new_state as new_rate_state
from stress_pipeline.trading.risk.balancer import detect_stress
from stress_pipeline.trading.risk.policy import TradingPolicy, load_policy
from stress_pipeline.trading.risk.reasons import CATASTROPHIC_DRAWDOWN, DRAWDOWN_LIMIT
from stress_pipeline.trading.risk.safety_governor import ARMED, STATE_NAMES, safety_params
from stress_pipeline.trading.risk.safety_governor import new_state as new_ess_state


@dataclass(frozen=True)
class RealismToggles:
    """Which realism sources the paper run models (all by default); see the module docstring."""

    risk: bool = True
    latency: bool = True
    partial_fills: bool = True
    spread: bool = True
    impact: bool = True
    fees: bool = True
    rate_limits: bool = True
    outages: bool = True

    @classmethod
    def none(cls) -> RealismToggles:
        """Everything off: the paper engine as an idealised simulator."""
        return cls(**dict.fromkeys(asdict(cls()), False))


def run_paper(
    bars: pd.DataFrame | MarketPanel,
    strategy=None,
    config: SimConfig | None = None,
    *,
    policy: TradingPolicy | str | Path | None = None,
    faults: Iterable[FaultSpec | Mapping] = (),
    scenario_name: str = "",
    toggles: RealismToggles | None = None,
) -> SimResult:
    """Paper-trade ``strategy`` on ``bars`` (canonical bars, cleaned here, or a prepared panel).

    ``strategy``: a spec for ``get_strategy`` (built with ``config.strategy_params``), a strategy
    object or function, or None for ``config.strategy``. ``policy``: a :class:`TradingPolicy`, a
    policy name or file (None: data/policies/default.yaml). ``faults``: the scenario's faults
    (``FaultSpec`` or mappings), timed from the first bar.
    """
    started = time.perf_counter()
    config = config or SimConfig()
    toggles = toggles or RealismToggles()
    policy = policy if isinstance(policy, TradingPolicy) else load_policy(policy)
    faults = as_fault_specs(faults)
    details: dict[str, object] = {"policy": policy.name, "toggles": asdict(toggles)}
    if isinstance(bars, MarketPanel):
        panel = bars
    else:
        panel, guard = prepare_panel(bars)
        details["data_guard"] = guard
    strat = resolve_strategy(strategy, config)
    weights = paper_weights(strat, panel, config)
    raw = simulate(panel, weights, config, policy, faults=faults, toggles=toggles)
    ev_i, ev_f, equity, cash, gross, positions, counters = raw

    symbols = panel.symbols
    start_ns = int(panel.ts[0])
    end_ns = int(panel.ts[-1]) + round(panel.bar_seconds * 1e9)
    events = event_table(ev_i, ev_f, symbols, faults, start_ns, end_ns)
    fills = fill_table(ev_i, ev_f, symbols)
    names = np.asarray(symbols, dtype=object)
    codes = pd.Index(symbols).get_indexer(fills["symbol"].astype(object))
    trades = round_trips_from_arrays(
        codes, names, fills["ts"].array.asi8 if len(fills) else np.zeros(0, np.int64),
        fills["qty"].to_numpy(), fills["price"].to_numpy(), fills["fee"].to_numpy(),
    )  # fmt: skip
    curve = equity_frame(panel.ts, equity, cash, gross, config.initial_capital)
    stops = emergency_stops(ev_i, ev_f)
    failures = int(counters[pk.C_FAILURES])
    kinds = ev_i[:, EV_KIND]
    details.update(
        {
            "strategy": strat.name, "symbols": symbols, "bars": panel.shape[0],
            "positions": pd.DataFrame(positions, index=curve.index, columns=list(symbols)),
            "orders": int(counters[pk.C_ORDER_ID]), "risk_blocks": int((kinds == RISK_BLOCK).sum()),
            "final_ess_state": _final_ess_state(ev_i, ev_f),
        }
    )  # fmt: skip
    metrics = compute_metrics(
        curve, trades, fills,
        initial_capital=config.initial_capital,
        periods_per_year=resolve_periods_per_year(symbols, config.periods_per_year),
        scenario_name=scenario_name,
        duration_sec=time.perf_counter() - started,
        emergency_stops=stops,
        execution_failures=failures,
        notes=_notes(stops, failures, details["final_ess_state"]),
        equity_sample_points=config.equity_sample_points,
    )  # fmt: skip
    metrics["policy_transitions"] = int((kinds == POLICY_CHANGE).sum())
    metrics["risk_blocks"] = details["risk_blocks"]
    return SimResult(kind="paper", scenario_name=scenario_name, trades=trades, fills=fills, equity=curve,
                     metrics=metrics, events=events, details=details)  # fmt: skip


def simulate(
    panel: MarketPanel, weights: np.ndarray, config: SimConfig, policy: TradingPolicy, *,
    faults: Iterable[FaultSpec] = (), toggles: RealismToggles | None = None, event_capacity: int | None = None,
):  # fmt: skip
    """The compiled loop on prepared inputs: returns its raw arrays (ev_i, ev_f, equity, cash, gross,
    positions, counters). State I/O and table building are left out, which is what the benchmark times."""
    toggles = toggles or RealismToggles()
    risk = policy.risk
    stressed = detect_stress(panel.high, panel.low, panel.spread_bps, panel.tradable, risk.stress)
    windows = fault_windows(faults, int(panel.ts[0]), outages=toggles.outages, rate_limits=toggles.rate_limits,
                            latency=toggles.latency, ledger=toggles.risk)  # fmt: skip
    fp, ip = pack_params(policy, toggles, config, panel.bar_seconds)
    ess_i, ess_f = new_ess_state(config.initial_capital)
    capacity = event_capacity if event_capacity is not None else 4 * panel.shape[0] + 1_024
    f64 = np.float64
    return pk.run_kernel(
        np.ascontiguousarray(panel.ts, dtype=np.int64), int(ip[pk.IP_BAR_NS]),
        *(np.ascontiguousarray(getattr(panel, name), dtype=f64) for name in ("open", "high", "low", "close", "volume")),
        np.ascontiguousarray(panel.spread_bps, dtype=f64), np.ascontiguousarray(panel.tradable, dtype=np.bool_),
        stressed, np.ascontiguousarray(weights, dtype=f64), fp, ip,
        windows.outage, windows.rate_limit, windows.rate_limit_mult, windows.latency, windows.latency_mult,
        windows.ledger_down, np.zeros(risk.controller.window, dtype=np.int64), ess_i, ess_f, new_rate_state(),
        int(capacity),
    )  # fmt: skip


def paper_weights(strategy, panel: MarketPanel, config: SimConfig) -> np.ndarray:
    """The strategy's target weights on the panel, scaled exactly as the backtest scales them."""
    weights = np.asarray(strategy.target_weights(panel), dtype=np.float64)
    if weights.shape != panel.shape:
        raise ValueError(
            f"strategy {strategy.name!r} returned weights of shape {weights.shape}, expected {panel.shape}"
        )
    return scale_weights(weights, config)


def pack_params(policy: TradingPolicy, toggles: RealismToggles, config: SimConfig,
                bar_seconds: float) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """The policy and toggles as the kernel's parameter arrays. A switched-off source gets the value
    that removes it (zero latency, infinite participation, zero fees ...)."""
    risk, router, ex = policy.risk, policy.router, policy.exchange
    guard, ctl, lat, fills, fees, rl = risk.guard, risk.controller, ex.latency, ex.fills, ex.fees, ex.rate_limits
    fp = np.zeros(pk.FP_SIZE)
    fp[pk.FP_MAX_ORDER] = guard.max_order_notional
    fp[pk.FP_MAX_POSITION] = guard.max_position_notional
    fp[pk.FP_MAX_GROSS] = guard.max_gross_exposure
    fp[pk.FP_MAX_CONCENTRATION] = risk.balancer.max_concentration
    fp[pk.FP_TRIP_DD], fp[pk.FP_HALT_DD] = risk.safety.trip_drawdown, risk.safety.halt_drawdown
    fp[pk.FP_DEFENSIVE_BELOW], fp[pk.FP_AGGRESSIVE_ABOVE] = ctl.defensive_below, ctl.aggressive_above
    fp[pk.FP_SCALE_NORMAL], fp[pk.FP_SCALE_DEFENSIVE] = ctl.normal_scale, ctl.defensive_scale
    fp[pk.FP_SCALE_AGGRESSIVE] = ctl.aggressive_scale
    fp[pk.FP_STOP_PCT] = risk.stop_loss.pct
    fp[pk.FP_LIMIT_OFFSET_BPS] = router.limit_offset_bps
    fp[pk.FP_MIN_NOTIONAL] = router.min_order_notional
    fp[pk.FP_BAND] = -1.0 if router.rebalance_band is None else router.rebalance_band
    fp[pk.FP_LAT_MEDIAN_NS] = lat.median_ms * 1e6 if toggles.latency else 0.0
    fp[pk.FP_LAT_SIGMA], fp[pk.FP_LAT_STRESS_MULT], fp[pk.FP_LAT_MAX_NS] = lat.sigma, lat.stress_mult, lat.max_ms * 1e6
    fp[pk.FP_PARTICIPATION] = fills.participation if toggles.partial_fills else np.inf
    fp[pk.FP_IMPACT_K], fp[pk.FP_MAX_IMPACT_BPS] = fills.impact_k, fills.max_impact_bps
    fp[pk.FP_MAKER_BPS] = fees.maker_bps if toggles.fees else 0.0
    fp[pk.FP_TAKER_BPS] = fees.taker_bps if toggles.fees else 0.0
    fp[pk.FP_HALF_SPREAD] = 0.5 if toggles.spread else 0.0
    fp[pk.FP_INITIAL_CAPITAL] = config.initial_capital

    _, _, cooldown_ns, reset_ns, flatten = safety_params(risk.safety)
    ip = np.zeros(pk.IP_SIZE, dtype=np.int64)
    ip[pk.IP_RISK] = int(toggles.risk)
    ip[pk.IP_STOP] = int(risk.stop_loss.enabled)
    ip[pk.IP_MAX_OPEN] = guard.max_open_positions
    ip[pk.IP_STRESSED_MAX_OPEN] = risk.balancer.stressed_max_positions
    ip[pk.IP_HOLD_BARS] = risk.stress.hold_bars
    ip[pk.IP_MIN_TRADES] = ctl.min_trades
    ip[pk.IP_COOLDOWN_NS], ip[pk.IP_RESET_NS], ip[pk.IP_FLATTEN] = cooldown_ns, reset_ns, int(flatten)
    ip[pk.IP_IMPACT] = int(toggles.impact)
    ip[pk.IP_RATE_LIMITS] = int(toggles.rate_limits)
    ip[pk.IP_WEIGHT_LIMIT], ip[pk.IP_ORDER_LIMIT] = rl.weight_per_minute, rl.orders_per_10s
    ip[pk.IP_ORDER_WEIGHT], ip[pk.IP_CANCEL_WEIGHT] = rl.order_weight, rl.cancel_weight
    ip[pk.IP_MAX_RETRIES], ip[pk.IP_BACKOFF_NS] = rl.max_retries, round(rl.backoff_base_s * 1e9)
    ip[pk.IP_LIMIT_ORDERS] = int(router.order_type == "limit")
    ip[pk.IP_IOC] = int(router.time_in_force == "IOC")
    ip[pk.IP_LIMIT_TIMEOUT_NS] = round(router.limit_timeout_s * 1e9)
    ip[pk.IP_SEED] = config.seed
    ip[pk.IP_BAR_NS] = round(bar_seconds * 1e9)
    ip[pk.IP_LEDGER_BLOCK] = int(risk.block_openings_when_ledger_down)
    return fp, ip


def emergency_stops(ev_i: np.ndarray, ev_f: np.ndarray) -> int:
    """ESS activations: trips, and halts straight from ARMED (a halt after a trip is the same stop)."""
    ess = ev_i[:, EV_KIND] == ESS_TRANSITION
    reason = ev_i[:, EV_REASON]
    trips = ess & (reason == DRAWDOWN_LIMIT)
    halts = ess & (reason == CATASTROPHIC_DRAWDOWN) & (ev_f[:, EV_A] == ARMED)
    return int(trips.sum() + halts.sum())


def _final_ess_state(ev_i: np.ndarray, ev_f: np.ndarray) -> str:
    rows = np.flatnonzero(ev_i[:, EV_KIND] == ESS_TRANSITION)
    return STATE_NAMES[int(ev_f[rows[-1], EV_B])] if len(rows) else STATE_NAMES[ARMED]


def _notes(stops: int, failures: int, final_state: str) -> str:
    parts = []
    if stops:
        parts.append(f"{stops} emergency stop(s); safety governor ends {final_state}")
    if failures:
        parts.append(f"{failures} execution failure(s)")
    return "; ".join(parts) or "Completed successfully"
