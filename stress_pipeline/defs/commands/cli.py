"""``batch``, ``results``, ``status``, ``schedules``, and ``--webserver`` on ``run``: the users' REST
endpoints as commands (run one scenario, run a batch, get a result by name, status, start and stop
the scheduler; ``scenarios list`` is the library).

    stress-pipeline batch KEY... | --file FILE [--json] [--webserver URL [--no-wait]]
    stress-pipeline results NAME [--json]
    stress-pipeline status [--json]
    stress-pipeline schedules on|off [NAME...] [--json] [--webserver URL]
    stress-pipeline run ... --webserver URL [--no-wait]

Exit codes: 0 done (a run: every partition materialised and every blocking check passed; results:
everything stored), 1 a run or check failed, or results not (fully) materialised, 2 a usage error
(an unknown scenario or schedule, an empty batch file, no project here), with a message naming it.

Through a webserver, a run is one run of the ``nightly_core_suite`` job, its op config replacing
the suite's selection and scenarios with the command's (the job materialises them group by group,
each group a run of its own), so the UI lists it and its group runs; the command waits for it and
prints its status and every check its group runs evaluated, or with ``--no-wait`` its id and URL.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
#: The job a run launched through a webserver is a run of (its op config takes a selection and scenarios).
LAUNCH_JOB = "nightly_core_suite"
LAUNCH_TAG = ("stress_pipeline/launched_by", "cli-webserver")


def register(commands: argparse._SubParsersAction) -> None:
    run = commands.choices["run"]
    _webserver_options(run, "launch the run through this dagster-webserver (e.g. http://127.0.0.1:3000) so the "
                            "UI shows it, instead of in process")  # fmt: skip
    in_process = run.get_default("handler")

    def run_handler(args: argparse.Namespace) -> int:
        return _launch(args) if args.webserver else _in_process(in_process, args)

    run.set_defaults(handler=_usage_errors(run_handler))

    batch = commands.add_parser("batch", help="run a batch of scenarios through every stage")
    batch.add_argument("keys", nargs="*", metavar="KEY", help="scenario partition keys or names")
    batch.add_argument("--file", type=Path, help="a file listing keys or names, one per line (# comments)")
    batch.add_argument("--json", action="store_true", help="print a machine-readable summary on stdout")
    batch.add_argument("--verbose", action="store_true", help="show Dagster's own log lines and tracebacks")
    _webserver_options(batch, "launch the batch through this dagster-webserver so the UI shows it")
    batch.set_defaults(handler=_usage_errors(_cmd_batch), select=None)

    results = commands.add_parser("results", help="a scenario's stored verdict, metrics, divergence, reconciliation")
    results.add_argument("name", metavar="NAME", help="scenario partition key or name")
    results.add_argument("--json", action="store_true")
    results.set_defaults(handler=_usage_errors(_cmd_results))

    status = commands.add_parser("status", help="services, schedules and sensors, last suite runs, kill switch, "
                                                "latest certification")  # fmt: skip
    status.add_argument("--json", action="store_true")
    status.set_defaults(handler=_usage_errors(_cmd_status))

    schedules = commands.add_parser(
        "schedules", help="switch schedules on or off (what the UI's Automation page shows)"
    )
    schedules.add_argument("action", choices=("on", "off"))
    schedules.add_argument("names", nargs="*", metavar="NAME", help="schedules to switch (default: every one)")
    schedules.add_argument("--json", action="store_true")
    schedules.add_argument("--webserver", metavar="URL", help="switch them through this dagster-webserver's GraphQL")
    schedules.set_defaults(handler=_usage_errors(_cmd_schedules))


def _usage_errors(handler):
    """``handler``, answering a ProjectError with its message and exit 2 itself: under ``python -m
    stress_pipeline.cli`` the module running ``main`` is ``__main__``, whose ProjectError is another class."""

    def guarded(args: argparse.Namespace) -> int:
        from stress_pipeline.cli import ProjectError

        try:
            return handler(args)
        except ProjectError as exc:
            print(f"stress-pipeline: error: {exc}", file=sys.stderr)
            return EXIT_USAGE

    return guarded


def _webserver_options(parser: argparse.ArgumentParser, text: str) -> None:
    parser.add_argument("--webserver", metavar="URL", help=text)
    parser.add_argument("--no-wait", action="store_true", help="with --webserver: print the run's id and URL, "
                                                               "do not wait for it")  # fmt: skip


def _in_process(handler, args: argparse.Namespace) -> int:
    if args.no_wait:
        raise _usage("--no-wait needs --webserver: an in-process run always finishes before the command")
    return handler(args)


# -------------------------------------------------------------------------------------------- batch


def _cmd_batch(args: argparse.Namespace) -> int:
    from stress_pipeline.cli import ProjectError, _cmd_run, _project, _scenario_keys

    if bool(args.keys) == bool(args.file):
        raise _usage("give scenario keys or --file FILE (one of them)")
    entries = _batch_file(args.file) if args.file else [(None, key) for key in args.keys]
    settings, _ = _project()
    try:
        _scenario_keys(settings, [name for _, name in entries])
    except ProjectError:
        for where, name in entries:  # name the first unknown entry, and its line
            try:
                _scenario_keys(settings, [name])
            except ProjectError as err:
                raise ProjectError(f"{where}: {err}" if where else str(err)) from None
        raise
    args.scenario = [name for _, name in entries]
    return _launch(args) if args.webserver else _in_process(_cmd_run, args)


def _batch_file(path: Path) -> list[tuple[str, str]]:
    """``(FILE:LINE, key or name)`` of each line that is neither blank nor a ``#`` comment."""
    from stress_pipeline.cli import ProjectError

    try:
        lines = path.read_text().splitlines()
    except OSError as err:
        raise ProjectError(f"{path}: cannot read the batch file: {err.strerror}") from None
    entries = [(f"{path}:{n}", line.strip()) for n, line in enumerate(lines, 1)
               if line.strip() and not line.strip().startswith("#")]  # fmt: skip
    if not entries:
        raise ProjectError(f"{path}: lists no scenario (one key or name per line)")
    return entries


