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
from typing import ClassVar

import numpy as np

from stress_pipeline.trading.strategies.base import PanelStrategy, price_array
from stress_pipeline.trading.strategies.kernels import donchian_weights
from stress_pipeline.trading.strategies.windows import at_interval, check_window_specs


@dataclass(frozen=True)
class BreakoutStrategy(PanelStrategy):
    """Donchian channel breakout with a shorter exit channel."""

    entry_window: int | str | None = None  # the entry channel: bars or trading time; None: 1d, or 20d on daily bars
    exit_window: int | str | None = None  # the exit channel; None: 0.5d (720 bars of 1-minute crypto), or 10d
    long_only: bool = False  # True: ignore the short entries

    name = "breakout"
    windows = ("entry_window", "exit_window")
    intraday_windows: ClassVar[dict[str, str]] = {"entry_window": "1d", "exit_window": "0.5d"}
    daily_windows: ClassVar[dict[str, str]] = {"entry_window": "20d", "exit_window": "10d"}  # the turtles' 20 / 10 days

    def __post_init__(self) -> None:
        check_window_specs(self)
        ints = isinstance(self.entry_window, int) and isinstance(self.exit_window, int)
        if ints and (self.entry_window < 1 or self.exit_window < 1):
            raise ValueError(f"breakout: windows must be >= 1, got {self.entry_window}, {self.exit_window}")

    def target_weights(self, panel) -> np.ndarray:
        s = at_interval(self, panel, check_warmup=False)
        high, low, close = (price_array(a) for a in (panel.high, panel.low, panel.close))
        return donchian_weights(high, low, close, int(s.entry_window), int(s.exit_window), bool(s.long_only))
