"""The flash-crash lite on a live book: one shock path, the book's liquidation equity along it, three figures.

The shock is the ``flash_crash_lite`` scenario type's (``FlashCrashLiteParams``): every symbol of the set
jumps to ``P * (1 + price_shock_pct)`` at the hit and fades back over ``duration_sec``, linearly or
exponentially, by the transform's own decay rule (``path_shapes.shock_decay``); spreads are
``spread_mult`` times their last value until the shock has faded. The path is taken at
:data:`STEP_S`-second steps (at most :data:`MAX_STEPS` of them), the hit and the end included.

The book is marked at its liquidation value, the price minus half the spread for a long position and
plus half for a short one: ``E(t) = cash + sum q_i P_i(t) - sum |q_i| P_i(t) h_i(t)`` with ``h_i`` half the
spread as a fraction. ``E0`` is that value before the shock, at the normal spread. The figures, judged
against the pack's ``expect`` with ``<=``:

* ``drawdown_pct``: ``(E0 - min_t E(t)) / E0``, the worst fall of the book's value during the shock;
* ``var_multiplier``: the shock's worst loss ``E0 - min_t E(t)`` over the book's normal 99% value at
  risk for ``var_horizon_s`` (default one hour: the time between two hourly runs). The normal VaR is
  historical: the 1% quantile of the book's one-bar P&L ``returns @ (q * P)`` over the reference window
  of bars (``LiteMarket.returns``), scaled by ``sqrt(var_horizon_s / bar_s)``;
* ``position_delta``: the largest change of the book's gross exposure during the shock,
  ``max_t sum |q_i (P_i(t) - P_i)| / E0``, which for a uniform shock is ``|shock| * gross / E0``.

A book with no position takes no risk: nothing is exercised (``exercised`` False), its figures are 0
and its VaR multiple NaN; it breaches nothing, and the asset's check says so rather than passing it.
A book whose value before the shock is not positive cannot be measured as a fraction of it: an error.
Everything is numpy over the set's symbols at once; 100 symbols take well under a millisecond.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import pandas as pd

from stress_pipeline.market.intervals import bar_interval_ns
from stress_pipeline.scenarios.model import FlashCrashLiteParams
from stress_pipeline.scenarios.transforms.path_shapes import shock_decay

#: The path's step and its most steps (a shock longer than 600 s is taken at coarser steps).
STEP_S = 1.0
MAX_STEPS = 600
#: The normal VaR's horizon: the time between two hourly runs.
DEFAULT_VAR_HORIZON_S = 3_600.0
#: Bars of the reference window the normal VaR is taken over: one day of one-minute bars.
DEFAULT_LOOKBACK_BARS = 1_440
VAR_QUANTILE = 0.01
#: The thresholds the lite run judges, the pack's ``expect`` keys.
THRESHOLD_KEYS = ("max_drawdown_pct", "max_var_multiplier", "max_position_delta")
FIGURES = {"max_drawdown_pct": "drawdown_pct", "max_var_multiplier": "var_multiplier",
           "max_position_delta": "position_delta"}  # fmt: skip


class LiteInputError(ValueError):
    """An input of the lite run is missing or malformed; the message names which and where."""


@dataclass(frozen=True)
class LiteThresholds:
    """The breach limits (the pack's ``expect``): a figure above its limit is a breach."""

    max_drawdown_pct: float
    max_var_multiplier: float
    max_position_delta: float

    def __post_init__(self) -> None:
        for key in THRESHOLD_KEYS:
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
                raise LiteInputError(f"threshold {key}: expected a finite number >= 0, got {value!r}")
        if self.max_drawdown_pct > 1:
            raise LiteInputError(f"threshold max_drawdown_pct: expected a fraction <= 1 (0.05 = 5%), "
                                 f"got {self.max_drawdown_pct!r}")  # fmt: skip

    @classmethod
    def from_expect(cls, expect: Mapping[str, object], where: str) -> LiteThresholds:
        """The thresholds of a scenario's ``expect``; ``where`` (pack file and scenario) names it in errors."""
        missing = [key for key in THRESHOLD_KEYS if key not in expect]
        if missing:
            raise LiteInputError(f"{where}: expect lacks {', '.join(missing)} (the lite run judges "
                                 f"{', '.join(THRESHOLD_KEYS)})")  # fmt: skip
        try:
            return cls(**{key: expect[key] for key in THRESHOLD_KEYS})
        except LiteInputError as err:
            raise LiteInputError(f"{where}: {err}") from None

    def as_dict(self) -> dict[str, float]:
        return {key: float(getattr(self, key)) for key in THRESHOLD_KEYS}


@dataclass(frozen=True)
class LiteMarket:
    """Per symbol: the last price and spread, and the reference window of one-bar returns (bars x symbols).
    ``multiplier``: the contract multiplier (value of one point per contract: 5 for MES; None: 1 each), so a
    futures book's exposure is quantity x price x multiplier."""

    symbols: tuple[str, ...]
    price: np.ndarray
    spread_bps: np.ndarray
    returns: np.ndarray
    bar_s: float
    as_of: pd.Timestamp | None = None
    multiplier: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.symbols)
        if self.multiplier is None:
            object.__setattr__(self, "multiplier", np.ones(n))
        multiplier = np.asarray(self.multiplier, dtype=np.float64)
        if multiplier.shape != (n,) or not (np.isfinite(multiplier) & (multiplier > 0)).all():
            raise LiteInputError(f"market: contract multipliers must be {n} finite numbers > 0, got {multiplier!r}")
        object.__setattr__(self, "multiplier", multiplier)
        if self.price.shape != (n,) or self.spread_bps.shape != (n,) or self.returns.ndim != 2 or \
                self.returns.shape[1] != n:  # fmt: skip
            raise LiteInputError(f"market: shapes do not match {n} symbols (price {self.price.shape}, spread "
                                 f"{self.spread_bps.shape}, returns {self.returns.shape})")  # fmt: skip
        for name, values, ok in (("price", self.price, self.price > 0), ("spread_bps", self.spread_bps,
                                 self.spread_bps >= 0)):  # fmt: skip
            bad = np.flatnonzero(~(np.isfinite(values) & ok))
            if bad.size:
                raise LiteInputError(f"market: {name} of {self.symbols[bad[0]]} is {float(values[bad[0]])!r} "
                                     f"(expected a finite number {'> 0' if name == 'price' else '>= 0'})")  # fmt: skip
        if len(self.returns) < 2 or not np.isfinite(self.returns).all():
            raise LiteInputError(f"market: the reference returns need at least 2 finite rows, got {len(self.returns)}")
        if not self.bar_s > 0:
            raise LiteInputError(f"market: bar_s must be > 0, got {self.bar_s!r}")

    def aligned(self, symbols: Sequence[str]) -> LiteMarket:
        """The market of ``symbols``, in that order; a symbol without prices is an error naming it."""
        if tuple(symbols) == self.symbols:
            return self
        index = {s: i for i, s in enumerate(self.symbols)}
        missing = [s for s in symbols if s not in index]
        if missing:
            raise LiteInputError(f"no prices for {', '.join(missing)} (the market reference has "
                                 f"{', '.join(self.symbols) or 'none'})")  # fmt: skip
        at = np.array([index[s] for s in symbols], dtype=np.int64)
        return LiteMarket(tuple(symbols), self.price[at], self.spread_bps[at], self.returns[:, at], self.bar_s,
                          self.as_of, self.multiplier[at])  # fmt: skip


