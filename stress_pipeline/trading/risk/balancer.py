"""The portfolio balancer and the market stress detector it shares with the exchange simulator.

The balancer shapes targets before the router turns them into orders: no symbol may exceed
``max_concentration`` of equity (BALANCER_CONCENTRATION), and while the market is stressed a flat
symbol may not open when ``stressed_max_positions`` positions are already open
(BALANCER_STRESS_MAX_POSITIONS). Open positions are not forced shut by stress: selling into a crash
to meet a tighter limit would add to the damage.

Stress detection (:func:`stress_flags`): a symbol's bar is stressed when its spread exceeds
``spread_mult`` times its normal level or its range, 1e4 * ln(high / low), exceeds ``range_mult``
times its normal level. Normal levels are exponentially weighted means over the symbol's earlier
tradable bars (half-life ``halflife_bars``), seeded with its first tradable bar, so the flag at bar t
uses bars up to t only. Non-tradable bars are never stressed (there is no trading to protect).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from stress_pipeline.trading.compiled import compiled
from stress_pipeline.trading.risk.policy import BalancerConfig, StressConfig
from stress_pipeline.trading.risk.reasons import (
    BALANCER_CONCENTRATION,
    BALANCER_STRESS_MAX_POSITIONS,
    NONE,
    REASON_NAMES,
)


@dataclass(frozen=True)
class BalancedTarget:
    requested_qty: float
    qty: float
    reason: str


class PortfolioBalancer:
    """Applies :class:`BalancerConfig` to one symbol's target (the compiled :func:`balance_target`)."""

    def __init__(self, config: BalancerConfig | None = None) -> None:
        self.config = config or BalancerConfig()

    def target(
        self, qty: float, price: float, *, equity: float, stressed: bool = False, is_open: bool = False,
        open_positions: int = 0,
    ) -> BalancedTarget:
        """``is_open``: this symbol holds a position (or an order for one); ``open_positions``: how
        many symbols do."""
        cfg = self.config
        out, reason = balance_target(
            float(qty), float(price), float(equity), cfg.max_concentration, bool(stressed), bool(is_open),
            int(open_positions), cfg.stressed_max_positions,
        )  # fmt: skip
        return BalancedTarget(float(qty), float(out), REASON_NAMES.get(int(reason), ""))


def detect_stress(high: np.ndarray, low: np.ndarray, spread_bps: np.ndarray, tradable: np.ndarray,
                  config: StressConfig | None = None) -> np.ndarray:  # fmt: skip
    """(T, S) bool: which bars look stressed (see the module docstring)."""
    cfg = config or StressConfig()
    return stress_flags(
        np.ascontiguousarray(high, dtype=np.float64), np.ascontiguousarray(low, dtype=np.float64),
        np.ascontiguousarray(spread_bps, dtype=np.float64), np.ascontiguousarray(tradable, dtype=np.bool_),
        cfg.spread_mult, cfg.range_mult, cfg.halflife_bars,
    )  # fmt: skip


@compiled
def balance_target(
    qty: float, price: float, equity: float, max_concentration: float, stressed: bool, is_open: bool,
    open_positions: int, stressed_max_positions: int,
) -> tuple[float, int]:
    """(balanced signed target qty, reason code)."""
    if qty == 0.0:
        return 0.0, NONE
    if stressed and not is_open and open_positions >= stressed_max_positions:
        return 0.0, BALANCER_STRESS_MAX_POSITIONS
    cap = max_concentration * max(equity, 0.0)
    if abs(qty) * price > cap:
        return math.copysign(cap / price, qty), BALANCER_CONCENTRATION
    return qty, NONE


@compiled
def stress_flags(
    high: np.ndarray, low: np.ndarray, spread_bps: np.ndarray, tradable: np.ndarray, spread_mult: float,
    range_mult: float, halflife_bars: float,
) -> np.ndarray:
    n_bars, n_symbols = high.shape
    alpha = 1.0 - 0.5 ** (1.0 / halflife_bars)
    out = np.zeros((n_bars, n_symbols), dtype=np.bool_)
    seeded = np.zeros(n_symbols, dtype=np.bool_)
    base_spread = np.zeros(n_symbols)
    base_range = np.zeros(n_symbols)
    for t in range(n_bars):  # time outer, symbols inner: the arrays are read in memory order
        for s in range(n_symbols):
            if not tradable[t, s] or low[t, s] <= 0.0:
                continue
            rng = 1e4 * math.log(high[t, s] / low[t, s])
            spread = spread_bps[t, s]
            if not seeded[s]:
                base_spread[s], base_range[s], seeded[s] = spread, rng, True
                continue
            out[t, s] = spread > spread_mult * base_spread[s] or rng > range_mult * base_range[s]
            base_spread[s] += alpha * (spread - base_spread[s])
            base_range[s] += alpha * (rng - base_range[s])
    return out
