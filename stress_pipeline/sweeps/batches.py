"""Sweep points in batches: one step of a distributed sweep runs a batch, so that the fixed cost of a step
(a Celery task re-imports nothing on a warm worker but still opens the instance, plans the step and writes
its events: about 0.7 s) is shared by many points.

Points that run the same system (strategy, its parameters, policy, policy knobs) go in the same batch as
far as the batch size allows, because a batch runs each system's baseline once.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

#: Points per step unless the run says otherwise (a point takes about 0.1-0.3 s on one core).
DEFAULT_POINTS_PER_STEP = 25
#: The columns of the sweep points table that say which system a point runs.
SYSTEM_COLUMNS = ("strategy", "strategy_params", "policy", "policy_overrides")


def plan_batches(points: pd.DataFrame, keys: Sequence[str], points_per_step: int) -> list[list[str]]:
    """``keys`` (each a ``key`` of the ``points`` table) split into batches of at most ``points_per_step``,
    the points of one system next to each other; every key in exactly one batch, none dropped."""
    if isinstance(points_per_step, bool) or not isinstance(points_per_step, int) or points_per_step < 1:
        raise ValueError(f"points_per_step={points_per_step!r}: expected a whole number >= 1")
    if len(set(keys)) != len(keys):
        raise ValueError("plan_batches: a key is listed twice")
    table = points.set_index("key")
    unknown = [key for key in keys if key not in table.index]
    if unknown:
        raise ValueError(f"plan_batches: no sweep point {', '.join(unknown[:10])}")
    systems = table.loc[list(keys), list(SYSTEM_COLUMNS)].astype(str).agg("|".join, axis=1)
    order = pd.Series(range(len(keys)), index=systems.index)
    # Stable: by system (first seen first), then in the order given.
    first_seen = {system: i for i, system in reversed(list(enumerate(systems)))}
    ranked = sorted(order.index, key=lambda key: (first_seen[systems[key]], order[key]))
    return [ranked[i : i + points_per_step] for i in range(0, len(ranked), points_per_step)]
