"""What a simulation returns, backtest and paper alike, so that the two can be compared field by field."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

# Every field of the result record users know (seed 000), in its order; metrics add more keys.
RESULT_FIELDS = (
    "scenario_name", "success", "duration_sec", "total_pnl", "total_pnl_pct", "max_drawdown", "sharpe_ratio",
    "profit_factor", "winrate", "total_trades", "winning_trades", "losing_trades", "emergency_stops",
    "execution_failures", "failed_models", "failed_strategies", "equity_curve_sample", "notes",
)  # fmt: skip


@dataclass(frozen=True)
class SimResult:
    """One simulation run.

    - ``trades``: closed round trips, one row each: symbol, entry_ts, exit_ts, side (+1 long, -1 short),
      qty, entry_price, exit_price, pnl (after fees), fees.
    - ``fills``: every execution: ts, symbol, order_id, fill_id, qty (signed), price, fee, and for the
      paper run spread_cost, impact_cost, liquidity ("maker" | "taker").
    - ``equity``: indexed by bar ts: equity, cash, gross_exposure, drawdown (fraction below the peak).
    - ``events``: the paper run's ordered event log (ARCHITECTURE.md columns); None for the backtest.
    - ``metrics``: the result record (every key of RESULT_FIELDS) plus the extra metrics.
    """

    kind: str  # "backtest" | "paper"
    scenario_name: str
    trades: pd.DataFrame
    fills: pd.DataFrame
    equity: pd.DataFrame
    metrics: dict[str, object]
    events: pd.DataFrame | None = None
    details: dict[str, object] = field(default_factory=dict)

    def record(self) -> dict[str, object]:
        """The seed result record: the RESULT_FIELDS keys in order, then the other metrics."""
        ordered = {key: self.metrics.get(key) for key in RESULT_FIELDS}
        ordered.update({k: v for k, v in self.metrics.items() if k not in ordered})
        return ordered