@dataclass(frozen=True)
class LiteResult:
    """The figures of one lite run, the limits they were judged by, and what breached."""

    symbol_set: str
    scenario: str
    symbols: tuple[str, ...]
    exposure: np.ndarray  # q * P per symbol before the shock
    loss: np.ndarray  # each symbol's share of the loss at the book's worst moment
    equity_before: float
    equity_worst: float
    worst_after_s: float
    gross_exposure: float
    normal_var: float
    drawdown_pct: float
    var_multiplier: float
    position_delta: float
    thresholds: LiteThresholds
    exercised: bool
    evaluated_at: datetime | None = None
    source: dict[str, object] = field(default_factory=dict)  # run_id, namespace, market as-of

    @property
    def figures(self) -> dict[str, float]:
        return {"drawdown_pct": self.drawdown_pct, "var_multiplier": self.var_multiplier,
                "position_delta": self.position_delta}  # fmt: skip

    @property
    def breaches(self) -> tuple[str, ...]:
        """The thresholds breached (a NaN figure breaches nothing: it is not exercised)."""
        return tuple(key for key in THRESHOLD_KEYS if getattr(self, FIGURES[key]) > getattr(self.thresholds, key))

    @property
    def breached(self) -> bool:
        return bool(self.breaches)

    def table(self) -> pd.DataFrame:
        """One row per threshold: the figure, its value, the limit and whether it breached."""
        breaches = self.breaches
        return pd.DataFrame({
            "criterion": list(THRESHOLD_KEYS),
            "figure": [FIGURES[k] for k in THRESHOLD_KEYS],
            "value": [getattr(self, FIGURES[k]) for k in THRESHOLD_KEYS],
            "threshold": [getattr(self.thresholds, k) for k in THRESHOLD_KEYS],
            "breached": [k in breaches for k in THRESHOLD_KEYS],
        })  # fmt: skip

    def top_losses(self, n: int = 5) -> list[dict[str, float | str]]:
        """The ``n`` symbols that lose most at the book's worst moment, largest first."""
        order = np.argsort(-self.loss, kind="stable")[:n]
        return [{"symbol": self.symbols[i], "loss": float(self.loss[i]), "exposure": float(self.exposure[i])}
                for i in order if self.loss[i] > 0]  # fmt: skip

    def summary(self) -> dict[str, object]:
        """Everything a log line, the alert, the ledger and the asset's metadata need, as plain values."""
        return {
            "symbol_set": self.symbol_set, "scenario": self.scenario, "symbols": len(self.symbols),
            **self.source, "equity_before": self.equity_before, "equity_worst": self.equity_worst,
            "worst_after_s": self.worst_after_s, "gross_exposure": self.gross_exposure, "normal_var": self.normal_var,
            **self.figures, "thresholds": self.thresholds.as_dict(), "breaches": list(self.breaches),
            "exercised": self.exercised, "top_losses": self.top_losses(),
        }  # fmt: skip


