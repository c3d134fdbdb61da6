"""What a simulation did inside a stress window, measured over the arrays of its ``SimResult``.

:func:`window_figures` reads the equity curve (equity, gross exposure, drawdown from the running
peak), the fills and the event log of one run and returns plain numbers, each named in
:data:`FIGURES`. Everything is computed over whole columns (searchsorted windows, cumulative sums,
accumulated maxima); nothing loops over bars.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pandas as pd

from stress_pipeline.verdicts.window import StressWindow, ns_of

#: Figures of one run in one window, with what each means.
FIGURES: dict[str, str] = {
    "equity_at_shock": "equity at the last bar before the window (USDT)",
    "exposure_at_shock": "gross exposure at the last bar before the window (USDT)",
    "exposure_at_shock_pct": "exposure_at_shock / equity_at_shock",
    "stress_drawdown_pct": "worst fall of equity in the window below its running peak, the peak starting at "
    "equity_at_shock",
    "account_drawdown_pct": "worst drawdown of the account (from its running peak since the run began) in the window",
    "run_drawdown_pct": "worst drawdown of the account over the whole run",
    "run_drawdown_in_window": "1 if the run's worst drawdown falls in the window, else 0",
    "pnl": "equity at the end of the window minus equity_at_shock (USDT)",
    "loss_pct": "max(0, -pnl) / equity_at_shock",
    "recovery_s": "seconds from the window's trough until equity is back at equity_at_shock (NaN: not within the "
    "window)",
    "min_exposure_after_shock": "smallest gross exposure from the end of the shock to the end of the window (USDT)",
    "ess_trips": "emergency stop trips (ESS to TRIPPED) in the window",
    "circuit_breaker_halts": "circuit-breaker halts (ESS to HALTED) in the window",
    "unhalted_drawdown_pct": "worst account drawdown in the window while the ESS was ARMED (trading allowed)",
    "orders_blocked": "orders the risk stack blocked or cut in the window",
    "stop_losses": "stop-losses triggered in the window",
    "execution_failures": "orders that failed for good (retries exhausted) in the window",
    "stuck_positions": "symbols with a failed execution in the window still holding a position at its end",
    "fills": "executions in the window",
    "gross_limit_breaches": "episodes of gross exposure above the guard's limit (x equity) over the run",
    "position_limit_breaches": "fills leaving a symbol's position notional above the guard's limit over the run",
    "hard_limit_breaches": "gross_limit_breaches + position_limit_breaches",
    "var99_pct": "99% value at risk of one bar's equity return in the window",
}
#: Figures whose stress impact (this run minus the baseline over the same window) is reported.
IMPACT_FIGURES = (
    "stress_drawdown_pct", "pnl", "loss_pct", "ess_trips", "circuit_breaker_halts", "orders_blocked", "stop_losses",
    "execution_failures", "stuck_positions", "fills",
)  # fmt: skip
_TOLERANCE = 1e-9


@dataclass(frozen=True)
class Limits:
    """The hard limits a breach is counted against (the guard of the trading policy)."""

    max_gross_exposure: float  # x equity
    max_position_notional: float  # USDT per symbol

    @classmethod
    def of(cls, policy) -> Limits:
        guard = policy.risk.guard
        return cls(float(guard.max_gross_exposure), float(guard.max_position_notional))


def window_figures(result, window: StressWindow, limits: Limits) -> dict[str, float]:
    """Every figure of :data:`FIGURES` for ``result`` (a ``SimResult``) in ``window``."""
    equity_frame = result.equity
    ts = ns_of(equity_frame.index)
    equity = equity_frame["equity"].to_numpy(dtype=np.float64)
    exposure = equity_frame["gross_exposure"].to_numpy(dtype=np.float64)
    drawdown = equity_frame["drawdown"].to_numpy(dtype=np.float64)
    lo = int(np.searchsorted(ts, window.start_ns, side="left"))
    hi = max(int(np.searchsorted(ts, window.end_ns, side="left")), lo + 1)
    hi = min(hi, len(ts))
    lo = min(lo, hi - 1)
    pre = max(lo - 1, 0)
    base_equity, base_exposure = float(equity[pre]), float(exposure[pre])
    eq = equity[lo:hi]
    peak = np.maximum.accumulate(np.maximum(eq, base_equity))
    stress_dd = float(np.max(1.0 - eq / peak)) if len(eq) else 0.0
    pnl = float(eq[-1] - base_equity)
    run_worst = int(np.argmax(drawdown)) if len(drawdown) else 0
    out: dict[str, float] = {
        "equity_at_shock": base_equity,
        "exposure_at_shock": base_exposure,
        "exposure_at_shock_pct": base_exposure / base_equity if base_equity > 0 else np.nan,
        "stress_drawdown_pct": stress_dd,
        "account_drawdown_pct": float(drawdown[lo:hi].max()),
        "run_drawdown_pct": float(drawdown[run_worst]) if len(drawdown) else 0.0,
        "run_drawdown_in_window": float(lo <= run_worst < hi),
        "pnl": pnl,
        "loss_pct": max(0.0, -pnl) / base_equity if base_equity > 0 else np.nan,
        "recovery_s": _recovery_s(ts[lo:hi], eq, base_equity),
        "min_exposure_after_shock": _min_after(ts, exposure, window.shock_end_ns, lo, hi),
        "var99_pct": _var99(eq, base_equity),
    }
    out.update(_event_figures(result, window, ts[lo:hi], drawdown[lo:hi]))
    out.update(_breaches(result, ts, equity, exposure, limits))
    return out


def impact(stressed: dict[str, float], baseline: dict[str, float]) -> dict[str, float]:
    """The stress impact: each figure of :data:`IMPACT_FIGURES` minus the baseline's in the same window."""
    return {name: float(stressed[name]) - float(baseline[name]) for name in IMPACT_FIGURES}


