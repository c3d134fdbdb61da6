"""User strategies by import path ("package.module:callable"), wrapped into the strategy interface.

What the callable may be, checked in this order:

* a class: instantiated with the params; the instance must have ``target_positions``;
* an object that already has ``target_positions`` (no params accepted);
* a function with no required argument: a factory, called with the params; it must return an
  object with ``target_positions`` or a function ``bars -> DataFrame``;
* a function with a required argument: the strategy itself, ``fn(bars, **params) -> DataFrame``.

Objects without ``target_weights`` get it through :class:`FunctionStrategy`, which hands the
strategy the cleaned panel as long bars (``panel_to_bars``) and aligns its answer to the panel, so
a user strategy is simulated on exactly the data the reference ones see.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np
import pandas as pd

from stress_pipeline.trading.import_path import call_with_params, import_object, required_arguments
from stress_pipeline.trading.strategies.base import conform_weights, panel_to_bars, validate_weights


class StrategySpecError(ValueError):
    """A strategy name or import path that does not resolve, or parameters it does not take."""


def load_external(spec: str, params: dict[str, object]) -> object:
    """Import ``package.module:callable`` and turn it into an object with both strategy methods."""
    target = import_object(spec, kind="strategy", error=StrategySpecError)
    return as_strategy(target, name=spec, **params)


def as_strategy(obj: object, *, name: str | None = None, **params: object) -> object:
    """Any accepted form of strategy (see the module docstring) as an object with ``name``,
    ``target_positions`` and ``target_weights``."""
    label = name or getattr(obj, "name", None) or getattr(obj, "__name__", type(obj).__name__)
    if inspect.isclass(obj):
        return as_strategy(_call(obj, params, label), name=label)
    if hasattr(obj, "target_positions"):
        if params:
            raise StrategySpecError(f"strategy {label!r} is an instance: it takes no parameters ({', '.join(params)})")
        if hasattr(obj, "target_weights") and hasattr(obj, "name"):
            return obj
        return FunctionStrategy(obj.target_positions, str(label), getattr(obj, "target_weights", None))
    if not callable(obj):
        raise StrategySpecError(f"strategy {label!r} is neither callable nor has target_positions")
    if required_arguments(obj) == 0:
        return as_strategy(_call(obj, params, label), name=label)
    fn = partial(obj, **params) if params else obj
    return FunctionStrategy(fn, str(label))


@dataclass(frozen=True)
class FunctionStrategy:
    """A ``bars -> DataFrame`` function (or an object's bound ``target_positions``) with the array
    fast path added."""

    positions: Callable[[pd.DataFrame], pd.DataFrame]
    name: str
    weights: Callable[[object], np.ndarray] | None = None

    def target_positions(self, bars: pd.DataFrame) -> pd.DataFrame:
        return validate_weights(self.positions(bars))

    def target_weights(self, panel) -> np.ndarray:
        if self.weights is not None:
            return np.asarray(self.weights(panel), dtype=np.float64)
        return conform_weights(self.positions(panel_to_bars(panel)), panel, self.name)


def _call(factory: Callable[..., object], params: dict[str, object], label: str) -> object:
    return call_with_params(factory, params, label, kind="strategy", error=StrategySpecError)