def evaluate(
    qty: np.ndarray, cash: float, market: LiteMarket, shock: FlashCrashLiteParams, thresholds: LiteThresholds, *,
    symbol_set: str = "", scenario: str = "", var_horizon_s: float = DEFAULT_VAR_HORIZON_S,
) -> LiteResult:  # fmt: skip
    """The figures of the shock on the book (``qty`` aligned with ``market.symbols``, ``cash``); see the module."""
    qty = np.asarray(qty, dtype=np.float64)
    if qty.shape != market.price.shape or not np.isfinite(qty).all() or not math.isfinite(cash):
        raise LiteInputError(f"book: {qty.shape[0] if qty.ndim else 0} finite quantities and a finite cash are "
                             f"needed for {len(market.symbols)} symbols")  # fmt: skip
    if not var_horizon_s > 0:
        raise LiteInputError(f"var_horizon_s must be > 0, got {var_horizon_s!r}")
    duration_ns = round(shock.duration_sec * 1e9)
    steps = min(math.ceil(shock.duration_sec / STEP_S), MAX_STEPS)
    t_ns = np.linspace(0.0, duration_ns, steps + 1)
    decay = shock_decay(t_ns, duration_ns, shock.recovery_type)
    factor = 1.0 + shock.price_shock_pct * decay  # (T,)
    spread_mult = np.where(t_ns < duration_ns, shock.spread_mult, 1.0)  # (T,)

    exposure = qty * market.price * market.multiplier
    half_spread = market.spread_bps * 0.5e-4
    gross = np.abs(exposure)
    equity_before = float(cash + exposure.sum() - (gross * half_spread).sum())
    if not equity_before > 0:
        raise LiteInputError(f"book: its value before the shock is {equity_before:.2f} (cash {cash:.2f}, positions "
                             f"{exposure.sum():.2f} at their liquidation price): not positive, so no figure can be "
                             "a fraction of it")  # fmt: skip
    # Each symbol's value along the path: (T, S); the book's is their sum plus cash.
    values = factor[:, None] * (exposure - gross * half_spread * spread_mult[:, None])
    path = cash + values.sum(axis=1)
    worst = int(np.argmin(path))
    loss_money = max(0.0, equity_before - float(path[worst]))
    exercised = bool((gross > 0).any())
    pnl = market.returns @ exposure
    normal_var = max(0.0, -float(np.quantile(pnl, VAR_QUANTILE))) * math.sqrt(var_horizon_s / market.bar_s)
    var_multiplier = loss_money / normal_var if normal_var > 0 else math.nan  # no normal risk: not measurable
    return LiteResult(
        symbol_set=symbol_set, scenario=scenario, symbols=market.symbols, exposure=exposure,
        loss=(exposure - gross * half_spread) - values[worst], equity_before=equity_before,
        equity_worst=float(path[worst]), worst_after_s=float(t_ns[worst] / 1e9), gross_exposure=float(gross.sum()),
        normal_var=normal_var, drawdown_pct=float(loss_money / equity_before), var_multiplier=var_multiplier,
        position_delta=float(abs(shock.price_shock_pct) * decay.max() * gross.sum() / equity_before),
        thresholds=thresholds, exercised=exercised,
    )  # fmt: skip