def exposure_path(result, window: StressWindow) -> tuple[np.ndarray, np.ndarray]:
    """Bar times and gross exposure / equity at the shock of ``result`` inside ``window``."""
    ts = ns_of(result.equity.index)
    lo = int(np.searchsorted(ts, window.start_ns, side="left"))
    hi = max(int(np.searchsorted(ts, window.end_ns, side="left")), lo + 1)
    exposure = result.equity["gross_exposure"].to_numpy(dtype=np.float64)
    equity = result.equity["equity"].to_numpy(dtype=np.float64)
    base = equity[max(lo - 1, 0)]
    return ts[lo:hi], exposure[lo:hi] / base if base > 0 else np.full(hi - lo, np.nan)


# ------------------------------------------------------------------------------------------ helpers


def _recovery_s(ts: np.ndarray, eq: np.ndarray, level: float) -> float:
    if not len(eq) or eq.min() >= level * (1 - _TOLERANCE):
        return 0.0
    trough = int(np.argmin(eq))
    back = np.flatnonzero(eq[trough:] >= level * (1 - _TOLERANCE))
    return float((ts[trough + back[0]] - ts[trough]) / 1e9) if len(back) else float("nan")


def _min_after(ts: np.ndarray, exposure: np.ndarray, shock_end_ns: int, lo: int, hi: int) -> float:
    after = max(int(np.searchsorted(ts, shock_end_ns, side="left")), lo)
    after = min(after, hi - 1)
    return float(exposure[after:hi].min())


def _var99(eq: np.ndarray, base_equity: float) -> float:
    series = np.concatenate([[base_equity], eq])
    returns = np.diff(series) / series[:-1]
    return float(max(0.0, -np.percentile(returns, 1))) if len(returns) else 0.0


