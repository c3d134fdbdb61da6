"""The strategy interface both simulations call, and the glue between its two forms.

A strategy answers one question: at the close of each bar, what fraction of its allocation should
each symbol hold? Two forms of the same answer:

* ``target_positions(bars) -> DataFrame``: canonical long bars in, wide target weights out (index
  the bar ``ts``, sorted, UTC; one column per symbol; values in [-1, 1]). This is the form users
  write.
* ``target_weights(panel) -> ndarray (T, S)``: the same on a cleaned :class:`MarketPanel`, the
  array fast path both simulations call, so the backtest and the paper run see the same signals,
  and the form the lookahead guard checks (:func:`checked_target_weights`).

A weight that is NaN, infinite or outside [-1, 1] is a :class:`WeightError` naming its bar and
symbol: the simulations never zero or clip what a strategy said.

Both are causal: the weight at bar t uses bars up to and including t. The simulations act on it
from the close of t (backtest) or later (paper), so a weight is never applied to the bar it was
computed from. The reference strategies implement ``target_weights`` and inherit
``target_positions`` as a thin wrapper: clean the bars as the simulations do, compute, label.

``MarketPanel`` (``market/panel.py``) is the cleaned time x symbol view both simulations share.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
import pandas as pd

from stress_pipeline.market.panel import MarketPanel, prepare_panel


@runtime_checkable
class Strategy(Protocol):
    """What the simulations need from a strategy."""

    name: str

    def target_positions(self, bars: pd.DataFrame) -> pd.DataFrame: ...

    def target_weights(self, panel: MarketPanel) -> np.ndarray: ...


class PanelStrategy:
    """Base of the reference strategies: subclasses implement :meth:`target_weights` only."""

    name = "panel"
    windows: tuple[str, ...] = ()  # fields that are windows: bars or trading time (strategies/windows.py)

    def target_weights(self, panel: MarketPanel) -> np.ndarray:
        raise NotImplementedError

    def target_positions(self, bars: pd.DataFrame) -> pd.DataFrame:
        """Clean ``bars`` as the simulations do (``prepare_panel``), compute, and label the weights."""
        panel, _ = prepare_panel(bars)
        return weights_frame(panel, self.target_weights(panel))


def weights_frame(panel: MarketPanel, weights: np.ndarray) -> pd.DataFrame:
    """A (T, S) weight array as the wide frame of ``target_positions``."""
    frame = pd.DataFrame(weights, index=panel.timestamps(), columns=list(panel.symbols))
    frame.index.name = "ts"
    frame.columns.name = "symbol"
    return frame


def price_array(values: np.ndarray) -> np.ndarray:
    """A panel array as the compiled kernels take it: 2-D, float64, C-contiguous (no copy if it is)."""
    values = np.ascontiguousarray(values, dtype=np.float64)
    return values.reshape(values.shape[0], -1)


def panel_to_bars(panel: MarketPanel) -> pd.DataFrame:
    """The cleaned panel back as long canonical bars (sorted by symbol, then ts), for strategies
    written against ``target_positions`` only. ``tradable`` is kept as an extra column."""
    t, s = panel.shape
    return pd.DataFrame(
        {
            "ts": pd.to_datetime(np.tile(panel.ts, s), unit="ns", utc=True),
            "symbol": np.repeat(np.array(panel.symbols, dtype=object), t).astype(str),
            **{
                name: getattr(panel, name).T.ravel()
                for name in ("open", "high", "low", "close", "volume", "spread_bps", "tradable")
            },
        }
    )


MAX_ABS_WEIGHT = 1.0
"""A target weight is a fraction of the strategy's allocation: within [-1, 1]."""


class WeightError(ValueError):
    """A strategy returned a weight the simulations cannot use: NaN, infinite or outside [-1, 1]."""


def check_weights(values: np.ndarray, times: pd.Index, symbols: list[str] | tuple[str, ...], strategy: str) -> None:
    """Raise a :class:`WeightError` naming the bar (timestamp) and symbol of the first weight that is
    not a finite number in [-1, 1] (in time order). Nothing is zeroed or clipped: a strategy that
    means "no position" says 0."""
    values = np.asarray(values, dtype=np.float64)
    bad = ~(np.abs(values) <= MAX_ABS_WEIGHT)  # NaN compares False: caught with the infinite and the large
    if not bad.any():
        return
    i, j = np.unravel_index(int(np.argmax(bad.ravel())), bad.shape)
    count = int(bad.sum())
    raise WeightError(
        f"strategy {strategy!r}: weight {float(values[i, j])!r} for {symbols[j]} at bar {times[i]} is not a "
        f"number in [-{MAX_ABS_WEIGHT:g}, {MAX_ABS_WEIGHT:g}] ({count} such weight(s) in all)"
    )


def checked_target_weights(strategy, panel: MarketPanel) -> np.ndarray:
    """``strategy.target_weights(panel)`` as the simulations use it: float64, C-contiguous, of the
    panel's shape, every value a finite number in [-1, 1] (else a :class:`WeightError`)."""
    name = str(getattr(strategy, "name", strategy))
    weights = np.ascontiguousarray(strategy.target_weights(panel), dtype=np.float64)
    if weights.shape != panel.shape:
        raise WeightError(f"strategy {name!r} returned weights of shape {weights.shape}, expected {panel.shape}")
    check_weights(weights, panel.timestamps(), panel.symbols, name)
    return weights


def conform_weights(frame: pd.DataFrame, panel: MarketPanel, strategy: str = "strategy") -> np.ndarray:
    """A user strategy's wide weight frame aligned to ``panel``: its ts and symbols, a weight held
    until the strategy changes it (forward fill); bars before its first row and symbols it did not
    mention hold 0 (no position). A value it gave that is NaN, infinite or outside [-1, 1] is a
    :class:`WeightError` naming its bar and symbol, never zeroed or clipped."""
    frame = validate_weights(frame)
    check_weights(frame.to_numpy(dtype=np.float64, na_value=np.nan), frame.index, list(frame.columns), strategy)
    index = panel.timestamps()
    if not frame.index.equals(index):
        # Rows emitted between bars (or a coarser grid) are carried to the following bars.
        frame = frame.reindex(frame.index.union(index)).ffill().reindex(index)
    aligned = frame.reindex(columns=list(panel.symbols))
    # Every value the strategy gave is checked above: a NaN left here is an absence (before its first
    # row, or a symbol it did not mention), which means no position.
    return np.nan_to_num(aligned.to_numpy(dtype=np.float64, na_value=np.nan), nan=0.0)


def validate_weights(frame: object) -> pd.DataFrame:
    """Check the shape of a ``target_positions`` result: a DataFrame with a datetime index (made
    UTC and sorted here), columns = symbols, numeric values."""
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"target_positions must return a pandas DataFrame, got {type(frame).__name__}")
    index = frame.index
    if not isinstance(index, pd.DatetimeIndex):
        try:
            index = pd.DatetimeIndex(pd.to_datetime(index, utc=True))
        except (TypeError, ValueError):
            raise TypeError("target_positions must return a frame indexed by bar timestamps") from None
    index = index.tz_localize("UTC") if index.tz is None else index.tz_convert("UTC")
    out = frame.set_axis(index, axis=0)
    out.columns = [str(c) for c in out.columns]
    if not out.index.is_monotonic_increasing:
        out = out.sort_index(kind="stable")
    if out.index.has_duplicates:
        out = out[~out.index.duplicated(keep="last")]
    return out.apply(pd.to_numeric, errors="coerce").astype(np.float64)
