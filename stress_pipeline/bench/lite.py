"""Hourly flash-crash lite benchmark: 100 symbols, the live book read from a real Redis, then the shock.

Times :func:`stress_pipeline.lite.run.run_lite` from its real inputs: a 100-symbol book (positions and
cash) in the hot state of a run on the configured Redis (the embedded one when STRESS_REDIS_URL is
unset), the shock and thresholds of the ``flash_crash_lite`` scenario of the packs, and a market
reference of 100 symbols with a day of one-minute returns. Beside it, the kernel alone
(:func:`~stress_pipeline.lite.evaluate.evaluate` on the book already read). Target: the whole call
<= 5 ms (the seed's budget: 50 ms); best of ``--repeat`` (at least 20) calls, each after a warm-up.
The answer is checked against the kernel's on the same book, so a fast but wrong read cannot pass.

Then the breach path, :data:`BREACHES` times on the same book with every threshold at 0 (each breach
in an hour of its own, so each pages): :func:`~stress_pipeline.lite.run.respond_to_breach` against the
configured servers and the alert endpoint (the embedded receiver, stopped again if this started it).
Targets (the issue's "within a second"): the KILL_SWITCH set and the alert delivered (accepted by the
endpoint) within 1 s of the breach being found, at worst. The bench's trips stay in the ledger under
the namespace ``stress-bench``; its switch and alert claims are removed.
"""

from __future__ import annotations

import json
import statistics
import uuid
from argparse import Namespace
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np

from stress_pipeline.bench.timing import format_measurements, measure
from stress_pipeline.lite.defaults import DEFAULT_SCENARIO
from stress_pipeline.lite.evaluate import DEFAULT_LOOKBACK_BARS, LiteMarket, LiteThresholds, evaluate
from stress_pipeline.lite.killswitch import KillSwitchLedger, reset
from stress_pipeline.lite.run import BreachResponse, LiteConfig, find_lite_scenario, respond_to_breach, run_lite
from stress_pipeline.monitoring.delivery import AlertSender
from stress_pipeline.monitoring.queue import AlertQueue
from stress_pipeline.services import postgres_engine, redis_client, resolve_service_urls
from stress_pipeline.services.alert_receiver import alert_endpoint, read_record, stop_receiver
from stress_pipeline.state.hot_state import HotState

SYMBOLS = 100
TARGET_S = 0.005
MIN_REPEAT = 20
BREACHES = 5
BREACH_TARGET_S = 1.0
NAMESPACE = "stress-bench"


def bench_market(symbols: int = SYMBOLS, bars: int = DEFAULT_LOOKBACK_BARS, seed: int = 12) -> LiteMarket:
    """A seeded market of ``symbols`` symbols: prices, spreads and ``bars`` one-minute returns."""
    rng = np.random.default_rng(seed)
    names = tuple(f"S{i:03d}" for i in range(symbols))
    returns = rng.normal(0.0, 0.001, size=(bars, symbols)) + rng.normal(0.0, 0.0005, size=(bars, 1))
    return LiteMarket(names, np.round(rng.uniform(5.0, 500.0, symbols), 2), rng.uniform(1.0, 10.0, symbols), returns,
                      60.0)  # fmt: skip


def bench_book(symbols: tuple[str, ...], seed: int = 13) -> dict[str, Decimal]:
    rng = np.random.default_rng(seed)
    return {s: Decimal(f"{q:.4f}") for s, q in zip(symbols, rng.uniform(-20.0, 40.0, len(symbols)), strict=True)}


