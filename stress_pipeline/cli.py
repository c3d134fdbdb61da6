"""The `stress-pipeline` command line.

    stress-pipeline run [--select SELECTION] [--scenario KEY]... [--json] [--verbose]
    stress-pipeline ui [--port N] [--host HOST]
    stress-pipeline services start|stop|status [--json]
    stress-pipeline data generate [--out DIR] [--days N] [--seed N] [--force]
                                  [--calendar XNYS|CMES|... [--symbols A,B] [--interval 1m] [--start DATE]]
    stress-pipeline scenarios list [--json] | validate FILE...
    stress-pipeline bench market|transforms|sim|state [--json] [--repeat N]
    stress-pipeline bench sweep --workers 0|1|2 --partitions N [--points-per-step K] [--graphql] [--check] [--json]
    stress-pipeline workers [--count N] [--concurrency C]

Heavy imports (Dagster, pandas) happen inside the commands so that `--help` answers at once.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
#: Bench suites in their own module, each with ``main(args) -> exit code`` (``args.settings``: the settings,
#: read here): ``stress_pipeline.bench.<suite>``, or the module named here (the sweep bench drives Dagster
#: runs and Celery workers, so it lives in the Dagster layer).
BENCH_MODULES: dict[str, str] = {
    **{name: f"stress_pipeline.bench.{name}" for name in ("decisions", "faults", "ingest", "alerts", "lite", "book")},
    "sweep": "stress_pipeline.defs.sweeps.bench",
}
#: Modules adding top-level commands: each has ``register(commands)`` (the argparse subparsers), and
#: its commands set ``handler``; they import heavy modules inside the handler, like the commands here. A command
#: that sets the default ``settings=True`` gets the settings (read here) in ``args.settings``.
COMMAND_MODULES: tuple[str, ...] = (
    "stress_pipeline.drills.commands", "stress_pipeline.defs.commands.certification", "stress_pipeline.lite.commands",
    "stress_pipeline.defs.commands.cli", "stress_pipeline.defs.commands.sweeps",
)


#: Set by a command after which nothing is left to tear down but the interpreter (see console_main).
_leave_at_once = False


def console_main() -> None:
    """The `stress-pipeline` command. After `run`, whose summary is printed and whose other processes
    have ended, the process leaves at once: tearing down what a run loaded (numba's compiled code,
    pandas, matplotlib, Dagster) took about 2 s of native cleanup at interpreter exit, with nothing left
    to write. Streams and logging are flushed first."""
    code = main()
    if _leave_at_once:
        import logging

        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        if getattr(args, "settings", None) is True:
            from stress_pipeline.settings import get_settings

            args.settings = get_settings()
        return args.handler(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except ProjectError as exc:
        print(f"stress-pipeline: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as exc:  # one clear line for the user; --verbose shows the traceback
        if getattr(args, "verbose", False):
            raise
        print(f"stress-pipeline: error: {exc}", file=sys.stderr)
        return EXIT_FAILED


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stress-pipeline", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(title="commands")

    run = commands.add_parser("run", help="materialise assets in process on the local Dagster instance")
    run.add_argument("--select", help="Dagster asset selection, e.g. 'group:market' (default: every asset)")
    run.add_argument(
        "--scenario", action="append", metavar="KEY",
        help="run only this scenario (partition key or name; repeatable) through every stage: the market bars "
             "of its symbols, the catalog, then each scenario-partitioned asset for just these keys",
    )  # fmt: skip
    run.add_argument("--json", action="store_true", help="print a machine-readable summary on stdout")
    run.add_argument("--verbose", action="store_true", help="show Dagster's own log lines and tracebacks")
    run.set_defaults(handler=_cmd_run)

    ui = commands.add_parser("ui", help="the Dagster UI (webserver and daemon) on this project's instance")
    ui.add_argument("--port", type=int, default=3000)
    ui.add_argument("--host", default="127.0.0.1")
    ui.set_defaults(handler=_cmd_ui)

    services = commands.add_parser("services", help="the embedded PostgreSQL and Redis")
    services.add_argument("action", choices=("start", "stop", "status"))
    services.add_argument("--json", action="store_true")
    services.set_defaults(handler=_cmd_services)

    data = commands.add_parser("data", help="market data files")
    data_commands = data.add_subparsers(title="data commands")
    generate = data_commands.add_parser("generate", help="write the seeded synthetic bars (Binance kline .csv.gz)")
    generate.add_argument("--out", type=Path, help="target folder (default: $STRESS_DATA_DIR/bars)")
    generate.add_argument("--days", type=int, default=None, help="number of days (default: 90)")
    generate.add_argument("--seed", type=int, default=None, help="random seed (default: the shipped data's)")
    generate.add_argument("--force", action="store_true", help="rewrite files that already exist")
    generate.add_argument(
        "--calendar", default=None, help="session bars of an exchange calendar (XNYS, CMES...); default: the "
        "shipped 24/7 crypto files"
    )  # fmt: skip
    generate.add_argument("--symbols", default=None, help="with --calendar: comma-separated symbols (default: the "
                          "calibrated symbols of that calendar in symbols.yaml)")  # fmt: skip
    generate.add_argument("--interval", default="1m", help="with --calendar: bar interval (1m, 5m, 1h, 1d...)")
    generate.add_argument("--start", default=None, help="with --calendar: first day, UTC (default: 2024-01-01)")
    generate.set_defaults(handler=_cmd_data_generate)

    scenarios = commands.add_parser("scenarios", help="the stress scenario library (data/stress_packs)")
    scenario_commands = scenarios.add_subparsers(title="scenario commands")
    listing = scenario_commands.add_parser("list", help="every scenario of every valid pack")
    listing.add_argument("--json", action="store_true", help="the library listing as JSON")
    listing.add_argument("--dir", type=Path, help="pack folder (default: $STRESS_DATA_DIR/stress_packs)")
    listing.set_defaults(handler=_cmd_scenarios_list)
    validate = scenario_commands.add_parser("validate", help="validate pack files (exit 2 on the first problem)")
    validate.add_argument("files", nargs="+", type=Path)
    validate.set_defaults(handler=_cmd_scenarios_validate)

    bench = commands.add_parser("bench", help="benchmarks behind the README's performance figures")
    bench.add_argument("suite", choices=("market", "transforms", "sim", "state", *BENCH_MODULES))
    bench.add_argument("--json", action="store_true")
    bench.add_argument("--repeat", type=int, default=3, help="timed calls per benchmark (best is reported)")
    bench.add_argument("--seed", type=int, default=None, help="faults: the campaign's seed (replays it exactly)")
    bench.add_argument("--schedules", type=int, default=None, help="faults: random fault schedules to run")
    bench.add_argument("--seconds", type=float, default=None, help="decisions: how long the load runs")
    bench.add_argument("--rate", type=float, default=None, help="decisions: decisions per second sent")
    bench.add_argument("--decider", default="", help="decisions: a decision function or risk governor, "
                       "pkg.mod:callable (default: the risk stack with its state in Redis)")  # fmt: skip
    bench.add_argument("--cpu", type=int, default=None, help="decisions: run the flood on this CPU, with the "
                       "embedded Redis beside it (its affinity restored after)")  # fmt: skip
    bench.add_argument("--workers", type=int, default=0, help="sweep: Celery workers (0: in process)")
    bench.add_argument("--partitions", type=int, default=100, help="sweep: sweep points (partitions)")
    bench.add_argument("--points-per-step", type=int, default=None, help="sweep: points per step (batch)")
    bench.add_argument("--graphql", action="store_true", help="sweep: also time the asset page through GraphQL")
    bench.add_argument("--check", action="store_true", help="sweep: compare every row with an in-process run")
    bench.set_defaults(handler=_cmd_bench)
    for module in COMMAND_MODULES:
        importlib.import_module(module).register(commands)
    return parser


# ---------------------------------------------------------------------------------------------- run


class ProjectError(Exception):
    """The command was started where it cannot find the project's data or Dagster instance."""


