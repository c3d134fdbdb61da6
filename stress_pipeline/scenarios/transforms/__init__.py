"""Vectorised scenario transforms, one module per family, registered by scenario type.

Each transform is ``(scenario, bars: BarArrays, segments: np.ndarray) -> StressResult``: ``bars``
holds the scenario's symbols only, ``segments`` their segment indices in the order of
``scenario.symbols``. Transforms are deterministic for a given seed and loop over symbols at most,
never over bars.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from stress_pipeline.scenarios.arrays import BarArrays
from stress_pipeline.scenarios.result import StressResult

Transform = Callable[[object, BarArrays, np.ndarray], StressResult]

TRANSFORMS: dict[str, Transform] = {}


def register(scenario_type: str) -> Callable[[Transform], Transform]:
    def decorator(fn: Transform) -> Transform:
        TRANSFORMS[scenario_type] = fn
        return fn

    return decorator


def load_all() -> dict[str, Transform]:
    """Import every transform module so that each registers itself."""
    from stress_pipeline.scenarios.transforms import (  # noqa: F401
        corruption,
        depth,
        liquidity,
        monte_carlo,
        price_paths,
        replay,
    )

    return TRANSFORMS
