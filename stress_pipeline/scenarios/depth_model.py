"""The parameters of ``depth_collapse``, the order-book depth stress (kept apart from ``model.py``,
which holds the other types, to keep both files short).

A depth collapse multiplies the resting size of the book on ``side`` by ``1 - drop_pct`` for
``duration_bars`` bars, then recovers linearly over ``recovery_bars`` (``book/stress.py``). Spread and
depth move together: the bars' spread is multiplied by ``factor ** -spread_elasticity`` on the same
path (0.5: the square-root law, as ``liquidity_drop`` does for volume). Prices and volume are not
touched: in a flash crash the traded volume rises while the resting depth thins.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from stress_pipeline.scenarios.lengths import Bars0To100k, Bars1To100k


class DepthCollapseParams(BaseModel):
    """Resting depth x (1 - ``drop_pct``) on ``side`` for ``duration_bars``, then back over ``recovery_bars``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    drop_pct: float = Field(gt=0, lt=1)
    side: Literal["both", "bid", "ask"] = "both"
    duration_bars: Bars1To100k = 5  # bars, or a time (15min, 1h: scenarios/lengths.py)
    recovery_bars: Bars0To100k = 15
    spread_elasticity: float = Field(default=0.5, ge=0, le=2)
