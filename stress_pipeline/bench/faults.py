"""`stress-pipeline bench faults`: the seeded random fault campaign (:mod:`stress_pipeline.faults.campaign`).

``--seed N --schedules K`` runs schedules seeded N .. N+K-1 against the servers of the settings
(embedded by default, STRESS_POSTGRES_URL / STRESS_REDIS_URL otherwise) and prints schedules run,
faults injected, fills lost / duplicated / unexpected beside their target of 0, the slowest recovery
and the seed of every failing schedule (``--seed S --schedules 1`` replays it exactly). Exits 1 when
any schedule failed.
"""

from __future__ import annotations

import json
import sys
import time

from stress_pipeline.faults.campaign import CampaignConfig, ScheduleResult, run_campaign

DEFAULT_SCHEDULES = 20


def main(args) -> int:
    seed = 0 if args.seed is None else args.seed
    schedules = DEFAULT_SCHEDULES if args.schedules is None else args.schedules
    started = time.perf_counter()

    def progress(result: ScheduleResult) -> None:
        if not args.json:
            status = "ok  " if result.passed else "FAIL"
            faults = ",".join(f"{kind}x{count}" for kind, count in sorted(result.injected.items()))
            print(f"{status} seed {result.seed}: {result.exchange_fills} fills, {faults}, {result.outages} outage(s), "
                  f"{result.buffered} buffered ({result.seconds:.2f} s)"
                  + (f": {result.error}" if result.error else ""), file=sys.stderr)  # fmt: skip

    campaign = run_campaign(
        args.settings, seed, schedules, CampaignConfig(), buffer_root=args.settings.paths.buffers / "fault-campaign",
        on_result=progress,
    )  # fmt: skip
    totals = campaign.totals()
    totals["seconds"] = round(time.perf_counter() - started, 1)
    if args.json:
        print(json.dumps({**totals, "schedules_detail": [r.as_dict() for r in campaign.results]}, indent=2))
    else:
        print(format_totals(totals))
    return 0 if not campaign.failing else 1


def format_totals(totals: dict) -> str:
    last = totals["seed"] + totals["schedules"] - 1
    lines = [
        f"schedules run        {totals['schedules']} (seeds {totals['seed']}..{last})",
        f"faults injected      {totals['faults_injected']}: "
        + ", ".join(f"{kind} {count}" for kind, count in totals["faults_by_kind"].items()),
        f"fills written        {totals['fills']}",
        f"outages seen         {totals['outages_seen']} (records buffered on disk meanwhile: "
        f"{totals['records_buffered']})",
    ]
    for name in ("fills_lost", "fills_duplicated", "fills_unexpected", "breaks"):
        verdict = "ok" if totals[name] == 0 else "MISSED"
        lines.append(f"{name.replace('_', ' '):<20} {totals[name]:>6}   target 0   {verdict}")
    lines.append(f"slowest recovery     {totals['slowest_recovery_s']:.3f} s")
    lines.append(f"failing seeds        {totals['failing_seeds'] or 'none'}")
    for seed, error in totals["errors"].items():
        lines.append(f"  seed {seed}: {error}")
    lines.append(f"seconds              {totals['seconds']}")
    return "\n".join(lines)
