"""Ledger ingest benchmark: fills per second into the PostgreSQL ledger, written in COPY batches.

What is timed is the whole write path of :meth:`Ledger.record_fills`, call after call: each fill's
``cash_delta``, the ``COPY`` text, the ``COPY`` of the fills and of their three entries each, and the
commit, which waits for the write-ahead log to reach the disk. Default: 1,000,000 fills in
10,000-fill batches. The fill objects are built beforehand (the simulator's work, not the ledger's),
and each timed call starts from an emptied ledger, so repeats measure the same thing; an untimed
warm-up of a few batches opens the session first, and the result is checked afterwards (every fill
stored, every fill's entries balanced).

It runs against a real server: the embedded PostgreSQL unless the settings name another
(STRESS_POSTGRES_URL), in a throwaway schema dropped at the end. Target: ``LEDGER_TARGET_FILLS_PER_S``,
best of ``repeat``, for the direct path the ledger takes with new fills (``COPY`` straight into the
tables). The staged path it falls back to on a replayed or overlapping batch (``COPY`` into a staging
table, ``INSERT ... ON CONFLICT DO NOTHING``, entries for the new fills) is measured for reference.
"""

from __future__ import annotations

import random
import time
import uuid
from decimal import Decimal

import sqlalchemy as sa

from stress_pipeline.bench.timing import Measurement
from stress_pipeline.services import postgres_engine, resolve_service_urls
from stress_pipeline.settings import Settings
from stress_pipeline.state.ledger import Ledger
from stress_pipeline.state.records import Fill

LEDGER_TARGET_FILLS_PER_S = 100_000
UNIT = "fills"
WARMUP_BATCHES = 3
SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT", "XRPUSDT")
_PRICE_CENTS = {"BTCUSDT": 6_000_000, "ETHUSDT": 300_000, "SOLUSDT": 15_000, "BNBUSDT": 60_000, "XRPUSDT": 60}


def bench_fills(n: int, run_id: str, *, seed: int = 0) -> list[Fill]:
    """``n`` quantised fills of one run over a few symbols, like a busy paper run's."""
    rng = random.Random(seed)
    fills = []
    for i in range(n):
        symbol = SYMBOLS[i % len(SYMBOLS)]
        qty_units = rng.randint(1, 500_000_000) * (1 if rng.random() < 0.5 else -1)  # up to 5, in 1e-8
        price_units = _PRICE_CENTS[symbol] * 1_000_000 + rng.randint(0, 99_999_999)  # cents -> 1e-8, jittered
        fee_units = rng.randint(0, 300_000_000)
        fills.append(Fill(
            run_id=run_id, fill_id=str(1_000_000_000 + i), event_id=i, ts_ns=1_700_000_000_000_000_000 + i * 1_000_000,
            symbol=symbol, order_id=i // 2, qty=Decimal(qty_units).scaleb(-8), price=Decimal(price_units).scaleb(-8),
            fee=Decimal(fee_units).scaleb(-8),
        ))  # fmt: skip
    return fills


def run_ledger_bench(
    engine: sa.Engine, fills: int = 1_000_000, batch: int = 10_000, *, repeat: int = 1,
    optimistic_insert: bool = True, schema: str | None = None,
) -> Measurement:  # fmt: skip
    """Ingest ``fills`` fills in ``batch``-sized :meth:`Ledger.record_fills` calls, ``repeat`` times."""
    schema = schema or f"stress_ledger_bench_{uuid.uuid4().hex[:8]}"
    ledger = Ledger(engine, schema=schema, optimistic_insert=optimistic_insert)
    run_id = f"bench-ledger-{uuid.uuid4().hex[:8]}"
    data = bench_fills(fills, run_id)
    batches = [data[start : start + batch] for start in range(0, len(data), batch)]
    try:
        ledger.migrate()
        ledger.start_run(run_id, "bench")
        for warm in batches[:WARMUP_BATCHES]:
            ledger.record_fills(warm)
        times = []
        for _ in range(repeat):
            _empty(engine, ledger)
            started = time.perf_counter()
            written = sum(ledger.record_fills(chunk) for chunk in batches)
            times.append(time.perf_counter() - started)
            if written != fills:
                raise RuntimeError(f"ledger bench wrote {written} fills, expected {fills}")
        # Untimed: a fast but wrong ingest must not pass.
        if ledger.fill_count(run_id) != fills or not ledger.entries_balanced(run_id):
            raise RuntimeError("ledger bench left a wrong ledger: fills missing or entries out of balance")
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{ledger.schema}" CASCADE'))
    times.sort()
    path = "direct COPY" if optimistic_insert else "staged, ON CONFLICT"
    name = f"ledger ingest, {batch:,}-fill batches ({path})"
    return Measurement(name, times[0], times[len(times) // 2], repeat, fills, UNIT)


def run_state_ledger_bench(
    settings: Settings, *, fills: int = 1_000_000, batch: int = 10_000, repeat: int = 1
) -> dict[str, Measurement]:
    """Both write paths against the configured (default: embedded) PostgreSQL: ``direct`` (what
    :meth:`Ledger.record_fills` does with new fills, the path the target is for) and ``staged`` (its
    fallback for replayed or overlapping batches, measured for reference)."""
    engine = postgres_engine(resolve_service_urls(settings).postgres_url)
    try:
        return {
            path: run_ledger_bench(engine, fills, batch, repeat=repeat, optimistic_insert=path == "direct")
            for path in ("direct", "staged")
        }
    finally:
        engine.dispose()


def ledger_target_met(measurement: Measurement) -> bool:
    return (measurement.items_per_second or 0.0) >= LEDGER_TARGET_FILLS_PER_S


def _empty(engine: sa.Engine, ledger: Ledger) -> None:
    """Untimed: drop the previous call's rows so every call ingests into the same, empty tables."""
    schema = ledger.schema
    with engine.begin() as conn:
        conn.execute(sa.text(f'TRUNCATE "{schema}".fills, "{schema}".ledger_entries'))
