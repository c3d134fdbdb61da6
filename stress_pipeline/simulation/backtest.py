"""The idealised backtest: what the strategy would earn if execution were free of friction beyond a
fixed fee and a fixed slippage. The paper run adds the frictions; the gap between the two is what
the divergence report explains.

What it models, bar by bar (every symbol of the panel, in one compiled pass over time):

1. At the close of bar t, mark the book to market: equity_t = cash + sum(position x close_t).
2. For each symbol whose bar is tradable and whose target weight (the strategy's weight at t,
   clipped to +-``max_weight``) differs from the weight it last traded to, set the position to
   :func:`target_quantities` of that weight, sized on equity_t. The fill is at the close, moved
   against the trade by ``backtest_slippage_bps``, with a fee of ``backtest_fee_bps`` on the
   filled notional. No latency, no partial fills, no rejections, no risk stack beyond the weight
   cap. A symbol whose bar is not tradable (halted, missing, rejected by the data guard) keeps its
   position; a weight change it missed is traded at its next tradable bar.
3. Mark again (equity after costs), record equity, cash and gross exposure.

So the weight at t is traded at the close of t and held from bar t+1: a strategy that uses only
bars up to t (the lookahead guard checks it) cannot see the return it earns.

Sizing and booking are the compiled rules of ``simulation/booking.py``, which the paper engine
calls too: equal allocation, a weight w of a symbol means clip(w x position_scale, +-max_weight) x
equity / n_symbols of notional, equity being marked to market at the decision bar's close; fills
are booked at average cost. A position is re-sized only when its target weight changes, never to
follow price drift: a weight held for a week is one trade, not 10,000 small rebalances, in both
simulations. A ruined account (equity <= 0) sizes everything to 0.

Fills carry ``slippage_cost`` (|qty| x close x slippage), the backtest's only execution cost beyond
fees, so ``metrics.slippage_cost`` compares with the paper run's spread and impact costs.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from stress_pipeline.market.panel import MarketPanel, prepare_panel
from stress_pipeline.simulation.booking import (
    BOOK_DTYPE,
    book_fill,
    sized_weight,
    sized_weights,
    sizing_of,
    target_quantity,
)
from stress_pipeline.simulation.config import SimConfig
from stress_pipeline.simulation.metrics import annualisation_of, compute_metrics, equity_frame
from stress_pipeline.simulation.result import SimResult
from stress_pipeline.simulation.trades import round_trips_from_arrays, utc_stamps
from stress_pipeline.trading import as_strategy, get_strategy
from stress_pipeline.trading.compiled import compiled
from stress_pipeline.trading.strategies.base import checked_target_weights
from stress_pipeline.trading.strategies.windows import at_interval


def run_backtest(
    bars: pd.DataFrame | MarketPanel, strategy=None, config: SimConfig | None = None, *, scenario_name: str = ""
) -> SimResult:
    """Backtest ``strategy`` on ``bars`` (canonical bars, cleaned here, or a prepared panel).

    ``strategy``: a spec for :func:`get_strategy` (built with ``config.strategy_params``), a
    strategy object or function, or None for ``config.strategy``.
    """
    started = time.perf_counter()
    config = config or SimConfig()
    details: dict[str, object] = {}
    panel = as_panel(bars, details)
    strat = at_interval(resolve_strategy(strategy, config), panel, config.calendar)
    equity, cash, gross, fill_t, fill_s, qty, price, fee, slip = simulate(panel, strategy_weights(strat, panel), config)
    names = np.asarray(panel.symbols, dtype=object)
    ids = np.arange(1, len(qty) + 1, dtype=np.int64)
    fills = pd.DataFrame(
        {
            "ts": utc_stamps(panel.ts[fill_t]),
            "symbol": pd.array(names[fill_s], dtype="str"),
            "order_id": ids,
            "fill_id": ids.copy(),
            "qty": qty,
            "price": price,
            "fee": fee,
            "slippage_cost": slip,
        }
    )
    trades = round_trips_from_arrays(fill_s, names, panel.ts[fill_t], qty, price, fee)
    curve = equity_frame(panel.ts, equity, cash, gross, config.initial_capital)
    details.update({"strategy": strat.name, "symbols": panel.symbols, "bars": panel.shape[0]})
    interval = panel_interval_ns(panel)
    annual, per_day = annualisation_of(
        panel.ts, interval, configured=config.periods_per_year, calendar=config.calendar
    )
    metrics = compute_metrics(
        curve,
        trades,
        fills,
        initial_capital=config.initial_capital,
        periods_per_year=annual,
        scenario_name=scenario_name,
        duration_sec=time.perf_counter() - started,
        equity_sample_points=config.equity_sample_points,
        bars_per_day=per_day,
        interval_ns=interval,
    )
    return SimResult(
        kind="backtest",
        scenario_name=scenario_name,
        trades=trades,
        fills=fills,
        equity=curve,
        metrics=metrics,
        events=None,
        details=details,
    )


def simulate(panel: MarketPanel, weights: np.ndarray, config: SimConfig) -> tuple[np.ndarray, ...]:
    """The compiled pass on prepared inputs (``weights``: the strategy's raw weights, as from
    :func:`strategy_weights`): (equity, cash, gross exposure per bar; fill bar, symbol, qty, price,
    fee, slippage cost per fill). Tables and metrics are left out: this is what the kernel bench times."""
    return _simulate(
        np.ascontiguousarray(panel.close, dtype=np.float64),
        np.ascontiguousarray(weights, dtype=np.float64),
        np.ascontiguousarray(panel.tradable, dtype=np.bool_),
        float(config.initial_capital),
        sizing_of(config, panel.shape[1]),
        config.backtest_fee_bps / 1e4,
        config.backtest_slippage_bps / 1e4,
    )


def strategy_weights(strategy, panel: MarketPanel) -> np.ndarray:
    """The strategy's raw target weights on the panel, checked for shape and values (a NaN, infinite
    or out-of-range weight is an error naming its bar and symbol), float64 and C-contiguous; both
    simulations size them with ``booking.sized_weight``."""
    return checked_target_weights(strategy, panel)


def scale_weights(weights: np.ndarray, config: SimConfig) -> np.ndarray:
    """Strategy weights as both simulations size them (``booking.sized_weight`` of each): finite,
    times ``position_scale``, clipped to +-``max_weight``."""
    values = np.asarray(weights, dtype=np.float64)
    shaped = values.reshape(values.shape[0], -1) if values.ndim else values.reshape(1, 1)
    out = sized_weights(np.ascontiguousarray(shaped), sizing_of(config, 1))
    return out.reshape(values.shape)


def target_quantities(
    weights: np.ndarray | float, equity: float, close: np.ndarray | float, config: SimConfig, n_symbols: int
) -> np.ndarray:
    """Signed quantities for a strategy's ``weights`` (one per symbol), as both simulations size them:
    ``booking.target_quantity`` of ``booking.sized_weight``, that is clip(w x position_scale,
    +-max_weight) x equity / n_symbols / close; 0 where the close is not a positive number or the
    equity is not positive."""
    w, price = np.broadcast_arrays(np.asarray(weights, dtype=np.float64), np.asarray(close, dtype=np.float64))
    sizing = sizing_of(config, n_symbols)
    out = [_target(float(wi), float(equity), float(p), sizing) for wi, p in zip(w.ravel(), price.ravel(), strict=True)]
    return np.array(out, dtype=np.float64).reshape(w.shape)


def rebalance_mask(weights: np.ndarray, last_traded: np.ndarray, tradable: np.ndarray, config: SimConfig) -> np.ndarray:
    """Which symbols trade at this bar: tradable, and the target weight clipped to +-max_weight
    differs from ``last_traded``, the clipped weight each symbol last traded to (0 at the start)."""
    w = np.clip(np.asarray(weights, dtype=np.float64), -config.max_weight, config.max_weight)
    return np.asarray(tradable, dtype=bool) & (w != np.asarray(last_traded, dtype=np.float64))


def as_panel(bars: pd.DataFrame | MarketPanel, details: dict[str, object]) -> MarketPanel:
    """``bars`` as a panel: canonical bars are cleaned here (the guard's report goes into
    ``details["data_guard"]``); a prepared panel is used as it is."""
    if isinstance(bars, MarketPanel):
        return bars
    panel, details["data_guard"] = prepare_panel(bars)
    return panel


def resolve_strategy(strategy, config: SimConfig):
    """A strategy object from a spec string, an object or function, or None (``config.strategy``)."""
    if strategy is None:
        strategy = config.strategy
    if isinstance(strategy, str):
        return get_strategy(strategy, **config.strategy_params)
    return as_strategy(strategy)


def panel_interval_ns(panel: MarketPanel) -> int:
    """The panel's bar interval in ns (the market layer measures it with its one rule)."""
    return round(panel.bar_seconds * 1e9)


