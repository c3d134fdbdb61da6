"""Robustness figures of one run: trade resampling, parameter sensitivity, results per market regime.

- :func:`resample_trades`: Monte Carlo over the run's closed trades (bootstrap with replacement, or a
  shuffle of their order), seeded, with 5/50/95% bands of total return, max drawdown and Sharpe. A
  trade's return is its PnL over the closed-trade equity before it (capital plus the PnL of the trades
  closed earlier, in order of exit), so the record's trades compound back to its closed-trade return.
  Sharpe is the per-trade mean over its sample standard deviation, annualised by the trades per year
  of the run (its trades over its span); max drawdown is a fraction of the running peak of the
  resampled closed-trade equity, starting at the capital. Every path is computed at once on a
  (samples x trades) array.
- :func:`sensitivity_points` and :func:`parameter_sensitivity`: each numeric strategy parameter moved
  by +-5/10/20% (integers rounded), the others held, each point evaluated by a callable the caller
  gives (a backtest, a paper run); a point the strategy refuses is a row with its error, not a gap.
- :func:`market_regimes` and :func:`regime_table`: each bar labelled by the market's rolling
  volatility tercile and by its trend (rolling return over rolling volatility), and the run's bar
  returns and trades grouped by those labels. Warm-up bars are labelled ``warmup``, not dropped.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

QUANTILES = (0.05, 0.50, 0.95)
SENSITIVITY_STEPS = (0.05, 0.10, 0.20)
BAND_COLUMNS = ("p5", "p50", "p95")
ROBUST_METRICS = ("total_return", "max_drawdown", "sharpe")
SECONDS_PER_YEAR = 365.0 * 86_400.0


# -------------------------------------------------------------------------------- trade resampling


@dataclass(frozen=True)
class ResampleBands:
    """``table``: one row per metric (total_return, max_drawdown, sharpe) with the record's value
    (``actual``) and the p5 / p50 / p95 of the resampled paths."""

    method: str
    samples: int
    seed: int
    trades: int
    table: pd.DataFrame

    def band(self, metric: str) -> tuple[float, float, float]:
        row = self.table.loc[metric]
        return float(row["p5"]), float(row["p50"]), float(row["p95"])


def trade_returns(trades: pd.DataFrame, initial_capital: float) -> np.ndarray:
    """Each closed trade's PnL over the closed-trade equity before it, in order of exit."""
    if len(trades) == 0:
        return np.zeros(0)
    ordered = trades.sort_values("exit_ts", kind="stable")
    pnl = ordered["pnl"].to_numpy(dtype=np.float64)
    before = float(initial_capital) + np.concatenate(([0.0], np.cumsum(pnl)[:-1]))
    if not np.all(before > 0):
        bad = int(np.flatnonzero(before <= 0)[0])
        raise ValueError(f"trade {bad} (by exit): the closed-trade equity before it is {before[bad]:.2f}, not positive")
    return pnl / before


def resample_trades(
    returns: np.ndarray, *, samples: int = 1_000, seed: int = 0, method: str = "bootstrap",
    trades_per_year: float | None = None,
) -> ResampleBands:  # fmt: skip
    """Bands of ``samples`` resampled paths of the trade ``returns`` (see the module docstring).

    ``method``: ``bootstrap`` draws each path's trades with replacement; ``shuffle`` permutes their
    order (the total return stays, the drawdown moves). ``trades_per_year``: Sharpe's annualisation
    (None: per trade)."""
    returns = np.asarray(returns, dtype=np.float64)
    if method not in ("bootstrap", "shuffle"):
        raise ValueError(f"method: expected bootstrap or shuffle, got {method!r}")
    if samples < 1:
        raise ValueError(f"samples: expected at least 1, got {samples}")
    if not np.all(np.isfinite(returns)) or np.any(returns <= -1):
        raise ValueError("returns: every trade return must be finite and above -100%")
    rng = np.random.default_rng(seed)
    n = len(returns)
    if n == 0:
        paths = np.zeros((samples, 0))
    elif method == "bootstrap":
        paths = returns[rng.integers(0, n, size=(samples, n))]
    else:
        paths = rng.permuted(np.broadcast_to(returns, (samples, n)), axis=1)
    annual = 1.0 if trades_per_year is None else math.sqrt(trades_per_year)
    figures = path_figures(paths, annual)
    actual = path_figures(returns[None, :], annual)
    bands = np.quantile(figures, QUANTILES, axis=1).T  # (metrics, quantiles)
    table = pd.DataFrame(bands, index=list(ROBUST_METRICS), columns=list(BAND_COLUMNS))
    table.insert(0, "actual", actual[:, 0])
    table.index.name = "metric"
    return ResampleBands(method=method, samples=samples, seed=seed, trades=n, table=table)


