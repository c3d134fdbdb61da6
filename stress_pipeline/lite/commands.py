"""``stress-pipeline killswitch status|reset``: the KILL_SWITCH of a live run, shown and cleared.

``status`` prints whether the switch is on, the reason, time and author of its trip, and the run's
latest events from the ledger. ``reset --by WHO --reason WHY`` clears it and records the reset with who
and why in the ledger; a switch that is off is refused (exit 1), recording nothing.
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime

from stress_pipeline.lite.defaults import DEFAULT_NAMESPACE, DEFAULT_RUN_ID

EXIT_OK, EXIT_REFUSED = 0, 1


def register(commands: argparse._SubParsersAction) -> None:
    switch = commands.add_parser("killswitch", help="the KILL_SWITCH of a live run: status, reset (recorded)")
    sub = switch.add_subparsers(dest="killswitch_command", required=True)
    status = sub.add_parser("status", help="on or off, the trip's reason, time and author, the latest events")
    _common(status)
    status.add_argument("--events", type=int, default=10, help="ledger events to show (default: 10)")
    status.set_defaults(handler=_status, settings=True)
    reset = sub.add_parser("reset", help="clear the switch, recording who and why in the ledger")
    _common(reset)
    reset.add_argument("--by", required=True, help="who resets it (recorded)")
    reset.add_argument("--reason", required=True, help="why (recorded)")
    reset.set_defaults(handler=_reset, settings=True)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run-id", default=DEFAULT_RUN_ID, help=f"the live run (default: {DEFAULT_RUN_ID})")
    parser.add_argument("--namespace", default=DEFAULT_NAMESPACE, help=f"key namespace (default: {DEFAULT_NAMESPACE})")
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def _status(args: argparse.Namespace) -> int:
    from stress_pipeline.lite.killswitch import read_state

    keys, client, ledger = _connect(args)
    try:
        state = read_state(client, keys)
        events = ledger.events(args.run_id, namespace=args.namespace, limit=args.events)
    finally:
        ledger.engine.dispose()
    if args.json:
        print(json.dumps({"run": keys.prefix, "kill_switch": state.as_dict(),
                          "events": [e.as_dict() for e in events]}, indent=2, default=str))  # fmt: skip
        return EXIT_OK
    print(f"kill switch of {keys.prefix}: {'ON' if state.on else 'off'}")
    if state.on:
        print(f"  set {state.at or '(time unknown)'} by {state.by or '(unknown)'}: {state.reason or '(no reason)'}")
    for e in events:
        print(f"  {e.as_dict()['at']}  {e.action:5}  {e.actor}: {e.reason}")
    return EXIT_OK


def _reset(args: argparse.Namespace) -> int:
    from stress_pipeline.lite.killswitch import RESET, KillSwitchEvent, reset

    if not args.by.strip() or not args.reason.strip():
        raise ValueError("--by and --reason must not be empty: a reset is recorded with who and why")
    keys, client, ledger = _connect(args)
    try:
        before = reset(client, keys)
        event_id = None
        if before.on:
            event = KillSwitchEvent(args.namespace, args.run_id, RESET, datetime.now(UTC), args.by, args.reason,
                                    details={"cleared": before.as_dict()})  # fmt: skip
            event_id = ledger.record(event)
    finally:
        ledger.engine.dispose()
    if args.json:
        print(json.dumps({"run": keys.prefix, "reset": before.on, "was": before.as_dict(), "by": args.by,
                          "reason": args.reason, "ledger_event_id": event_id}, indent=2))  # fmt: skip
    elif before.on:
        print(f"kill switch of {keys.prefix} cleared by {args.by} ({args.reason}); it was set {before.at} by "
              f"{before.by}: {before.reason}")  # fmt: skip
    else:
        print(f"kill switch of {keys.prefix} is off: nothing to reset, nothing recorded")
    return EXIT_OK if before.on else EXIT_REFUSED


def _connect(args: argparse.Namespace):
    from stress_pipeline.lite.killswitch import KillSwitchLedger
    from stress_pipeline.services import postgres_engine, redis_client, resolve_service_urls
    from stress_pipeline.state.hot_state import HotStateKeys

    urls = resolve_service_urls(args.settings)
    keys = HotStateKeys.of(args.run_id, args.namespace)
    return keys, redis_client(urls.redis_url), KillSwitchLedger(postgres_engine(urls.postgres_url))