@compiled
def _target(raw, equity, price, sizing):
    return target_quantity(sized_weight(raw, sizing), equity, price, sizing, 1.0)


@compiled
def _simulate(close, weights, tradable, capital, sizing, fee_rate, slip_rate):
    """The bar loop: time outer, symbols inner. ``weights`` are the strategy's raw weights, sized here
    bar by bar; fill arrays grow by doubling (a few hundred fills for a day of 100 symbols)."""
    n, m = close.shape
    book = np.zeros(m, dtype=BOOK_DTYPE)
    last_weight = np.zeros(m)
    cash = capital
    equity = np.empty(n)
    cash_curve = np.empty(n)
    gross = np.empty(n)
    capacity = 4 * m + 64
    f_t = np.empty(capacity, np.int64)
    f_s = np.empty(capacity, np.int64)
    f_qty = np.empty(capacity)
    f_price = np.empty(capacity)
    f_fee = np.empty(capacity)
    f_slip = np.empty(capacity)
    k = 0
    for t in range(n):
        row = close[t]
        value = 0.0
        for j in range(m):
            value += book[j].position * row[j]
        marked = cash + value
        for j in range(m):
            w = sized_weight(weights[t, j], sizing)
            if not tradable[t, j] or w == last_weight[j] or not row[j] > 0.0:
                continue
            last_weight[j] = w
            dq = target_quantity(w, marked, row[j], sizing, 1.0) - book[j].position
            if dq == 0.0:
                continue
            price = row[j] * (1.0 + slip_rate) if dq > 0.0 else row[j] * (1.0 - slip_rate)
            fee = abs(dq) * price * fee_rate
            cash, _ = book_fill(book[j], cash, t, dq, price, fee)
            if k == capacity:
                capacity *= 2
                f_t = _grow_int(f_t, capacity)
                f_s = _grow_int(f_s, capacity)
                f_qty = _grow(f_qty, capacity)
                f_price = _grow(f_price, capacity)
                f_fee = _grow(f_fee, capacity)
                f_slip = _grow(f_slip, capacity)
            f_t[k] = t
            f_s[k] = j
            f_qty[k] = dq
            f_price[k] = price
            f_fee[k] = fee
            f_slip[k] = abs(dq) * row[j] * slip_rate
            k += 1
        value = 0.0
        exposure = 0.0
        for j in range(m):
            position = book[j].position
            value += position * row[j]
            exposure += abs(position) * row[j]
        equity[t] = cash + value
        cash_curve[t] = cash
        gross[t] = exposure
    return equity, cash_curve, gross, f_t[:k], f_s[:k], f_qty[:k], f_price[:k], f_fee[:k], f_slip[:k]


@compiled
def _grow(values, capacity):
    out = np.empty(capacity)
    out[: values.shape[0]] = values
    return out


@compiled
def _grow_int(values, capacity):
    out = np.empty(capacity, np.int64)
    out[: values.shape[0]] = values
    return out