def path_figures(paths: np.ndarray, annual: float) -> np.ndarray:
    """(3, samples): total return, max drawdown (fraction) and Sharpe of each row of trade returns."""
    samples, n = paths.shape
    if n == 0:
        return np.zeros((3, samples))
    growth = np.cumprod(1.0 + paths, axis=1)
    peak = np.maximum(np.maximum.accumulate(growth, axis=1), 1.0)  # the capital is the first peak
    drawdown = (1.0 - growth / peak).max(axis=1)
    if n < 2:
        sharpe = np.zeros(samples)
    else:
        std = paths.std(axis=1, ddof=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            sharpe = np.where(std > 1e-15, paths.mean(axis=1) / std * annual, 0.0)
    return np.vstack([growth[:, -1] - 1.0, drawdown, sharpe])


def run_bands(result, *, samples: int = 1_000, seed: int = 0, method: str = "bootstrap") -> ResampleBands:
    """:func:`resample_trades` of a ``SimResult``'s closed trades, Sharpe annualised by its trades per year."""
    equity = result.equity
    capital = float(equity["equity"].iloc[0]) if len(equity) else 0.0
    returns = trade_returns(result.trades, capital)
    span = (equity.index[-1] - equity.index[0]).total_seconds() if len(equity) > 1 else 0.0
    per_year = len(returns) / (span / SECONDS_PER_YEAR) if span > 0 and len(returns) else None
    return resample_trades(returns, samples=samples, seed=seed, method=method, trades_per_year=per_year)


# ----------------------------------------------------------------------------- parameter sensitivity


@dataclass(frozen=True)
class SensitivityPoint:
    parameter: str
    step: float  # signed: -0.2 .. +0.2
    value: float | int
    params: dict[str, object]


def strategy_defaults(strategy_class: type) -> dict[str, object]:
    """The default of every parameter of a reference strategy (a dataclass)."""
    return {f.name: f.default for f in dataclasses.fields(strategy_class) if f.default is not dataclasses.MISSING}


def sensitivity_points(
    params: Mapping[str, object], steps: tuple[float, ...] = SENSITIVITY_STEPS
) -> list[SensitivityPoint]:
    """Every numeric parameter (int or float, not bool) at -steps and +steps of its value, the others held;
    integers are rounded (at least 1 when the value is positive). Ordered by parameter, then step."""
    out = []
    for name in sorted(params):
        base = params[name]
        if isinstance(base, bool) or not isinstance(base, int | float):
            continue
        for step in sorted({-s for s in steps} | set(steps)):
            value: float | int = base * (1.0 + step)
            if isinstance(base, int):
                value = max(1, round(value)) if base > 0 else round(value)
            out.append(SensitivityPoint(name, step, value, {**params, name: value}))
    return out


def parameter_sensitivity(
    params: Mapping[str, object], evaluate: Callable[[dict[str, object]], Mapping[str, float]],
    steps: tuple[float, ...] = SENSITIVITY_STEPS,
) -> pd.DataFrame:  # fmt: skip
    """One row for the base (step 0) and one per sensitivity point: the metrics ``evaluate`` returns for
    those parameters, each metric's change from the base (``<metric>_change``), and ``error`` (the message
    of a ``ValueError`` the evaluation raised, when the strategy refuses the point; its metrics are NaN)."""
    base = dict(evaluate(dict(params)))
    rows = [{"parameter": "(base)", "step": 0.0, "value": np.nan, **base, "error": ""}]
    for point in sensitivity_points(params, steps):
        try:
            metrics, error = dict(evaluate(point.params)), ""
        except ValueError as err:
            metrics, error = {name: np.nan for name in base}, str(err)
        rows.append({"parameter": point.parameter, "step": point.step, "value": point.value, **metrics, "error": error})
    table = pd.DataFrame(rows)
    for name, value in base.items():
        table[f"{name}_change"] = table[name] - value
    return table


# --------------------------------------------------------------------------------------- regimes

VOLATILITY_LABELS = ("low_vol", "mid_vol", "high_vol")
TREND_LABELS = ("trend_down", "range", "trend_up")
WARMUP = "warmup"


def market_regimes(bars: pd.DataFrame, *, window: int = 1_440, trend_z: float = 1.0) -> pd.DataFrame:
    """Per bar time: ``volatility`` (tercile of the rolling standard deviation of the market's log
    return over ``window`` bars) and ``trend`` (``trend_up`` / ``trend_down`` when the rolling return
    is more than ``trend_z`` rolling standard deviations of a ``window``-bar return, else ``range``).
    The market's return is the mean over the symbols' log returns of their closes at each time."""
    if window < 2:
        raise ValueError(f"window: expected at least 2 bars, got {window}")
    close = bars.pivot_table(index="ts", columns="symbol", values="close", aggfunc="last", observed=True).sort_index()
    log_close = np.log(close.to_numpy(dtype=np.float64))
    with warnings.catch_warnings():  # a time where no symbol has two closes yet: NaN, the warm-up
        warnings.simplefilter("ignore", RuntimeWarning)
        market = np.nanmean(np.diff(log_close, axis=0, prepend=np.nan), axis=1)
    series = pd.Series(market, index=close.index)
    vol = series.rolling(window, min_periods=window).std(ddof=1).to_numpy()
    move = series.rolling(window, min_periods=window).sum().to_numpy()
    ready = np.isfinite(vol)
    volatility = np.full(len(series), WARMUP, dtype=object)
    trend = np.full(len(series), WARMUP, dtype=object)
    if ready.any():
        edges = np.quantile(vol[ready], [1 / 3, 2 / 3])
        volatility[ready] = np.asarray(VOLATILITY_LABELS, dtype=object)[np.searchsorted(edges, vol[ready], "right")]
        with np.errstate(divide="ignore", invalid="ignore"):
            z = np.where(vol[ready] > 0, move[ready] / (vol[ready] * math.sqrt(window)), 0.0)
        trend[ready] = np.asarray(TREND_LABELS, dtype=object)[(z >= -trend_z).astype(int) + (z > trend_z)]
    return pd.DataFrame({"volatility": volatility, "trend": trend}, index=close.index)


def regime_table(result, regimes: pd.DataFrame, *, periods_per_year: float) -> pd.DataFrame:
    """The run per regime: one row per (kind, regime) with its share of bars, the compounded return of
    the run's bar returns in it, their annualised Sharpe (``periods_per_year`` bars a year), the worst
    bar drawdown seen in it, and the closed trades entered in it (count, PnL, win rate)."""
    equity = result.equity
    values = equity["equity"].to_numpy(dtype=np.float64)
    previous = np.concatenate((values[:1], values[:-1]))
    with np.errstate(divide="ignore", invalid="ignore"):
        bar_returns = values / previous - 1.0  # the first bar's is 0
    position = _positions(regimes.index, equity.index, "equity")
    entries = _positions(regimes.index, pd.DatetimeIndex(result.trades["entry_ts"]), "trades")
    pnl = result.trades["pnl"].to_numpy(dtype=np.float64)
    drawdown = equity["drawdown"].to_numpy(dtype=np.float64) if "drawdown" in equity else np.zeros(len(values))
    rows = []
    for kind in ("volatility", "trend"):
        labels = regimes[kind].to_numpy()
        bar_label = labels[position]
        trade_label = labels[entries]
        order = (*(VOLATILITY_LABELS if kind == "volatility" else TREND_LABELS), WARMUP)
        for regime in order:
            in_bars = bar_label == regime
            r = bar_returns[in_bars]
            in_trades = trade_label == regime
            std = float(np.std(r, ddof=1)) if len(r) > 1 else 0.0
            rows.append({
                "kind": kind, "regime": regime, "bars": int(in_bars.sum()),
                "share": float(in_bars.mean()) if len(in_bars) else 0.0,
                "return": float(np.prod(1.0 + r) - 1.0),
                "sharpe": float(np.mean(r) / std * math.sqrt(periods_per_year)) if std > 1e-15 else 0.0,
                "max_drawdown": float(drawdown[in_bars].max()) if in_bars.any() else 0.0,
                "trades": int(in_trades.sum()), "pnl": float(pnl[in_trades].sum()),
                "winrate": float((pnl[in_trades] > 0).mean()) if in_trades.any() else np.nan,
            })  # fmt: skip
    return pd.DataFrame(rows)


def _positions(index: pd.Index, times: pd.Index, what: str) -> np.ndarray:
    """The row of ``index`` at or before each of ``times`` (the bar a time falls in)."""
    where = index.searchsorted(times, side="right") - 1
    if len(where) and where.min() < 0:
        first = times[int(np.argmin(where))]
        raise ValueError(f"{what}: time {first} is before the first bar of the regimes ({index[0]})")
    return where
