"""The paper engine's inputs as named structures: what the compiled loop reads, field by field.

The scenario's fault windows come as ``trading.exchange.faults.FaultWindows``, a NamedTuple of
arrays the loop takes as it is.

The policy file (``TradingPolicy``), the realism switches (:class:`RealismToggles`) and the
simulation config (``SimConfig``) are validated pydantic models; the compiled loop cannot read
those, so :func:`engine_params` turns them into NamedTuples of plain floats, ints and bools (numba
reads a NamedTuple field by name, at no cost). A switched-off realism source gets the value that
removes it: zero latency, unlimited participation, zero fees and spread, no impact, no rate limits.

To add a knob: a field in the policy model (with its documented default), a field here, its value
in :func:`engine_params`, and the code that reads it in ``routing.py``, ``venue.py`` or ``loop.py``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import NamedTuple

import numpy as np

from stress_pipeline.book.dense import PanelBooks, no_panel_books
from stress_pipeline.market.panel import MarketPanel
from stress_pipeline.simulation.booking import Sizing, sizing_of
from stress_pipeline.trading.risk.policy import TradingPolicy
from stress_pipeline.trading.risk.safety_governor import safety_params


@dataclass(frozen=True)
class RealismToggles:
    """Which realism sources the paper run models (all by default); see ``simulation/paper.py``."""

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


class RiskParams(NamedTuple):
    """The risk stack: guard, balancer, market stress, safety governor, policy controller, stop-loss."""

    enabled: bool  # False: the whole stack is off (the idealised case)
    stops: bool
    stop_pct: float
    max_order_notional: float
    max_position_notional: float
    max_gross_exposure: float
    max_open_positions: int
    max_concentration: float
    stressed_max_positions: int
    stress_hold_bars: int
    trip_drawdown: float
    halt_drawdown: float
    cooldown_ns: int
    reset_delay_ns: int  # < 0: no operator comes
    flatten_on_trip: bool
    min_trades: int
    defensive_below: float
    aggressive_above: float
    normal_scale: float
    defensive_scale: float
    aggressive_scale: float
    block_openings_when_ledger_down: bool


class RouterParams(NamedTuple):
    """The order router and the order client of the system under test."""

    limit_orders: bool
    ioc: bool
    limit_offset_bps: float
    limit_timeout_ns: int
    min_order_notional: float
    rebalance_band: float  # < 0: re-size only when the weight changes
    max_retries: int
    backoff_ns: int
    pause_on_outage: bool
    reconnect_ns: int


class VenueParams(NamedTuple):
    """The simulated exchange: latency, fills, costs, request limits."""

    latency_median_ns: float  # 0: no latency
    latency_sigma: float
    latency_stress_mult: float
    latency_max_ns: float
    participation: float  # inf: orders fill whole
    impact: bool
    impact_k: float
    max_impact_bps: float
    maker_bps: float
    taker_bps: float
    half_spread: float  # fraction of the bar's spread a taker pays: 0.5, or 0 with the spread off
    rate_limits: bool
    weight_per_minute: int
    orders_per_10s: int
    order_weight: int
    cancel_weight: int
    seed: int


class EngineParams(NamedTuple):
    risk: RiskParams
    router: RouterParams
    venue: VenueParams
    sizing: Sizing
    initial_capital: float


class Market(NamedTuple):
    """The bars and the targets: ``ts`` (T,) int64 ns, the rest (T, S), C-contiguous."""

    ts: np.ndarray
    bar_ns: int
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    spread_bps: np.ndarray
    tradable: np.ndarray  # bool
    stressed: np.ndarray  # bool: the bar looks stressed (``balancer.detect_stress``)
    weights: np.ndarray  # sized target weights (``booking.sized_weight``)
    book_levels: int  # 0: bars only (no book anywhere); the arrays below are then empty
    booked: np.ndarray  # (T, S) bool: a book is in force at the bar (``book.dense.panel_books``)
    bid_off: np.ndarray  # (T, S, L) level distances below the book's mid, bps (NaN: empty level)
    bid_sz: np.ndarray  # (T, S, L) level sizes
    ask_off: np.ndarray  # (T, S, L) level distances above the book's mid, bps
    ask_sz: np.ndarray


def engine_params(policy: TradingPolicy, toggles: RealismToggles, config, n_symbols: int) -> EngineParams:
    """The policy, the toggles and the config as the loop reads them."""
    risk, router, ex = policy.risk, policy.router, policy.exchange
    guard, ctl, lat, fills, fees, rl = risk.guard, risk.controller, ex.latency, ex.fills, ex.fees, ex.rate_limits
    trip, halt, cooldown_ns, reset_ns, flatten = safety_params(risk.safety)
    return EngineParams(
        risk=RiskParams(
            enabled=bool(toggles.risk), stops=bool(toggles.risk and risk.stop_loss.enabled),
            stop_pct=float(risk.stop_loss.pct), max_order_notional=float(guard.max_order_notional),
            max_position_notional=float(guard.max_position_notional),
            max_gross_exposure=float(guard.max_gross_exposure), max_open_positions=int(guard.max_open_positions),
            max_concentration=float(risk.balancer.max_concentration),
            stressed_max_positions=int(risk.balancer.stressed_max_positions),
            stress_hold_bars=int(risk.stress.hold_bars), trip_drawdown=float(trip), halt_drawdown=float(halt),
            cooldown_ns=int(cooldown_ns), reset_delay_ns=int(reset_ns), flatten_on_trip=bool(flatten),
            min_trades=int(ctl.min_trades), defensive_below=float(ctl.defensive_below),
            aggressive_above=float(ctl.aggressive_above), normal_scale=float(ctl.normal_scale),
            defensive_scale=float(ctl.defensive_scale), aggressive_scale=float(ctl.aggressive_scale),
            block_openings_when_ledger_down=bool(risk.block_openings_when_ledger_down),
        ),
        router=RouterParams(
            limit_orders=router.order_type == "limit", ioc=router.time_in_force == "IOC",
            limit_offset_bps=float(router.limit_offset_bps), limit_timeout_ns=round(router.limit_timeout_s * 1e9),
            min_order_notional=float(router.min_order_notional),
            rebalance_band=-1.0 if router.rebalance_band is None else float(router.rebalance_band),
            max_retries=int(rl.max_retries), backoff_ns=round(rl.backoff_base_s * 1e9),
            pause_on_outage=bool(router.pause_on_outage), reconnect_ns=max(round(router.reconnect_s * 1e9), 1),
        ),
        venue=VenueParams(
            latency_median_ns=float(lat.median_ms * 1e6) if toggles.latency else 0.0,
            latency_sigma=float(lat.sigma), latency_stress_mult=float(lat.stress_mult),
            latency_max_ns=float(lat.max_ms * 1e6),
            participation=float(fills.participation) if toggles.partial_fills else np.inf,
            impact=bool(toggles.impact), impact_k=float(fills.impact_k), max_impact_bps=float(fills.max_impact_bps),
            maker_bps=float(fees.maker_bps) if toggles.fees else 0.0,
            taker_bps=float(fees.taker_bps) if toggles.fees else 0.0,
            half_spread=0.5 if toggles.spread else 0.0, rate_limits=bool(toggles.rate_limits),
            weight_per_minute=int(rl.weight_per_minute), orders_per_10s=int(rl.orders_per_10s),
            order_weight=int(rl.order_weight), cancel_weight=int(rl.cancel_weight), seed=int(config.seed),
        ),
        sizing=sizing_of(config, n_symbols),
        initial_capital=float(config.initial_capital),
    )  # fmt: skip


def market_of(panel: MarketPanel, weights: np.ndarray, stressed: np.ndarray, bar_ns: int,
              books: PanelBooks | None = None) -> Market:  # fmt: skip
    """The panel's arrays as the loop reads them (no copy when they are float64 and C-contiguous);
    ``books`` (``book.dense.panel_books``) when the venue fills against order books."""
    f64 = np.float64
    books = books if books is not None else no_panel_books(*panel.close.shape)
    return Market(
        ts=np.ascontiguousarray(panel.ts, dtype=np.int64), bar_ns=int(bar_ns),
        open=np.ascontiguousarray(panel.open, dtype=f64), high=np.ascontiguousarray(panel.high, dtype=f64),
        low=np.ascontiguousarray(panel.low, dtype=f64), close=np.ascontiguousarray(panel.close, dtype=f64),
        volume=np.ascontiguousarray(panel.volume, dtype=f64),
        spread_bps=np.ascontiguousarray(panel.spread_bps, dtype=f64),
        tradable=np.ascontiguousarray(panel.tradable, dtype=np.bool_),
        stressed=np.ascontiguousarray(stressed, dtype=np.bool_), weights=np.ascontiguousarray(weights, dtype=f64),
        book_levels=int(books.bid_off.shape[2]), booked=np.ascontiguousarray(books.booked, dtype=np.bool_),
        bid_off=np.ascontiguousarray(books.bid_off, dtype=f64), bid_sz=np.ascontiguousarray(books.bid_sz, dtype=f64),
        ask_off=np.ascontiguousarray(books.ask_off, dtype=f64), ask_sz=np.ascontiguousarray(books.ask_sz, dtype=f64),
    )  # fmt: skip
