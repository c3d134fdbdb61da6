"""``stress-pipeline drills list|run NAME|reset-ess RUN``: the drills from the command line, and the
operator's reset of the emergency stop system."""

from __future__ import annotations

import argparse
import json
import sys


def register(commands: argparse._SubParsersAction) -> None:
    drills = commands.add_parser("drills", help="operational drills: list, run one, reset the ESS of a run")
    sub = drills.add_subparsers(dest="drills_command", required=True)
    listing = sub.add_parser("list", help="the drills and what each checks")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=_list)
    run = sub.add_parser("run", help="run one drill against the live state and print its criteria")
    run.add_argument("name")
    run.add_argument("--json", action="store_true")
    run.add_argument("--alerts-dir", default=None,
                     help="durable alert queue folder (default: $STRESS_HOME/alerts/drill-NAME)")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--decider", default="", help="the decision function or risk governor the drill's orders go to, "
                     "pkg.mod:callable (default: the risk stack with its state in Redis)")  # fmt: skip
    run.set_defaults(handler=_run, settings=True)
    reset = sub.add_parser("reset-ess", help="operator reset: AWAITING_RESET -> ARMED (refused during the cooldown)")
    reset.add_argument("run_id")
    reset.add_argument("--namespace", default="stress")
    reset.add_argument("--redis-url", default=None, help="default: the configured (or embedded) Redis")
    reset.set_defaults(handler=_reset_ess, settings=True)


def _list(args: argparse.Namespace) -> int:
    from stress_pipeline.drills.registry import DRILLS

    if args.json:
        print(json.dumps([{"name": d.name, "seed": d.seed, "checks": d.checks} for d in DRILLS.values()], indent=2))
    else:
        for d in DRILLS.values():
            print(f"{d.name:22} {d.seed:22} {d.checks}")
    return 0


def _run(args: argparse.Namespace) -> int:
    from stress_pipeline.drills.registry import drill
    from stress_pipeline.drills.risk_drills import DrillEnv
    from stress_pipeline.services import resolve_service_urls

    chosen = drill(args.name)
    urls = resolve_service_urls(args.settings)
    alerts_dir = args.alerts_dir or str(args.settings.paths.alerts / f"drill-{chosen.name}")
    env = DrillEnv(redis_url=urls.redis_url, alerts_dir=alerts_dir, postgres_url=urls.postgres_url,
                   operator_cli=(sys.executable, "-m", "stress_pipeline.cli"), seed=args.seed,
                   decider=args.decider)  # fmt: skip
    result = chosen.run(env)
    if args.json:
        print(json.dumps({"drill": result.drill, "passed": result.passed, "alerts": list(result.alerts),
                          "criteria": json.loads(result.table.to_json(orient="records")),
                          "timeline": json.loads(result.timeline.to_json(orient="records"))}, indent=2))  # fmt: skip
    else:
        print(result.timeline.to_string(index=False))
        print()
        print(result.table.drop(columns="drill").to_string(index=False))
        print(result.summary())
    return 0 if result.passed else 1


def _reset_ess(args: argparse.Namespace) -> int:
    from stress_pipeline.drills.ess import EssResetRefused, operator_reset
    from stress_pipeline.services import redis_client, resolve_service_urls
    from stress_pipeline.state.hot_state import HotState

    url = args.redis_url or resolve_service_urls(args.settings).redis_url
    client = redis_client(url)
    try:
        state = operator_reset(client, HotState(client, args.run_id, namespace=args.namespace))
    except EssResetRefused as exc:
        print(f"stress-pipeline: refused: {exc}", file=sys.stderr)
        return 1
    finally:
        client.close()
    print(f"{args.namespace}:{args.run_id}: ESS {state}")
    return 0