def dagster_home(environ: Mapping[str, str] | None = None, cwd: Path | None = None) -> Path:
    """The Dagster instance of the CLI, the UI and the make targets (one rule, here only).

    DAGSTER_HOME when it is set; otherwise the project root, which is the working directory when it
    holds ``dagster.yaml``. Anything else is an error that names both ways out.
    """
    env = os.environ if environ is None else environ
    if env.get("DAGSTER_HOME"):
        home = Path(env["DAGSTER_HOME"]).expanduser().resolve()
        if not home.is_dir():
            raise ProjectError(f"DAGSTER_HOME={env['DAGSTER_HOME']} is not a directory")
        return home
    root = (cwd or Path.cwd()).resolve()
    if not (root / "dagster.yaml").is_file():
        raise ProjectError(
            f"DAGSTER_HOME is not set and {root} is not a project directory (it has no dagster.yaml): "
            "run from the project directory, or set DAGSTER_HOME to the Dagster instance to use"
        )
    return root


def _project(environ: Mapping[str, str] | None = None):
    """The settings and Dagster instance folder of a command that changes state, or a ProjectError.

    Nothing is created or started here, so a command refused for being outside a project changes nothing.
    """
    from stress_pipeline.settings import get_settings

    env = os.environ if environ is None else environ
    settings = get_settings(dict(env))
    if not settings.bars_dir.is_dir() and not settings.stress_packs_dir.is_dir():
        where = "STRESS_DATA_DIR" if env.get("STRESS_DATA_DIR") else "the default ./data (STRESS_DATA_DIR is unset)"
        raise ProjectError(
            f"no data directory: {settings.data_dir} ({where}) has neither bars/ nor stress_packs/. "
            "Run from the project directory, or set STRESS_DATA_DIR to a folder holding bars/ and stress_packs/"
        )
    return settings, dagster_home(env)


