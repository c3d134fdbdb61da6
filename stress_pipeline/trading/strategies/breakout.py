"""Breakout: a Donchian channel system, the turtle traders' rule.

Long on a close above the highest high of the prior ``entry_window`` bars, short on a close below
the lowest low of the prior ``entry_window`` bars. A long exits on a close below the lowest low of
the prior ``exit_window`` bars, a short on a close above the highest high of the prior
``exit_window`` bars (the opposite, shorter channel). An entry against the position is a reversal.
"Prior" excludes the current bar, so a close can break its channel.

Defaults: a one-day entry channel and a 12-hour exit channel, 74 or 75 closed round trips per symbol on
the shipped 90 days of 1-minute bars.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stress_pipeline.trading.strategies.base import PanelStrategy, price_array
from stress_pipeline.trading.strategies.kernels import donchian_weights


@dataclass(frozen=True)
class BreakoutStrategy(PanelStrategy):
    """Donchian channel breakout with a shorter exit channel."""

    entry_window: int = 1_440  # bars in the entry channel (1 day)
    exit_window: int = 720  # bars in the exit channel (12 h)
    long_only: bool = False  # True: ignore the short entries

    name = "breakout"

    def __post_init__(self) -> None:
        if self.entry_window < 1 or self.exit_window < 1:
            raise ValueError(f"breakout: windows must be >= 1, got {self.entry_window}, {self.exit_window}")

    def target_weights(self, panel) -> np.ndarray:
        high, low, close = (price_array(a) for a in (panel.high, panel.low, panel.close))
        return donchian_weights(high, low, close, int(self.entry_window), int(self.exit_window), bool(self.long_only))
