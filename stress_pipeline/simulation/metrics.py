"""Performance metrics of a simulation run, one implementation for the backtest and the paper run.

The divergence report compares the two runs key by key, so every number here is defined once.

Inputs: the equity frame (indexed by bar ts; ``equity`` marked to market at each bar close, and
``gross_exposure``), the closed round trips (``trades.round_trips``) and the fills.

Conventions (the seed result record's units: percentages as numbers, 3.2 means 3.2%):

* ``total_pnl`` = final equity - initial capital (realised and unrealised: positions still open
  at the end are marked at the last close); ``total_pnl_pct`` = 100 x total_pnl / initial capital.
* ``max_drawdown``: mark-to-market, in percent, a positive number: the largest fall of equity from
  its running peak, the initial capital counting as the first peak (equity 100, 110, 99, 120 gives
  10.0). The equity frame's ``drawdown`` column is the same curve as a fraction.
* Returns: daily, from the last equity of each UTC calendar day, the initial capital standing for
  the close before the first day. With fewer than ``MIN_DAILY_RETURNS`` days (a stress window of a
  few hours or days) daily statistics mean nothing, so bar returns are used instead and annualised
  with periods_per_year x bars per day; ``returns_basis`` says which ("daily" or "bar").
* ``sharpe_ratio`` = mean / standard deviation (ddof=1) of those returns x sqrt(periods per year),
  risk-free rate 0. ``sortino_ratio`` = mean / downside deviation x sqrt(periods per year), the
  downside deviation being sqrt(mean(min(r, 0)^2)) over all periods. Both are 0.0 when undefined
  (fewer than two returns, no dispersion, no downside).
* periods per year and bars per day follow the market's calendar when ``SimConfig.calendar`` is set
  (:func:`annualisation_of`): ``24/7`` is 365 days of 86,400 s / interval bars, an exchange calendar
  (XNYS, CMES...) 252 sessions of the bars of a regular session at the data's interval (390 one-minute
  bars for XNYS, 1 daily bar). Without a calendar, periods per year:
  ``SimConfig.periods_per_year`` when set, else inferred from the bars
  (:func:`infer_periods_per_year`): 365 when a bar falls on a Saturday or a Sunday (UTC; a market
  that trades every day), 252 when the bars span a weekend and none falls on it (a weekday-only
  market), and 365 when the span holds no weekend day to tell (a window of a few weekdays: set the
  configuration for equities there). No settings or symbol files are read here.
  Bars per day: 86,400 s / the bar interval (``market.intervals.bar_interval_ns``, the one rule)
  when the market trades every day (365), else the most bars seen in one UTC day (a session).
* ``var_95``, ``cvar_95``, ``var_99``, ``cvar_99``: historical, on the same returns, in percent,
  positive = loss. With n returns sorted ascending and k = ceil(n x (1 - level)) (at least 1), VaR
  is minus the k-th worst return and CVaR minus the mean of the k worst.
* Trades are closed round trips: ``total_trades``, ``winning_trades`` (pnl > 0), ``losing_trades``
  (pnl < 0; a zero-pnl trade is neither). ``winrate`` = 100 x winning / total (0 without trades).
  ``profit_factor`` = gross profit / |gross loss| over closed trades: 0.0 without profit, inf with
  profit and no loss. ``avg_win`` / ``avg_loss``: mean pnl of the winners / losers (avg_loss is
  negative), 0.0 when there are none.
* ``exposure``: mean over bars of gross exposure / equity (a fraction: 0.5 = half invested on
  average). ``turnover``: traded notional (sum of |qty x price| over fills) / mean equity.
* ``fees``: sum of the fills' fees. ``slippage_cost``: what execution cost beyond the fees, the
  sum of whichever of ``spread_cost``, ``impact_cost`` and ``slippage_cost`` the fills carry.
* ``equity_curve_sample``: ``equity_sample_points`` values taken evenly along the curve that
  starts at the initial capital and then holds each bar's equity (all of it when shorter).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import pandas as pd

from stress_pipeline.market.calendars import annualisation
from stress_pipeline.market.intervals import bar_interval_ns
from stress_pipeline.simulation.result import RESULT_FIELDS
from stress_pipeline.simulation.trades import utc_stamps

MIN_DAILY_RETURNS = 30  # fewer daily returns than this: statistics on bar returns instead
DAY_NS = 86_400 * 1_000_000_000
CONTINUOUS_PERIODS = 365  # a market that trades every day of the year, round the clock
WEEKDAY_PERIODS = 252  # a market closed at weekends (and on a few holidays)
_EPOCH_WEEKDAY = 3  # 1970-01-01 was a Thursday (Monday = 0)
COST_COLUMNS = ("spread_cost", "impact_cost", "slippage_cost")


def compute_metrics(
    equity: pd.DataFrame,
    trades: pd.DataFrame,
    fills: pd.DataFrame,
    *,
    initial_capital: float,
    periods_per_year: int,
    scenario_name: str,
    duration_sec: float,
    emergency_stops: int = 0,
    execution_failures: int = 0,
    notes: str = "",
    equity_sample_points: int = 50,
    success: bool = True,
    failed_models: Iterable[str] = (),
    failed_strategies: Iterable[str] = (),
    bars_per_day: float | None = None,
    interval_ns: int | None = None,
) -> dict[str, object]:
    """The result record (every key of RESULT_FIELDS, in order) plus the extra metrics, as plain
    Python values ready for JSON. Conventions: the module docstring. ``bars_per_day`` None: estimated
    from the equity index and ``interval_ns`` (the bar interval; None: measured on the index)."""
    capital = float(initial_capital)
    values = equity["equity"].to_numpy(dtype=np.float64) if len(equity) else np.zeros(0)
    ts = _index_ns(equity.index) if len(equity) else np.zeros(0, dtype=np.int64)
    curve = np.concatenate(([capital], values))
    final = float(curve[-1])
    per_day = bars_per_day if bars_per_day is not None else estimate_bars_per_day(ts, periods_per_year, interval_ns)
    returns, basis, annual = period_returns(values, ts, capital, periods_per_year, per_day)
    pnl = trades["pnl"].to_numpy(dtype=np.float64) if len(trades) else np.zeros(0)
    wins, losses = pnl[pnl > 0], pnl[pnl < 0]
    record: dict[str, object] = {
        "scenario_name": scenario_name,
        "success": bool(success),
        "duration_sec": float(duration_sec),
        "total_pnl": final - capital,
        "total_pnl_pct": 100.0 * (final - capital) / capital,
        "max_drawdown": 100.0 * float(drawdown_curve(curve).max()),
        "sharpe_ratio": sharpe_ratio(returns, annual),
        "profit_factor": profit_factor(pnl),
        "winrate": 100.0 * len(wins) / len(pnl) if len(pnl) else 0.0,
        "total_trades": len(pnl),
        "winning_trades": len(wins),
        "losing_trades": len(losses),
        "emergency_stops": int(emergency_stops),
        "execution_failures": int(execution_failures),
        "failed_models": list(failed_models),
        "failed_strategies": list(failed_strategies),
        "equity_curve_sample": sample_curve(curve, equity_sample_points),
        "notes": notes,
    }
    assert tuple(record) == RESULT_FIELDS
    var_95, cvar_95 = historical_var(returns, 0.95)
    var_99, cvar_99 = historical_var(returns, 0.99)
    record.update(
        {
            "sortino_ratio": sortino_ratio(returns, annual),
            "avg_win": float(wins.mean()) if len(wins) else 0.0,
            "avg_loss": float(losses.mean()) if len(losses) else 0.0,
            "var_95": var_95,
            "cvar_95": cvar_95,
            "var_99": var_99,
            "cvar_99": cvar_99,
            "exposure": _exposure(equity, values),
            "turnover": _turnover(fills, values),
            "fees": _column_sum(fills, ("fee",)),
            "slippage_cost": _column_sum(fills, COST_COLUMNS),
            "returns_basis": basis,
            "periods_per_year": int(periods_per_year),
            "final_equity": final,
        }
    )
    return record


def equity_frame(
    ts: np.ndarray, equity: np.ndarray, cash: np.ndarray, gross_exposure: np.ndarray, initial_capital: float
) -> pd.DataFrame:
    """The equity curve both simulations return: indexed by bar ts (UTC), columns ``equity``,
    ``cash``, ``gross_exposure``, ``pnl`` (equity - initial capital) and ``drawdown`` (fraction
    below the running peak, the initial capital being the first peak)."""
    equity = np.asarray(equity, dtype=np.float64)
    frame = pd.DataFrame(
        {
            "equity": equity,
            "cash": np.asarray(cash, dtype=np.float64),
            "gross_exposure": np.asarray(gross_exposure, dtype=np.float64),
            "pnl": equity - initial_capital,
            "drawdown": drawdown_curve(np.concatenate(([initial_capital], equity)))[1:],
        },
        index=utc_stamps(ts).rename("ts"),
    )
    return frame


def drawdown_curve(curve: np.ndarray) -> np.ndarray:
    """Fraction below the running peak at each point (0 at a new high; 1 - equity / peak)."""
    if len(curve) == 0:
        return np.zeros(1)
    peak = np.maximum.accumulate(curve)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(peak > 0, 1.0 - curve / peak, 0.0)
    return out


def period_returns(
    equity: np.ndarray, ts: np.ndarray, initial_capital: float, periods_per_year: int, bars_per_day: float
) -> tuple[np.ndarray, str, float]:
    """(returns, "daily" | "bar", periods per year of those returns): daily returns when there are
    at least MIN_DAILY_RETURNS of them, else bar returns."""
    if len(equity) == 0:
        return np.zeros(0), "daily", float(periods_per_year)
    day = ts // DAY_NS
    last_of_day = np.flatnonzero(np.append(day[1:] != day[:-1], True))
    if len(last_of_day) >= MIN_DAILY_RETURNS:
        closes = np.concatenate(([initial_capital], equity[last_of_day]))
        basis, annual = "daily", float(periods_per_year)
    else:
        closes = np.concatenate(([initial_capital], equity))
        basis, annual = "bar", float(periods_per_year) * float(bars_per_day)
    with np.errstate(divide="ignore", invalid="ignore"):
        returns = np.diff(closes) / closes[:-1]
    return returns[np.isfinite(returns)], basis, annual


def sharpe_ratio(returns: np.ndarray, periods_per_year: float) -> float:
    """Annualised mean / sample standard deviation, risk-free 0; 0.0 when undefined."""
    if len(returns) < 2:
        return 0.0
    std = float(np.std(returns, ddof=1))
    if not std > 1e-15:
        return 0.0
    return float(np.mean(returns)) / std * math.sqrt(periods_per_year)


def sortino_ratio(returns: np.ndarray, periods_per_year: float) -> float:
    """Annualised mean / downside deviation (target 0, over all periods); 0.0 when undefined."""
    if len(returns) < 2:
        return 0.0
    downside = math.sqrt(float(np.mean(np.minimum(returns, 0.0) ** 2)))
    if not downside > 1e-15:
        return 0.0
    return float(np.mean(returns)) / downside * math.sqrt(periods_per_year)


def historical_var(returns: np.ndarray, level: float) -> tuple[float, float]:
    """(VaR, CVaR) at ``level`` in percent, positive = loss: minus the k-th worst return and minus
    the mean of the k worst, k = ceil(n x (1 - level)) and at least 1; (0, 0) without returns."""
    if len(returns) == 0:
        return 0.0, 0.0
    k = max(1, math.ceil(len(returns) * (1.0 - level) - 1e-9))
    worst = np.sort(returns)[:k]
    return -100.0 * float(worst[-1]), -100.0 * float(worst.mean())


def profit_factor(pnl: np.ndarray) -> float:
    """Gross profit / |gross loss| over closed trades: 0.0 without profit, inf with no loss."""
    profit = float(pnl[pnl > 0].sum())
    loss = -float(pnl[pnl < 0].sum())
    if profit <= 0.0:
        return 0.0
    return profit / loss if loss > 0.0 else math.inf


def sample_curve(curve: np.ndarray, points: int) -> list[float]:
    """``points`` values evenly spaced along ``curve`` (its first and last included), as floats."""
    if len(curve) <= points:
        return [float(v) for v in curve]
    index = np.linspace(0, len(curve) - 1, points).round().astype(np.int64)
    return [float(v) for v in curve[index]]


def estimate_bars_per_day(ts: np.ndarray, periods_per_year: int, interval_ns: int | None = None) -> float:
    """Bars in a trading day: 86,400 s / the bar interval for a market open every day (365 periods),
    else the most bars seen in one UTC day (a session). ``interval_ns`` None: ``bar_interval_ns(ts)``."""
    ts = np.asarray(ts, dtype=np.int64)
    if len(ts) < 2:
        return 1.0
    if periods_per_year >= CONTINUOUS_PERIODS:
        interval = bar_interval_ns(ts) if interval_ns is None else int(interval_ns)
        return DAY_NS / interval if interval > 0 else 1.0
    return float(np.unique(ts // DAY_NS, return_counts=True)[1].max())


def annualisation_of(
    ts: np.ndarray, interval_ns: int, *, configured: int | None = None, calendar: str | None = None
) -> tuple[int, float | None]:
    """(periods per year, bars per trading day or None) for :func:`compute_metrics`.

    With a ``calendar`` (``24/7``, ``XNYS``, ``CMES``...; :func:`stress_pipeline.market.calendars.annualisation`):
    365 days x 86,400 s / interval for ``24/7``, 252 sessions x the bars of a regular session for an
    exchange; ``configured`` (``SimConfig.periods_per_year``) still overrides the periods. Without
    one: :func:`periods_per_year` of the bars, and None (bars per day estimated from them).
    """
    if calendar is None:
        return periods_per_year(ts, configured), None
    periods, per_day = annualisation(calendar, int(interval_ns), np.asarray(ts, dtype=np.int64))
    return (int(configured) if configured is not None else periods), per_day


def periods_per_year(ts: np.ndarray, configured: int | None = None) -> int:
    """``configured`` when set, else :func:`infer_periods_per_year` of the bar timestamps."""
    return int(configured) if configured is not None else infer_periods_per_year(ts)


def infer_periods_per_year(ts: np.ndarray) -> int:
    """365 when a bar falls on a Saturday or Sunday (UTC); 252 when the bars span a weekend day and
    none falls on it; 365 when the span (first to last bar) holds no weekend day to tell."""
    ts = np.asarray(ts, dtype=np.int64)
    if len(ts) == 0:
        return CONTINUOUS_PERIODS
    day = ts // DAY_NS
    if ((day + _EPOCH_WEEKDAY) % 7 >= 5).any():
        return CONTINUOUS_PERIODS
    first, last = int(day.min()), int(day.max())
    spans_weekend = last - first >= 6 or any((d + _EPOCH_WEEKDAY) % 7 >= 5 for d in range(first, last + 1))
    return WEEKDAY_PERIODS if spans_weekend else CONTINUOUS_PERIODS


def _index_ns(index: pd.Index) -> np.ndarray:
    if isinstance(index, pd.DatetimeIndex):
        stamps = index.tz_convert("UTC") if index.tz is not None else index
        return stamps.as_unit("ns").asi8
    return pd.DatetimeIndex(pd.to_datetime(index, utc=True)).as_unit("ns").asi8


def _exposure(equity: pd.DataFrame, values: np.ndarray) -> float:
    if "gross_exposure" not in equity.columns or len(values) == 0:
        return 0.0
    gross = equity["gross_exposure"].to_numpy(dtype=np.float64)
    live = values > 0
    return float(np.mean(gross[live] / values[live])) if live.any() else 0.0


def _turnover(fills: pd.DataFrame, values: np.ndarray) -> float:
    if fills is None or len(fills) == 0 or len(values) == 0:
        return 0.0
    traded = float(np.abs(fills["qty"].to_numpy(dtype=np.float64) * fills["price"].to_numpy(dtype=np.float64)).sum())
    mean_equity = float(values.mean())
    return traded / mean_equity if mean_equity > 0 else 0.0


def _column_sum(fills: pd.DataFrame, columns: Iterable[str]) -> float:
    if fills is None or len(fills) == 0:
        return 0.0
    return float(sum(np.nansum(fills[c].to_numpy(dtype=np.float64)) for c in columns if c in fills.columns))
