"""`stress-pipeline bench state`: ledger ingest, Redis updates and reconciliation, against their targets.

Runs against the servers the given settings resolve to: the embedded PostgreSQL and Redis by default,
or STRESS_POSTGRES_URL / STRESS_REDIS_URL (the CLI reads them, this module takes ``Settings``).
Targets: ledger >= 100,000 fills/s batched (the path new fills take; the fallback for replayed
batches is printed too, without a target), Redis >= 50,000 updates/s pipelined, reconciliation of
1,000,000 fills in <= 5 s. Every figure is printed with its target and whether it is met.

The reconciliation bench reconciles exchange fills against a ledger view holding other, equal
``Fill`` objects (as :meth:`Ledger.fills` returns them, read back from the database), so nothing is
shared between the two replays.
"""

from __future__ import annotations

import time
from decimal import Decimal

from stress_pipeline.bench.state_ledger import (
    LEDGER_TARGET_FILLS_PER_S,
    bench_fills,
    ledger_target_met,
    run_state_ledger_bench,
)
from stress_pipeline.bench.state_redis import TARGET_UPDATES_PER_S, run_redis_bench, target_met
from stress_pipeline.bench.timing import Measurement
from stress_pipeline.services import redis_client, resolve_service_urls
from stress_pipeline.settings import Settings
from stress_pipeline.state.reconcile import HotView, LedgerView, reconcile, replay

RECONCILE_TARGET_S = 5.0
RECONCILE_FILLS = 1_000_000


def run_state_bench(settings: Settings, *, repeat: int = 1) -> dict[str, list[Measurement]]:
    urls = resolve_service_urls(settings)
    client = redis_client(urls.redis_url)
    try:
        redis_measurement = run_redis_bench(client, repeat=max(repeat, 1))
    finally:
        client.close()
    ledger = run_state_ledger_bench(settings, repeat=repeat)
    return {
        "ledger": [ledger["direct"]],
        "ledger_staged": [ledger["staged"]],
        "redis": [redis_measurement],
        "reconcile": [run_reconcile_bench(repeat=repeat)],
    }


def run_reconcile_bench(fills: int = RECONCILE_FILLS, *, repeat: int = 1) -> Measurement:
    """Reconcile ``fills`` fills three ways (exchange, ledger view, Redis view all agreeing)."""
    exchange = bench_fills(fills, "bench-reconcile")
    stored = bench_fills(fills, "bench-reconcile")  # equal fills, other objects: as read back from the ledger
    cash0 = Decimal("100000")
    positions, cash = replay(stored, cash0)
    ledger, hot = LedgerView(stored, positions, cash), HotView(dict(positions), cash)
    times = []
    for _ in range(max(repeat, 1)):
        started = time.perf_counter()
        report = reconcile(exchange, ledger, hot, initial_cash=cash0)
        times.append(time.perf_counter() - started)
        if not report.passed:
            raise RuntimeError("reconciliation bench: identical views did not reconcile")
    times.sort()
    return Measurement(f"reconcile {fills:,} fills", times[0], times[len(times) // 2], len(times), fills, "fills")


def reconcile_target_met(measurement: Measurement) -> bool:
    return measurement.seconds <= RECONCILE_TARGET_S


def format_state_bench(results: dict[str, list[Measurement]]) -> str:
    """One table: each figure (best of the repeats), its median, throughput, target and verdict."""
    rows = []
    for m in results["ledger"]:
        rows.append((m, f">= {LEDGER_TARGET_FILLS_PER_S:,} fills/s", ledger_target_met(m)))
    for m in results.get("ledger_staged", []):
        rows.append((m, "none: replays only", None))
    for m in results["redis"]:
        rows.append((m, f">= {TARGET_UPDATES_PER_S:,} updates/s", target_met(m)))
    for m in results["reconcile"]:
        rows.append((m, f"<= {RECONCILE_TARGET_S:g} s", reconcile_target_met(m)))
    lines = [f"{'benchmark':<56} {'best':>9} {'median':>9} {'throughput':>20} {'target':>20} {'met':>4}"]
    for m, target, met in rows:
        rate, verdict = f"{m.items_per_second or 0.0:,.0f} {m.unit}/s", {True: "yes", False: "NO", None: "-"}[met]
        lines.append(f"{m.name:<56} {m.seconds:>8.2f}s {m.median_seconds:>8.2f}s {rate:>20} {target:>20} {verdict:>4}")
    return "\n".join(lines)


def state_targets_met(results: dict[str, list[Measurement]]) -> bool:
    return (
        all(ledger_target_met(m) for m in results["ledger"])
        and all(target_met(m) for m in results["redis"])
        and all(reconcile_target_met(m) for m in results["reconcile"])
    )