def market_reference(
    bars: pd.DataFrame, symbols: Sequence[str], *, lookback_bars: int = DEFAULT_LOOKBACK_BARS,
    multipliers: Sequence[float] | None = None,
) -> LiteMarket:
    """The market of ``symbols`` from canonical bars: the last close and spread, and the one-bar returns of
    the last ``lookback_bars`` bars all symbols share (a bar one symbol lacks is left out for all);
    ``multipliers``: each symbol's contract multiplier (None: 1)."""
    if lookback_bars < 2:
        raise LiteInputError(f"lookback_bars must be >= 2, got {lookback_bars}")
    symbols = tuple(symbols)
    frame = bars[bars["symbol"].astype(str).isin(symbols)]
    present = set(frame["symbol"].astype(str).unique())
    missing = [s for s in symbols if s not in present]
    if missing:
        raise LiteInputError(f"no prices for {', '.join(missing)}: no market bars for them")
    close = frame.pivot(index="ts", columns="symbol", values="close").reindex(columns=list(symbols)).dropna()
    if len(close) < lookback_bars + 1:
        raise LiteInputError(f"the market bars of {', '.join(symbols)} share {len(close)} timestamps; the reference "
                             f"window needs {lookback_bars + 1} (lookback_bars + 1)")  # fmt: skip
    close = close.iloc[-(lookback_bars + 1):]
    spread = frame.pivot(index="ts", columns="symbol", values="spread_bps").reindex(columns=list(symbols))
    values = close.to_numpy(dtype=np.float64)
    ts = close.index.to_numpy(dtype="datetime64[ns]").view(np.int64)
    return LiteMarket(
        symbols=symbols, price=values[-1].copy(), spread_bps=spread.loc[close.index[-1]].to_numpy(dtype=np.float64),
        returns=values[1:] / values[:-1] - 1.0, bar_s=bar_interval_ns(ts) / 1e9, as_of=close.index[-1],
        multiplier=None if multipliers is None else np.asarray(multipliers, dtype=np.float64),
    )  # fmt: skip