# --------------------------------------------------------------------------------- through the webserver


def _launch(args: argparse.Namespace) -> int:
    from stress_pipeline.cli import _project, _scenario_keys
    from stress_pipeline.defs.commands.webserver import Webserver

    settings, _ = _project()
    server = Webserver(args.webserver)
    scenarios = _scenario_keys(settings, args.scenario)[0] if args.scenario else _every_scenario(settings)
    select = args.select or _scenario_selection(bool(args.scenario))
    config = {"ops": {f"{LAUNCH_JOB}_run": {"config": {"select": select, "scenarios": scenarios}}}}
    launched = server.launch(LAUNCH_JOB, config, dict([LAUNCH_TAG]))
    if args.no_wait:
        print(json.dumps({"run_id": launched.run_id, "url": launched.url, "status": launched.status}, indent=2)
              if args.json else f"{launched.run_id} {launched.url}")  # fmt: skip
        return EXIT_OK
    if not args.json:
        print(f"launched {LAUNCH_JOB} run {launched.run_id} ({', '.join(scenarios)}): {launched.url}",
              file=sys.stderr, flush=True)  # fmt: skip
    server.wait(launched, queued_warning=lambda text: print(f"stress-pipeline: warning: {text}", file=sys.stderr))
    if args.json:
        print(json.dumps({**launched.as_dict(), "scenarios": scenarios, "select": select}, indent=2))
    else:
        print(_launched_text(launched))
    return EXIT_OK if launched.ok else EXIT_FAILED


def _scenario_selection(scenarios_only: bool) -> str:
    """The selection `run` makes in process, as a selection string for the launched job's config."""
    from stress_pipeline.defs import build_definitions
    from stress_pipeline.defs.partitions import SCENARIOS_PARTITIONS_NAME
    from stress_pipeline.defs.runner import resolve_selection

    if not scenarios_only:
        return "*"
    keys = resolve_selection(build_definitions(), None, partitioned_by=SCENARIOS_PARTITIONS_NAME)
    return " or ".join(f'key:"{key.to_user_string()}"' for key in keys)


