"""Mean reversion: fade a close that strays far from its rolling mean, until it comes back.

The z-score is the close minus its rolling mean over ``window`` bars, divided by the rolling
standard deviation (sample, ddof=1). Beyond ``entry_z`` the strategy takes the other side (short
when stretched up, long when stretched down); it exits once the z-score is back inside
``exit_z``; in between it holds. A jump from one extreme straight to the other is a reversal. A
flat window (zero deviation, e.g. a halted market) gives no signal.

Defaults: a one-day window, entry beyond 3.0, exit inside 0.5. Rolling z-scores of minute closes
are far from normal (the close is a random walk, not noise around a mean), so a 2-sigma entry
fires many times a day; these give 48 to 54 closed round trips per symbol on the shipped 90 days.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from stress_pipeline.trading.strategies.base import PanelStrategy, price_array
from stress_pipeline.trading.strategies.kernels import zscore_weights
from stress_pipeline.trading.strategies.windows import at_interval, check_window_specs


@dataclass(frozen=True)
class MeanReversionStrategy(PanelStrategy):
    """Z-score fade with an exit band."""

    window: int | str | None = None  # rolling mean and deviation: bars or trading time; None: 1d, or 20d on daily bars
    entry_z: float = 3.0  # enter against the move beyond this |z|
    exit_z: float = 0.5  # exit once |z| is back inside this
    long_only: bool = False  # True: only buy the dips

    name = "mean_reversion"
    windows = ("window",)
    intraday_windows: ClassVar[dict[str, str]] = {"window": "1d"}
    daily_windows: ClassVar[dict[str, str]] = {"window": "20d"}

    def __post_init__(self) -> None:
        check_window_specs(self)
        if isinstance(self.window, int) and self.window < 2:
            raise ValueError(f"mean_reversion: window must be >= 2, got {self.window}")
        if not 0 <= self.exit_z < self.entry_z:
            raise ValueError(f"mean_reversion: need 0 <= exit_z < entry_z, got {self.exit_z}, {self.entry_z}")

    def target_weights(self, panel) -> np.ndarray:
        s = at_interval(self, panel, check_warmup=False)
        close = price_array(panel.close)
        return zscore_weights(close, int(s.window), float(s.entry_z), float(s.exit_z), bool(s.long_only))