def main(args: Namespace) -> int:
    settings = args.settings
    client = redis_client(resolve_service_urls(settings).redis_url)
    scenario, _path = find_lite_scenario(settings.stress_packs_dir, DEFAULT_SCENARIO)
    market = bench_market()
    run_id = f"lite-bench-{uuid.uuid4().hex[:8]}"
    config = LiteConfig(run_id, "bench_100", market.symbols, scenario.name, scenario.parameters,
                        LiteThresholds.from_expect(scenario.expect, scenario.name), NAMESPACE)  # fmt: skip
    hot = HotState(client, run_id, namespace=NAMESPACE)
    book = bench_book(market.symbols)
    hot.init(Decimal("1000000.00000000"), positions=book)
    qty = np.array([float(book[s]) for s in market.symbols])
    repeat = max(args.repeat, MIN_REPEAT)
    try:
        whole = measure(f"lite run_lite: Redis read + shock, {SYMBOLS} sym", lambda: run_lite(client, config, market),
                        repeat=repeat, items=SYMBOLS, unit="symbols")  # fmt: skip
        kernel = measure(f"lite evaluate (kernel), {SYMBOLS} sym",
                         lambda: evaluate(qty, 1_000_000.0, market, config.shock, config.thresholds),
                         repeat=repeat, items=SYMBOLS, unit="symbols")  # fmt: skip
        read = run_lite(client, config, market)
        alone = evaluate(qty, 1_000_000.0, market, config.shock, config.thresholds)
        if read.figures != alone.figures:
            raise AssertionError(f"run_lite disagrees with the kernel on one book: {read.figures} != {alone.figures}")
        responses = breach_responses(settings, client, config, market)
    finally:
        hot.clear()
    breach = {
        "kill_switch_median_s": statistics.median(r.seconds_to_kill_switch for r in responses),
        "kill_switch_max_s": max(r.seconds_to_kill_switch for r in responses),
        "alert_median_s": statistics.median(r.seconds_to_alert for r in responses),
        "alert_max_s": max(r.seconds_to_alert for r in responses),
        "delivered": sum(r.alert == "delivered" for r in responses), "breaches": len(responses),
    }  # fmt: skip
    breach_met = breach["delivered"] == len(responses) and max(breach["kill_switch_max_s"], breach["alert_max_s"]) \
        <= BREACH_TARGET_S  # fmt: skip
    met = whole.seconds <= TARGET_S
    if args.json:
        print(json.dumps({"measurements": [whole.as_dict(), kernel.as_dict()], "target_s": TARGET_S, "met": met,
                          "figures": read.figures, "breaches": list(read.breaches), "breach_response": breach,
                          "breach_target_s": BREACH_TARGET_S, "breach_met": breach_met}, indent=2))  # fmt: skip
    else:
        print(format_measurements([whole, kernel]))
        print(f"target: run_lite <= {TARGET_S * 1000:g} ms for {SYMBOLS} symbols: "
              f"{whole.seconds * 1000:.2f} ms {'met' if met else 'MISSED'}")  # fmt: skip
        print(f"breach response over {len(responses)} breaches: kill switch set after "
              f"{breach['kill_switch_median_s'] * 1000:.2f} ms median ({breach['kill_switch_max_s'] * 1000:.2f} max), "
              f"alert delivered after {breach['alert_median_s'] * 1000:.1f} ms median "
              f"({breach['alert_max_s'] * 1000:.1f} max), {breach['delivered']}/{len(responses)} delivered; "
              f"target <= {BREACH_TARGET_S:g} s each: {'met' if breach_met else 'MISSED'}")  # fmt: skip
    return 0 if met and breach_met else 1


def breach_responses(
    settings, client, config: LiteConfig, market: LiteMarket, count: int = BREACHES
) -> list[BreachResponse]:  # fmt: skip
    """``count`` breaches of ``config``'s book (every threshold at 0), each in an hour of its own."""
    urls = resolve_service_urls(settings)
    was_running = read_record(settings.home) is not None
    endpoint = alert_endpoint(settings.home, urls.postgres_url)
    engine = postgres_engine(urls.postgres_url)
    tight = replace(config, symbol_set=f"bench_{uuid.uuid4().hex[:8]}", thresholds=LiteThresholds(0.0, 0.0, 0.0))
    first = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    out: list[BreachResponse] = []
    try:
        with AlertQueue(settings.paths.alerts / "bench-lite") as queue:
            sender, ledger = AlertSender(endpoint, queue), KillSwitchLedger(engine)
            for i in range(count):
                now = first + timedelta(hours=i)
                result = run_lite(client, tight, market, now=now)
                out.append(respond_to_breach(result, tight, client=client, ledger=ledger, sender=sender, now=now))
                reset(client, tight.keys)
                client.delete(f"{NAMESPACE}:lite_alert:{out[-1].dedup_key}")
    finally:
        engine.dispose()
        if not was_running:
            stop_receiver(settings.home)
    return out
