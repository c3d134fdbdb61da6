"""The live book the lite stress shocks: a run's positions and cash, read from its Redis hot state.

One read (``HotState.snapshot``: one MULTI/EXEC, so positions and cash are mutually consistent), then
the positions of the symbol set in the set's order. Nothing is guessed: a symbol of the set the book
does not hold (a flat position is stored as 0, so an absent one was never traded or belongs to another
book) and a non-zero position outside the set (its risk would go unmeasured) are errors naming them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import redis

from stress_pipeline.lite.evaluate import LiteInputError
from stress_pipeline.state.hot_state import DEFAULT_NAMESPACE, HotState


@dataclass(frozen=True)
class LiveBook:
    run_id: str
    namespace: str
    symbols: tuple[str, ...]
    qty: np.ndarray  # signed, aligned with ``symbols``
    cash: float
    kill_switch: bool


def read_book(
    client: redis.Redis, run_id: str, symbols: Sequence[str], *, namespace: str = DEFAULT_NAMESPACE,
    symbol_set: str = "",
) -> LiveBook:  # fmt: skip
    """The book of run ``run_id`` over ``symbols`` (the set ``symbol_set``, named in errors)."""
    hot = HotState(client, run_id, namespace=namespace)
    snapshot = hot.snapshot()
    positions = snapshot.positions
    label = f"symbol set {symbol_set!r}" if symbol_set else "the symbol set"
    missing = [s for s in symbols if s not in positions]
    if missing:
        raise LiteInputError(f"{label}: {', '.join(missing)} not in the book of run {hot.keys.prefix} (hash "
                             f"{hot.keys.positions} holds {', '.join(sorted(positions)) or 'nothing'})")  # fmt: skip
    wanted = set(symbols)
    outside = sorted(s for s, q in positions.items() if q != 0 and s not in wanted)
    if outside:
        raise LiteInputError(f"{label}: the book of run {hot.keys.prefix} holds {', '.join(outside)} outside the set, "
                             "whose risk would go unmeasured: add them to the set")  # fmt: skip
    qty = np.array([float(positions[s]) for s in symbols], dtype=np.float64)
    return LiveBook(run_id, namespace, tuple(symbols), qty, float(snapshot.cash), snapshot.kill_switch)