def _event_figures(result, window: StressWindow, ts: np.ndarray, drawdown: np.ndarray) -> dict[str, float]:
    events = result.events
    fills = result.fills
    fill_ns = ns_of(fills["ts"]) if len(fills) else np.zeros(0, dtype=np.int64)
    in_fills = (fill_ns >= window.start_ns) & (fill_ns < window.end_ns)
    out = {"fills": float(in_fills.sum())}
    if events is None or not len(events):
        empty = ("ess_trips", "circuit_breaker_halts", "orders_blocked", "stop_losses", "execution_failures",
                 "stuck_positions")  # fmt: skip
        out.update(dict.fromkeys(empty, 0.0))
        out["unhalted_drawdown_pct"] = float(drawdown.max()) if len(drawdown) else 0.0
        return out
    event_ns = ns_of(events["ts"])
    kind = events["kind"].to_numpy(dtype=object)
    inside = (event_ns >= window.start_ns) & (event_ns < window.end_ns)
    ess = np.flatnonzero(kind == "ess_transition")
    to_state = np.array([json.loads(d).get("to") for d in events["details"].to_numpy()[ess]], dtype=object)
    out["ess_trips"] = float((inside[ess] & (to_state == "TRIPPED")).sum())
    out["circuit_breaker_halts"] = float((inside[ess] & (to_state == "HALTED")).sum())
    out["orders_blocked"] = float((inside & (kind == "risk_block")).sum())
    out["stop_losses"] = float((inside & (kind == "stop_loss")).sum())
    failed = inside & (kind == "execution_failure")
    out["execution_failures"] = float(failed.sum())
    out["stuck_positions"] = float(_stuck(fills, fill_ns, events["symbol"].to_numpy(dtype=object)[failed],
                                          window.end_ns))  # fmt: skip
    out["unhalted_drawdown_pct"] = _unhalted(ts, drawdown, event_ns[ess], to_state)
    return out


def _stuck(fills: pd.DataFrame, fill_ns: np.ndarray, failed_symbols: np.ndarray, end_ns: int) -> int:
    """Symbols with a failed execution that still hold a position at ``end_ns``."""
    if not len(failed_symbols):
        return 0
    upto = fills.loc[fill_ns < end_ns]
    positions = upto.groupby("symbol")["qty"].sum() if len(upto) else pd.Series(dtype=np.float64)
    held = positions[np.abs(positions.to_numpy()) > _TOLERANCE].index
    return len(set(failed_symbols.tolist()) & set(held))


def _unhalted(ts: np.ndarray, drawdown: np.ndarray, transition_ns: np.ndarray, to_state: np.ndarray) -> float:
    """Worst drawdown at the bars where the ESS was ARMED (the state of the last transition at or before)."""
    if not len(ts):
        return 0.0
    if not len(transition_ns):
        return float(drawdown.max())
    order = np.argsort(transition_ns, kind="stable")
    last = np.searchsorted(transition_ns[order], ts, side="right") - 1
    states = np.where(last >= 0, to_state[order][np.maximum(last, 0)], "ARMED")
    armed = states == "ARMED"
    return float(drawdown[armed].max()) if armed.any() else 0.0


def _breaches(result, ts: np.ndarray, equity: np.ndarray, exposure: np.ndarray, limits: Limits) -> dict[str, float]:
    over = exposure > limits.max_gross_exposure * equity * (1 + _TOLERANCE)
    gross = int(np.count_nonzero(over[1:] & ~over[:-1]) + (over[0] if len(over) else 0))
    fills = result.fills
    position = 0
    if len(fills):
        order = np.argsort(ns_of(fills["ts"]), kind="stable")
        frame = fills.iloc[order]
        held = frame.groupby("symbol", sort=False)["qty"].cumsum().to_numpy(dtype=np.float64)
        notional = np.abs(held) * frame["price"].to_numpy(dtype=np.float64)
        position = int(np.count_nonzero(notional > limits.max_position_notional * (1 + _TOLERANCE)))
    return {
        "gross_limit_breaches": float(gross),
        "position_limit_breaches": float(position),
        "hard_limit_breaches": float(gross + position),
    }
