"""`stress-pipeline bench state`: ledger ingest, Redis updates and reconciliation, against their targets.

Runs against the servers the settings resolve to: the embedded PostgreSQL and Redis by default, or
STRESS_POSTGRES_URL / STRESS_REDIS_URL. Targets: ledger >= 100,000 fills/s batched, Redis >= 50,000
updates/s pipelined, reconciliation of 1,000,000 fills in <= 5 s.
"""

from __future__ import annotations

import time
from decimal import Decimal

from stress_pipeline.bench.state_ledger import (
    bench_fills,
    format_ledger_bench,
    ledger_target_met,
    run_state_ledger_bench,
)
from stress_pipeline.bench.state_redis import format_redis_bench, run_redis_bench, target_met
from stress_pipeline.bench.timing import Measurement
from stress_pipeline.services import redis_client, resolve_service_urls
from stress_pipeline.settings import Settings
from stress_pipeline.state.reconcile import HotView, LedgerView, reconcile, replay

RECONCILE_TARGET_S = 5.0


def run_state_bench(settings: Settings | None = None, *, repeat: int = 1) -> dict[str, list[Measurement]]:
    urls = resolve_service_urls(settings)
    client = redis_client(urls.redis_url)
    try:
        redis_measurement = run_redis_bench(client, repeat=max(repeat, 1))
    finally:
        client.close()
    return {
        "ledger": run_state_ledger_bench(settings, repeat=repeat),
        "redis": [redis_measurement],
        "reconcile": [run_reconcile_bench(repeat=repeat)],
    }


def run_reconcile_bench(fills: int = 1_000_000, *, repeat: int = 1) -> Measurement:
    """Reconcile ``fills`` fills three ways (exchange, ledger view, Redis view all agreeing)."""
    data = bench_fills(fills, "bench-reconcile")
    cash0 = Decimal("100000")
    positions, cash = replay(data, cash0)
    ledger, hot = LedgerView(data, positions, cash), HotView(positions, cash)
    times = []
    for _ in range(max(repeat, 1)):
        started = time.perf_counter()
        report = reconcile(data, ledger, hot, initial_cash=cash0)
        times.append(time.perf_counter() - started)
        if not report.passed:
            raise RuntimeError("reconciliation bench: identical views did not reconcile")
    times.sort()
    return Measurement(f"reconcile {fills:,} fills", times[0], times[len(times) // 2], len(times), fills, "fills")


def format_state_bench(results: dict[str, list[Measurement]]) -> str:
    reconcile_m = results["reconcile"][0]
    verdict = "met" if reconcile_m.seconds <= RECONCILE_TARGET_S else "MISSED"
    return "\n\n".join(
        [
            format_ledger_bench(results["ledger"]),
            format_redis_bench(results["redis"][0]),
            f"{reconcile_m.name}\n  best {reconcile_m.seconds:.2f} s (target <= {RECONCILE_TARGET_S:.0f} s: {verdict})",
        ]
    )


def state_targets_met(results: dict[str, list[Measurement]]) -> bool:
    return (
        any(ledger_target_met(m) for m in results["ledger"])
        and target_met(results["redis"][0])
        and results["reconcile"][0].seconds <= RECONCILE_TARGET_S
    )
