"""Trading: the strategies under test and their lookahead guard; the risk stack (``risk/``) and the
exchange simulator (``exchange/``) are subpackages.

``get_strategy(spec, **params)`` is the one way to name a strategy: "trend", "mean_reversion",
"breakout" (the reference strategies, parameters as their dataclass fields) or
"package.module:callable" (a user strategy, see ``strategies/external.py``).
"""

from __future__ import annotations

import dataclasses

from stress_pipeline.trading.lookahead import LookaheadReport, LookaheadViolation, check_lookahead
from stress_pipeline.trading.strategies import (
    REFERENCE_STRATEGIES,
    BreakoutStrategy,
    MeanReversionStrategy,
    Strategy,
    StrategySpecError,
    TrendStrategy,
    as_strategy,
    load_external,
)
from stress_pipeline.trading.strategies.base import WeightError
from stress_pipeline.trading.strategies.windows import StrategyWindowError, at_interval

__all__ = [
    "REFERENCE_STRATEGIES",
    "BreakoutStrategy",
    "LookaheadReport",
    "LookaheadViolation",
    "MeanReversionStrategy",
    "Strategy",
    "StrategySpecError",
    "StrategyWindowError",
    "TrendStrategy",
    "WeightError",
    "as_strategy",
    "at_interval",
    "check_lookahead",
    "get_strategy",
]


def get_strategy(spec: str, **params: object) -> Strategy:
    """The strategy named by ``spec``, built with ``params``.

    Unknown names list the known ones; unknown parameters list the accepted ones; an import path
    that fails names the module or the attribute.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise StrategySpecError(f"strategy must be a non-empty string, got {spec!r}")
    spec = spec.strip()
    if ":" in spec:
        return load_external(spec, params)
    cls = REFERENCE_STRATEGIES.get(spec)
    if cls is None:
        known = ", ".join(sorted(REFERENCE_STRATEGIES))
        raise StrategySpecError(f"unknown strategy {spec!r}: known are {known}, or 'package.module:callable'")
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(params) - fields)
    if unknown:
        raise StrategySpecError(
            f"strategy {spec!r} has no parameter(s) {', '.join(unknown)}; it takes {', '.join(sorted(fields))}"
        )
    return cls(**params)
