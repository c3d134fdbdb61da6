"""Redis hot-state benchmark: pipelined, exact fill updates per second (target 50,000/s).

The writer applies fills in batches while the paper simulation trades, so the figure that matters is
sustained throughput of :meth:`HotState.apply_fills` on whole batches, Python-side conversion to
minor units included. Each timed call starts the run afresh (one round trip) and applies every fill;
the result is checked, so a fast but wrong run cannot pass.
"""

from __future__ import annotations

import uuid
from decimal import Decimal

import redis

from stress_pipeline.bench.timing import Measurement, measure
from stress_pipeline.state.hot_state import HotState
from stress_pipeline.state.records import Fill, fill_from_values

TARGET_UPDATES_PER_S = 50_000
INITIAL_CASH = Decimal("1000000000.00000000")


def bench_fills(run_id: str, updates: int, *, symbols: int = 20) -> list[Fill]:
    """``updates`` fills over ``symbols`` symbols with varied, exactly quantised sizes and prices."""
    return [_bench_fill(run_id, i, symbols) for i in range(updates)]


def _bench_fill(run_id: str, i: int, symbols: int) -> Fill:
    return fill_from_values(
        run_id, fill_id=i, event_id=i, ts_ns=1_700_000_000_000_000_000 + i * 1_000_000, symbol=f"S{i % symbols:03d}",
        order_id=i // 3, qty_value=((i % 7) - 3.0) * 0.0137 or 0.00000001,
        price_value=100.0 + (i % 101) * 0.01234567, fee_value=0.00012345 * (1 + i % 5),
    )  # fmt: skip


def run_redis_bench(
    client: redis.Redis, *, updates: int = 100_000, batch: int = 5_000, chunk_size: int = 1_000,
    symbols: int = 20, repeat: int = 3, namespace: str = "stress-bench",
) -> Measurement:  # fmt: skip
    """Apply ``updates`` fills in ``apply_fills`` calls of ``batch`` fills (each one pipeline of script
    calls of ``chunk_size`` fills); best and median of ``repeat`` runs. The run's keys are removed after."""
    run_id = f"bench-{uuid.uuid4().hex[:12]}"
    state = HotState(client, run_id, namespace=namespace, chunk_size=chunk_size)
    fills = bench_fills(run_id, updates, symbols=symbols)
    expected_cash = INITIAL_CASH + sum(fill.cash_delta for fill in fills)
    batches = [fills[i : i + batch] for i in range(0, len(fills), batch)]

    def apply_all() -> None:
        state.init(INITIAL_CASH)
        applied = sum(state.apply_fills(chunk) for chunk in batches)
        if applied != updates:
            raise AssertionError(f"applied {applied} of {updates} fills")

    try:
        measurement = measure(
            f"redis apply_fills: {updates:,} fills, batch {batch:,}", apply_all, repeat=repeat, items=updates,
            unit="updates",
        )  # fmt: skip
        snapshot = state.snapshot()
        if snapshot.cash != expected_cash or snapshot.last_event_id != updates - 1:
            raise AssertionError(f"bench state is wrong: cash {snapshot.cash} != {expected_cash}")
    finally:
        state.clear()
    return measurement


def target_met(measurement: Measurement) -> bool:
    return (measurement.items_per_second or 0.0) >= TARGET_UPDATES_PER_S
