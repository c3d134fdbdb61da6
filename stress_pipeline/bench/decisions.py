"""Decision flood benchmark: the risk stack with its state in real Redis, open-loop at a fixed rate.

``stress-pipeline bench decisions [--seconds S] [--rate R] [--decider pkg.mod:callable]`` (defaults
10 s at 20,000/s against the risk stack; the seeds' soak is ``--seconds 600 --rate 1000``). Targets:
at least 20,000/s scheduled and answered at >= 99% of the schedule, with P99 <= 1 ms; a run scheduled
below 20,000/s is judged against the seeds' bar instead (1,000/s, P99 <= 15 ms) and prints so. The RSS
slope is judged only over runs of a minute or more (shorter runs are dominated by warm-up); it is
printed either way. The run's Redis keys are removed afterwards.

``--cpu N`` runs the flood on CPU N with the Redis server beside it, when that server is the project's
embedded one (its affinity is put back afterwards; the machine's Redis stays where its owner put it).
On this 2-vCPU virtual machine a client and a Redis on different vCPUs wait, now and then, for an
idle vCPU to be woken (a few ms each time): on one vCPU the send switches straight to Redis and the
tail stays below a millisecond, the other vCPU left to everything else.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from argparse import Namespace
from collections.abc import Iterator

from stress_pipeline.drills.decision_flood import FloodResult, run_redis_flood
from stress_pipeline.services import resolve_service_urls
from stress_pipeline.services.embedded import read_state
from stress_pipeline.settings import Settings

TARGET_RATE = 20_000.0
TARGET_P99_MS = 1.0
SEED_RATE, SEED_P99_MS = 1_000.0, 15.0
TARGET_RSS_SLOPE = 1.0  # MB per minute, over runs of at least RSS_MIN_SECONDS
RSS_MIN_SECONDS = 60.0
DEFAULT_SECONDS = 10.0


def targets(result: FloodResult) -> list[tuple[str, float, str, bool | None]]:
    """(figure, value, target, met); met None for a figure reported only or not judged on this run.

    A run scheduled at >= 20,000/s is judged against the project's targets; a slower one (the seeds'
    soak, ``--rate 1000 --seconds 600``) against the seeds' bar, and says so."""
    project = result.rate_per_s >= TARGET_RATE
    floor = 0.99 * result.rate_per_s
    p99_target = TARGET_P99_MS if project else SEED_P99_MS
    rss_judged = result.seconds >= RSS_MIN_SECONDS and not math.isnan(result.rss_slope_mb_per_min)
    return [
        ("scheduled decisions/s", result.rate_per_s, f">= {TARGET_RATE if project else SEED_RATE:,.0f}"
         + ("" if project else " (seeds' bar; project target 20,000)"),
         result.rate_per_s >= (TARGET_RATE if project else SEED_RATE)),
        ("answered decisions/s", result.achieved_per_s, f">= {floor:,.0f} (99% of scheduled)",
         result.achieved_per_s >= floor),
        ("P50 latency ms", result.p50_ms, "(reported)", None),
        ("P99 latency ms", result.p99_ms, f"<= {p99_target:g}", result.p99_ms <= p99_target),
        ("P99.9 latency ms", result.p999_ms, "(reported)", None),
        ("max latency ms", result.max_ms, "(reported)", None),
        ("client CPU us per decision", result.cpu_us_per_decision, "(reported)", None),
        ("RSS slope MB/min", result.rss_slope_mb_per_min, f"<= {TARGET_RSS_SLOPE:g} (judged on runs >= 60 s)",
         result.rss_slope_mb_per_min <= TARGET_RSS_SLOPE if rss_judged else None),
    ]  # fmt: skip


def format_result(result: FloodResult, decider: str = "") -> str:
    lines = [
        f"decision flood: {decider or 'risk stack, state in Redis'}, {result.rate_per_s:,.0f}/s scheduled for "
        f"{result.seconds:g} s "
        f"({result.decisions:,} decisions in {result.batches:,} batches, largest {result.max_batch})",
        f"{'figure':34} {'value':>12}  target",
    ]
    for name, value, target, met in targets(result):
        verdict = ("not judged" if "judged" in target else "") if met is None else ("met" if met else "MISSED")
        lines.append(f"{name:34} {value:12.3f}  {target} {verdict}".rstrip())
    lines.append("reasons: " + ", ".join(f"{k or 'PASSED'} {v:,}" for k, v in sorted(result.reasons.items())))
    return "\n".join(lines)


def met(result: FloodResult) -> bool:
    return all(ok for _, _, _, ok in targets(result) if ok is not None)


def main(args: Namespace) -> int:
    """``args``: the bench options and ``settings`` (the CLI reads them)."""
    seconds = args.seconds if args.seconds is not None else DEFAULT_SECONDS
    rate = args.rate if args.rate is not None else TARGET_RATE
    url = resolve_service_urls(args.settings).redis_url
    with on_cpu(args.cpu, args.settings) as placement:
        result = run_redis_flood(url, rate=rate, seconds=seconds, seed=args.seed or 0, namespace="stress-bench",
                                 decider=args.decider)  # fmt: skip
    if args.json:
        print(json.dumps({**result.row(), "achieved_per_s": result.achieved_per_s, "reasons": result.reasons,
                          "targets": [dict(zip(("figure", "value", "target", "met"), t, strict=True))
                                      for t in targets(result)]}, indent=2))  # fmt: skip
    else:
        print(format_result(result, args.decider))
        if placement:
            print(placement)
    return 0 if met(result) else 1


@contextlib.contextmanager
def on_cpu(cpu: int | None, settings: Settings) -> Iterator[str]:
    """Pin this process, and the embedded Redis when it is the one in use, to ``cpu`` for the block;
    yields what was pinned (empty with ``cpu`` None). Affinities are put back afterwards."""
    if cpu is None:
        yield ""
        return
    if cpu not in os.sched_getaffinity(0):
        raise ValueError(f"--cpu {cpu}: this process may run on CPUs {sorted(os.sched_getaffinity(0))} only")
    pids = {0: "the flood"}
    record = None if settings.redis_url else read_state(settings).redis
    if record is not None:
        pids[record.pid] = f"the embedded Redis (pid {record.pid})"
    before = {pid: os.sched_getaffinity(pid) for pid in pids}
    try:
        for pid in pids:
            os.sched_setaffinity(pid, {cpu})
        yield f"on CPU {cpu}: {', '.join(pids.values())}" + ("" if record else "; the Redis server is not the "
                                                              "project's, its placement is the machine's")
    finally:
        for pid, cpus in before.items():
            with contextlib.suppress(ProcessLookupError):
                os.sched_setaffinity(pid, cpus)