def _every_scenario(settings) -> list[str]:
    from stress_pipeline.market.symbols import discover_symbol_files
    from stress_pipeline.scenarios.catalog import BASELINE_KEY, build_catalog

    on_disk = sorted(discover_symbol_files(settings.bars_dir))
    catalog = build_catalog(settings.stress_packs_dir, known_symbols=on_disk,
                            memory_budget=settings.scenario_memory_bytes)  # fmt: skip
    return [BASELINE_KEY, *(scenario.key for scenario in catalog.scenarios)]


def _launched_text(launched) -> str:
    took = f" in {launched.end_time - launched.start_time:.1f}s" if launched.start_time and launched.end_time else ""
    passed = sum(1 for c in launched.checks if c["success"])
    lines = [f"run {launched.run_id} ({launched.job}): {launched.status}{took}; {len(launched.group_runs)} group "
             f"run(s), {len(launched.checks)} check(s), {passed} passed", f"  {launched.url}"]  # fmt: skip
    for check in launched.checks:
        if not check["success"]:
            where = f"[{check['partition']}]" if check["partition"] else ""
            lines.append(f"  check {check['asset']}.{check['check']}{where}: FAILED ({check['severity']})")
    lines += [f"  {line}" for line in launched.failures]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------ results


def _cmd_results(args: argparse.Namespace) -> int:
    from stress_pipeline.cli import _scenario_keys
    from stress_pipeline.defs.commands.results import results_text, stored_results
    from stress_pipeline.settings import get_settings

    settings = get_settings()
    key = _scenario_keys(settings, [args.name])[0][0]
    found = stored_results(settings.paths, key, args.name)
    if args.json:
        print(json.dumps(found.as_dict(), indent=2, default=str))
    elif not found.paths:
        print(f"scenario {args.name} (partition {key}) has never been materialised: nothing is stored under "
              f"{settings.paths.storage}. Run it: stress-pipeline run --scenario {key}")  # fmt: skip
    else:
        print(results_text(found))
    return EXIT_OK if found.complete else EXIT_FAILED


# ------------------------------------------------------------------------------------------- status


def _cmd_status(args: argparse.Namespace) -> int:
    from stress_pipeline.defs.commands.status import project_status, status_text

    report = project_status()
    print(json.dumps(report, indent=2, default=str) if args.json else status_text(report))
    return EXIT_OK


# ---------------------------------------------------------------------------------------- schedules


def _cmd_schedules(args: argparse.Namespace) -> int:
    from stress_pipeline.cli import _project

    on = args.action == "on"
    if args.webserver:
        from stress_pipeline.defs.commands.webserver import Webserver

        server = Webserver(args.webserver)
        rows = {row["name"]: row for row in server.schedules()}
        unknown = [name for name in args.names if name not in rows]
        if unknown:
            raise _usage(f"no schedule {unknown[0]!r} on {server.url} (schedules: {', '.join(rows)})")
        wanted = "RUNNING" if on else "STOPPED"
        states = {name: rows[name]["scheduleState"]["status"] if rows[name]["scheduleState"]["status"] == wanted
                  else server.set_schedule(rows[name], on) for name in (args.names or list(rows))}  # fmt: skip
    else:
        _, home = _project()
        os.environ["DAGSTER_HOME"] = str(home)
        import dagster as dg

        from stress_pipeline.defs import build_definitions
        from stress_pipeline.defs.commands.automation_state import ScheduleNameError, schedule_names, switch_schedules

        defs = build_definitions()
        try:
            names = schedule_names(defs, args.names)
        except ScheduleNameError as err:
            raise _usage(str(err)) from None
        states = switch_schedules(dg.DagsterInstance.get(), defs, names, on=on, cwd=Path.cwd())
    if args.json:
        print(json.dumps(states, indent=2))
    else:
        for name, state in states.items():
            print(f"{name:36} {state}")
    wanted = "RUNNING" if on else "STOPPED"
    return EXIT_OK if all(state == wanted for state in states.values()) else EXIT_FAILED


def _usage(message: str):
    from stress_pipeline.cli import ProjectError

    return ProjectError(message)
