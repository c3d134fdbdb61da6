"""The policy controller (meta strategy controller): trade smaller after a losing streak, larger
after a winning one.

The rolling win rate is taken over the last ``window`` closed trades (a trade wins when its PnL after
fees is positive), and only once ``min_trades`` have closed; before that the mode is NORMAL.
Below ``defensive_below`` -> DEFENSIVE, above ``aggressive_above`` -> AGGRESSIVE, else NORMAL
(seed 000: 40% and 60%). Each mode scales the size of new targets by its factor (defaults 0.5,
1.0, 1.25): a position is sized in the mode of the moment its weight changes, and a mode change does
not re-size open positions (a win rate hovering at a threshold would otherwise churn the book). The
outcomes are kept in a ring buffer so the compiled engine can carry them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from stress_pipeline.trading.compiled import compiled
from stress_pipeline.trading.risk.policy import PolicyControllerConfig

NORMAL, DEFENSIVE, AGGRESSIVE = 0, 1, 2
MODE_NAMES = ("NORMAL", "DEFENSIVE", "AGGRESSIVE")


@dataclass(frozen=True)
class ModeChange:
    trade_index: int  # after this many closed trades
    from_mode: str
    to_mode: str
    winrate: float


class PolicyController:
    """Replays closed-trade PnLs through the compiled :func:`policy_mode`."""

    def __init__(self, config: PolicyControllerConfig | None = None) -> None:
        self.config = config or PolicyControllerConfig()

    def scale(self, mode: str) -> float:
        cfg = self.config
        return {"NORMAL": cfg.normal_scale, "DEFENSIVE": cfg.defensive_scale, "AGGRESSIVE": cfg.aggressive_scale}[mode]

    def run(self, trade_pnls: Iterable[float]) -> tuple[list[ModeChange], list[str]]:
        """The mode changes and the mode after each closed trade."""
        cfg = self.config
        ring = np.zeros(cfg.window, dtype=np.int64)
        mode = NORMAL
        changes: list[ModeChange] = []
        modes: list[str] = []
        for done, pnl in enumerate(trade_pnls):
            record_trade(ring, done, float(pnl))
            count = done + 1
            new, winrate = policy_mode(ring, count, cfg.min_trades, cfg.defensive_below, cfg.aggressive_above)
            if new != mode:
                changes.append(ModeChange(count, MODE_NAMES[mode], MODE_NAMES[new], float(winrate)))
                mode = new
            modes.append(MODE_NAMES[mode])
        return changes, modes


@compiled
def record_trade(ring: np.ndarray, count: int, pnl: float) -> None:
    """Store the outcome of closed trade number ``count`` (0-based)."""
    ring[count % ring.shape[0]] = 1 if pnl > 0.0 else 0


@compiled
def policy_mode(ring: np.ndarray, count: int, min_trades: int, defensive_below: float,
                aggressive_above: float) -> tuple[int, float]:  # fmt: skip
    """(mode, rolling win rate) after ``count`` closed trades; the rate is NaN before ``min_trades``."""
    if count < min_trades:
        return NORMAL, np.nan
    n = min(count, ring.shape[0])
    wins = 0
    for i in range(n):
        wins += ring[i]
    winrate = wins / n
    if winrate < defensive_below:
        return DEFENSIVE, winrate
    if winrate > aggressive_above:
        return AGGRESSIVE, winrate
    return NORMAL, winrate