def _cmd_run(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    settings, home = _project()
    scenario_keys = _scenario_keys(settings, args.scenario) if args.scenario else None
    os.environ["DAGSTER_HOME"] = str(home)
    spares = []
    if not (args.select or args.scenario):
        # The whole pipeline: its drills will run in a process of their own, which loads the project
        # now, on the other core, while this one does; it waits idle until the runner opens it.
        from stress_pipeline.defs import build_definitions
        from stress_pipeline.defs.beside import RunnerProcess

        spares.append(RunnerProcess(build_definitions, args.verbose).spawn())

    import dagster as dg

    from stress_pipeline.defs import build_definitions
    from stress_pipeline.defs.partitions import SCENARIOS_PARTITIONS_NAME, SYMBOLS_PARTITIONS_NAME
    from stress_pipeline.defs.runner import Runner, register_symbols, resolve_selection
    from stress_pipeline.services import resolve_service_urls, service_status

    progress = RunProgress(quiet=args.json)
    progress.say(f"DAGSTER_HOME={home}  STRESS_HOME={settings.home}  data={settings.data_dir}")
    resolve_service_urls(settings)
    instance = dg.DagsterInstance.get()
    new_symbols = register_symbols(instance, settings)
    if new_symbols:
        progress.say(f"registered symbols found on disk: {', '.join(new_symbols)}")
    defs = build_definitions()
    keys = resolve_selection(defs, args.select, partitioned_by=SCENARIOS_PARTITIONS_NAME if scenario_keys else None)
    partitions = None
    if scenario_keys is not None:
        chosen, symbols = scenario_keys
        partitions = {SCENARIOS_PARTITIONS_NAME: chosen, SYMBOLS_PARTITIONS_NAME: symbols}
        progress.say(f"scenarios {', '.join(chosen)} on {', '.join(symbols)}")
    setup = time.perf_counter() - started
    runner = Runner(
        defs, instance, verbose=args.verbose, on_run=progress.run_started, on_step=progress.step_done,
        on_run_done=progress.run_done, defs_factory=build_definitions, spares=spares,
    )  # fmt: skip
    summary = runner.run(keys, partitions=partitions)
    elapsed = time.perf_counter() - started
    phases = {"setup": setup, **summary.group_seconds, "Dagster runs": summary.overhead_seconds}
    services = service_status(settings)
    from stress_pipeline.run_report import run_json, run_report

    if args.json:
        print(json.dumps(run_json(summary, services, phases, elapsed), indent=2, default=str))
    else:
        print(run_report(summary, services, phases, elapsed, settings))
    global _leave_at_once
    _leave_at_once = True
    return EXIT_OK if summary.ok else EXIT_FAILED


def _scenario_keys(settings, wanted: list[str]) -> tuple[list[str], list[str]]:
    """The partition keys of the scenarios named on the command line, and the symbols they need."""
    from stress_pipeline.market.symbols import discover_symbol_files
    from stress_pipeline.scenarios import scenario_key
    from stress_pipeline.scenarios.catalog import BASELINE_KEY, build_catalog

    on_disk, budget = sorted(discover_symbol_files(settings.bars_dir)), settings.scenario_memory_bytes
    catalog = build_catalog(settings.stress_packs_dir, known_symbols=on_disk, memory_budget=budget)
    by_key = {scenario.key: scenario for scenario in catalog.scenarios}
    keys, symbols = [], set()
    for name in wanted:
        key = BASELINE_KEY if name == BASELINE_KEY else scenario_key(name)
        if key == BASELINE_KEY:
            symbols.update(on_disk)
        elif key in by_key:
            symbols.update(by_key[key].symbols)
        else:
            known = ", ".join([BASELINE_KEY, *by_key]) or "none"
            raise ProjectError(f"no scenario {name!r} in {settings.stress_packs_dir} (partition keys: {known})")
        keys.append(key)
    return list(dict.fromkeys(keys)), sorted(symbols)


def _cmd_ui(args: argparse.Namespace) -> int:
    """Replace this process with `dagster dev` on the same instance `run` uses."""
    _, home = _project()
    dagster = Path(sys.executable).parent / "dagster"
    workspace = Path.cwd() / "workspace.yaml"
    target = ["-w", str(workspace)] if workspace.is_file() else ["-m", "stress_pipeline.definitions"]
    command = [str(dagster), "dev", *target, "-h", args.host, "-p", str(args.port)]
    print(f"DAGSTER_HOME={home}  UI at http://{args.host}:{args.port}", file=sys.stderr, flush=True)
    # `dagster dev` is superseded by `dg dev` (a separate package this project does not install): say so
    # once here rather than warn in every process the UI starts.
    quiet = ",".join(filter(None, [os.environ.get("PYTHONWARNINGS"), "ignore:Function `dev_command` is superseded"]))
    os.execve(command[0], command, {**os.environ, "DAGSTER_HOME": str(home), "PYTHONWARNINGS": quiet})
    return EXIT_OK  # not reached


class RunProgress:
    """Progress on stderr: each run as it starts, each step as it finishes, each verdict."""

    def __init__(self, *, quiet: bool):
        self.quiet = quiet

    def say(self, message: str) -> None:
        if not self.quiet:
            print(message, file=sys.stderr, flush=True)

    def run_started(self, number: int, total: int, label: str, partitions) -> None:
        from stress_pipeline.run_report import partition_list

        self.say(f"[group {number}/{total}] {label}")
        if len(partitions) > 1:
            self.say(partition_list(partitions, indent="    "))

    def step_done(self, step) -> None:
        from stress_pipeline.run_report import step_done_line

        self.say("  " + step_done_line(step))

    def run_done(self, outcomes, verdicts) -> None:
        from stress_pipeline.run_report import run_done_lines

        for line in run_done_lines(outcomes, verdicts):
            self.say("    " + line)


# ----------------------------------------------------------------------------------------- services


def _cmd_services(args: argparse.Namespace) -> int:
    from stress_pipeline import services
    from stress_pipeline.settings import get_settings

    settings = get_settings()
    if args.action == "start":
        services.resolve_service_urls(settings)
    elif args.action == "stop":
        stopped = services.stop_embedded(settings)
        if not args.json:
            print("stopped the embedded servers" if stopped else "no embedded server was running")
    rows = services.service_status(settings)
    if args.json:
        print(json.dumps(rows, indent=2, default=str))
    elif args.action != "stop":
        print(services.format_status_table(rows))
    return EXIT_OK


# --------------------------------------------------------------------------------------------- data


def _cmd_data_generate(args: argparse.Namespace) -> int:
    from stress_pipeline.market import synthetic
    from stress_pipeline.settings import get_settings

    settings = get_settings()
    out = args.out or settings.bars_dir
    options = {k: v for k, v in (("days", args.days), ("seed", args.seed)) if v is not None}
    started = time.perf_counter()
    if args.calendar is not None and args.calendar != "24/7":
        return _generate_sessions(args, out, settings.symbols_file, options, started)
    if args.symbols or args.start or args.interval != "1m":
        print("--symbols, --interval and --start go with --calendar (the shipped files are fixed)", file=sys.stderr)
        return EXIT_USAGE
    if args.force:
        for path in synthetic.shipped_file_paths(out, **options):
            path.unlink(missing_ok=True)
    written = synthetic.ensure_shipped_data(out, **options)
    for path in written:
        print(path)
    print(f"wrote {len(written)} file(s) to {out} in {time.perf_counter() - started:.1f}s", file=sys.stderr)
    return EXIT_OK


def _generate_sessions(args: argparse.Namespace, out: Path, symbols_file: Path, options: dict, started: float) -> int:
    """`data generate --calendar`: session bars of an exchange calendar as Binance kline files."""
    from stress_pipeline.market import synthetic
    from stress_pipeline.market.calendars import check_calendar
    from stress_pipeline.market.symbols import symbol_market

    if args.symbols:
        symbols = [s.strip().upper() for s in args.symbols.split(",") if s.strip()]
    else:
        symbols = [s for s in synthetic.CALIBRATION if symbol_market(symbols_file, s).calendar == args.calendar]
    try:
        check_calendar(args.calendar)
        if not symbols:
            raise ValueError(f"no calibrated symbol trades on {args.calendar} in {symbols_file}; pass --symbols")
        bars = synthetic.generate_bars(symbols, start=args.start or synthetic.DEFAULT_START, interval=args.interval,
                                       calendar=args.calendar, **options)  # fmt: skip
    except ValueError as err:
        print(f"data generate: {err}", file=sys.stderr)
        return EXIT_USAGE
    written = [path for symbol in sorted(set(symbols)) for path in synthetic.write_binance_klines(bars, out, symbol)]
    for path in written:
        print(path)
    print(f"wrote {len(written)} file(s) of {args.calendar} session bars to {out} in "
          f"{time.perf_counter() - started:.1f}s", file=sys.stderr)  # fmt: skip
    return EXIT_OK


# -------------------------------------------------------------------------------------------- bench


def _cmd_bench(args: argparse.Namespace) -> int:
    if args.suite in BENCH_MODULES:
        from stress_pipeline.settings import get_settings

        args.settings = get_settings()  # the suites read no environment: the CLI hands them the settings
        return importlib.import_module(BENCH_MODULES[args.suite]).main(args)

    if args.suite == "transforms":
        from stress_pipeline.bench.transforms import format_transform_bench, run_transforms_bench

        rows = run_transforms_bench(repeat=args.repeat)
        print(json.dumps([row.as_dict() for row in rows], indent=2) if args.json else format_transform_bench(rows))
        return EXIT_OK if all(row.met for row in rows) else EXIT_FAILED

    if args.suite == "state":
        from stress_pipeline.bench.state import format_state_bench, run_state_bench, state_targets_met
        from stress_pipeline.settings import get_settings

        results = run_state_bench(get_settings(), repeat=args.repeat)
        if args.json:
            print(json.dumps({k: [m.as_dict() for m in v] for k, v in results.items()}, indent=2))
        else:
            print(format_state_bench(results))
        return EXIT_OK if state_targets_met(results) else EXIT_FAILED

    if args.suite == "sim":
        from stress_pipeline.bench import sim

        backtest = sim.run_backtest_bench(repeat=args.repeat)
        paper = sim.run_paper_bench(repeat=args.repeat)
        met = all(sim.backtest_target_met(m) for m in backtest) and all(sim.paper_target_met(m) for m in paper)
        if args.json:
            print(json.dumps({"backtest": [m.as_dict() for m in backtest], "paper": [m.as_dict() for m in paper]},
                             indent=2))
        else:
            print(sim.format_backtest_bench(backtest) + "\n\n" + sim.format_paper_bench(paper))
        return EXIT_OK if met else EXIT_FAILED

    from stress_pipeline.bench.market import format_market_bench, market_targets_met, run_market_bench
    from stress_pipeline.settings import get_settings

    settings = get_settings()
    rows = run_market_bench(settings.bars_dir, settings.symbols_file, repeat=args.repeat)
    if args.json:
        print(json.dumps([row.as_dict() for row in rows], indent=2))
    else:
        print(format_market_bench(rows))
    return EXIT_OK if market_targets_met(rows) else EXIT_FAILED


# ---------------------------------------------------------------------------------------- scenarios


def _cmd_scenarios_list(args: argparse.Namespace) -> int:
    from stress_pipeline.market.symbols import discover_symbol_files
    from stress_pipeline.run_report import format_table
    from stress_pipeline.scenarios.catalog import BASELINE_KEY, build_catalog
    from stress_pipeline.settings import get_settings

    settings = get_settings()
    directory = args.dir or settings.stress_packs_dir
    known, budget = list(discover_symbol_files(settings.bars_dir)) or None, settings.scenario_memory_bytes
    catalog = build_catalog(directory, known_symbols=known, memory_budget=budget)
    entries = [
        {"key": scenario.key, **scenario.library_entry, "faults": [_fault_entry(f) for f in scenario.faults]}
        for scenario in catalog.scenarios
    ]
    if args.json:
        print(json.dumps(entries, indent=2))
    else:
        rows = [("key", "name", "type", "severity", "symbols", "faults", "parameters")]
        for entry in entries:
            params = ", ".join(f"{k}={v}" for k, v in entry["parameters"].items())
            faults = ", ".join(_fault_text(fault) for fault in entry["faults"]) or "-"
            rows.append(
                (entry["key"], entry["name"], entry["type"], entry["severity"], ",".join(entry["symbols"]), faults,
                 _clip(params, 50))
            )  # fmt: skip
        print(format_table(rows))
        print(f"\n{len(entries)} scenarios in {len(catalog.packs)} packs under {directory}; the partition key "
              f"{BASELINE_KEY!r} is every symbol's unstressed data. Run one: stress-pipeline run --scenario KEY")
    for err in catalog.errors:
        print(f"rejected: {err}", file=sys.stderr)
    return EXIT_OK if not catalog.errors else EXIT_USAGE


def _fault_entry(fault) -> dict[str, object]:
    """A scenario's fault as plain values: kind, at_s, duration_s and any parameters it has."""
    return {key: value for key, value in fault.model_dump(mode="json").items() if value not in ({}, None)}


def _fault_text(fault: Mapping[str, object]) -> str:
    """``redis_down@36000s+60s``: kind, start and duration in sim seconds."""
    text = str(fault.get("kind", "?"))
    if "at_s" in fault:
        text += f"@{float(fault['at_s']):g}s"
    if fault.get("duration_s"):
        text += f"+{float(fault['duration_s']):g}s"
    return text


def _cmd_scenarios_validate(args: argparse.Namespace) -> int:
    from stress_pipeline.market.symbols import discover_symbol_files
    from stress_pipeline.scenarios.packs import ScenarioPackError, check_unique_names, load_pack
    from stress_pipeline.settings import get_settings

    known = list(discover_symbol_files((settings := get_settings()).bars_dir)) or None
    budget = settings.scenario_memory_bytes
    try:
        packs = [load_pack(path, known_symbols=known, memory_budget=budget) for path in args.files]
        check_unique_names(packs)
    except ScenarioPackError as err:
        print(f"stress-pipeline: invalid pack: {err}", file=sys.stderr)
        return EXIT_USAGE
    for pack in packs:
        print(f"{pack.path}: ok ({len(pack.scenarios)} scenario(s): {', '.join(s.name for s in pack.scenarios)})")
    return EXIT_OK


def _clip(text: str, width: int = 70) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


if __name__ == "__main__":
    console_main()
