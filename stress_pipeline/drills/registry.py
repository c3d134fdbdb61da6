"""Every drill by name: what it checks and the function that runs it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import NamedTuple

from stress_pipeline.drills.broker_drill import broker_failure_drill
from stress_pipeline.drills.core import DrillConfigError, DrillResult
from stress_pipeline.drills.correlation_drill import correlation_spike_drill
from stress_pipeline.drills.flow_drills import signal_flood_drill
from stress_pipeline.drills.ledger_drill import ledger_outage_drill
from stress_pipeline.drills.network_drill import network_loss_drill
from stress_pipeline.drills.paper_drills import correlation_cascade_drill, exchange_outage_drill, rate_limits_drill
from stress_pipeline.drills.risk_drills import DrillEnv, ess_reset_drill
from stress_pipeline.drills.signal_drills import high_slippage_drill, webhook_lost_drill
from stress_pipeline.drills.timeout_drill import execution_timeout_drill
from stress_pipeline.drills.venue_drills import stuck_position_drill


class Drill(NamedTuple):
    name: str
    seed: str  # where its pass criteria come from
    checks: str
    run: Callable[[DrillEnv], DrillResult]
    seconds: float = 1.0  # about how long it runs (mostly waiting on real time): the longest start first


DRILLS: dict[str, Drill] = {
    d.name: d
    for d in (
        Drill("exchange_outage", "seed 002 scenario 2", "the paper engine's exchange outage for 15 min: detected "
              "< 60 s, no order sent while known down, reconnect every 60 s, resumes, positions equal the fills",
              exchange_outage_drill),
        Drill("stuck_position", "seed 002 scenario 5", "an exit limit order unfilled on a thin book: detected < 5 min, "
              "market fallback, manual-intervention alert when that fails too, position closed", stuck_position_drill),
        Drill("network_loss", "seed 002 scenario 7", "network lost 5 min: detected, positions closed first, events "
              "logged locally, state synced and the queued alerts delivered once each on reconnect",
              network_loss_drill),
        Drill("ess_reset", "seed 004", "ESS trips above its drawdown threshold, orders blocked, cooldown enforced, "
              "operator reset via the CLI returns it to ARMED, orders allowed again", ess_reset_drill,
              seconds=6.0),
        Drill("correlation_cascade", "seed 002 scenario 6", "a correlation cascade through the paper engine, all "
              "strategies long: drawdown > 15% halts new trades until reset, loss < 20%", correlation_cascade_drill),
        Drill("signal_flood", "seed 002 test 2", "50 signals in 5 s: every signal processed, trade intents limited by "
              "the policy, queue lag < 5 s, normal processing after", signal_flood_drill,
              seconds=5.0),
        Drill("rate_limits", "seed 004", "the paper engine's order limit throttled (-1015), then an IP ban (-1003): "
              "at most 3 retries with exponential backoff, the limiter holds its rates, alerted, the ESS does not trip",
              rate_limits_drill),
        Drill("broker_failure", "seed 001", "Redis cut for 10 s, 3 times: recovery <= 25 s (mean), positions held, "
              "order queue intact, market data fresher than 500 ms before trading resumes", broker_failure_drill,
              seconds=40.0),
        Drill("webhook_lost", "seed 002 scenario 3", "a strategy webhook lost, one duplicated, one malformed: gap "
              "detected within the interval + 10%, alerted, no phantom or duplicate position", webhook_lost_drill),
        Drill("high_slippage", "seed 002 scenario 4", "a fill 1% off: slippage recorded per trade, alert above 0.5%, "
              "PnL recomputed on real fills, strategy disabled when unprofitable", high_slippage_drill),
        Drill("postgres_outage", "seed 004, seed 001", "the ledger's PostgreSQL cut for 10 s, 3 times, while fills "
              "are booked: the writer buffers, recovery <= 25 s (mean), nothing lost, Redis equals the ledger, each "
              "outage detected from the probes and alerted", ledger_outage_drill, seconds=40.0),
        Drill("execution_timeout", "seed 002 test 2", "the paper engine's venue latency x1000 for 10 min: every "
              "order unanswered after 15 s detected and alerted within 30 s, none answered in time alerted, none "
              "lost, answered in time after", execution_timeout_drill),
        Drill("correlation_spike", "seed 002 test 2", "the market falls as one through the paper engine (a cascade "
              "without lag): the correlation spike detected during the fall, no false alarm before it, one alert",
              correlation_spike_drill),
    )
}  # fmt: skip


#: The failure modes of the monitoring checklist each drill makes happen, and whose monitor must detect
#: it during the drill (``DrillResult.detections``). Modes no drill makes happen are absent.
FAILURE_MODE_DRILLS: dict[str, str] = {
    "api_down": "exchange_outage", "webhook_lost": "webhook_lost", "high_slippage": "high_slippage",
    "stuck_position": "stuck_position", "order_placement_failed": "stuck_position",
    "drawdown_exceeded": "correlation_cascade", "balance_anomaly": "correlation_cascade",
    "correlation_spike": "correlation_spike",
    "ess_tripped": "ess_reset", "kill_switch_set": "high_slippage", "connectivity_lost": "network_loss",
    "redis_down": "broker_failure", "postgres_down": "postgres_outage", "execution_timeout": "execution_timeout",
}  # fmt: skip


def drill(name: str) -> Drill:
    try:
        return DRILLS[name]
    except KeyError:
        raise DrillConfigError(f"unknown drill {name!r}; known: {', '.join(DRILLS)}") from None


def run_drill(name: str, env: DrillEnv) -> DrillResult:
    return drill(name).run(env)


def run_drills(
    names: Sequence[str], env_of: Callable[[str], DrillEnv], *, parallel: int = 3,
    on_done: Callable[[DrillResult], None] | None = None,
) -> tuple[dict[str, DrillResult], dict[str, Exception]]:
    """Run the drills ``names``, ``parallel`` at a time, the longest first; ``env_of(name)`` is each one's
    environment. Every drill runs even when another raises: returns (results, errors) by name, and calls
    ``on_done(result)`` in the calling thread as each finishes. Drills do not share state: each has its
    own keys in Redis, its own proxies and schemas, and its environment's alert folder."""
    if parallel < 1:
        raise DrillConfigError(f"parallel={parallel}: at least one drill must run at a time")
    chosen = [drill(name) for name in names]  # an unknown name fails here, before any drill starts
    chosen.sort(key=lambda d: -d.seconds)
    results: dict[str, DrillResult] = {}
    errors: dict[str, Exception] = {}
    with ThreadPoolExecutor(max_workers=min(parallel, max(1, len(chosen))), thread_name_prefix="drill") as pool:
        futures = {pool.submit(d.run, env_of(d.name)): d.name for d in chosen}
        for future in as_completed(futures):
            name = futures[future]
            try:
                results[name] = future.result()
            except Exception as err:
                errors[name] = err
                continue
            if on_done is not None:
                on_done(results[name])
    return results, errors
