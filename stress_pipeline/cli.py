"""The `stress-pipeline` command line.

    stress-pipeline run [--select SELECTION] [--json] [--verbose]
    stress-pipeline services start|stop|status [--json]
    stress-pipeline data generate [--out DIR] [--days N] [--seed N] [--force]
    stress-pipeline scenarios list [--json] | validate FILE...
    stress-pipeline bench market|transforms|sim|state [--json] [--repeat N]

Heavy imports (Dagster, pandas) happen inside the commands so that `--help` answers at once.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return args.handler(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
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
    run.add_argument("--json", action="store_true", help="print a machine-readable summary on stdout")
    run.add_argument("--verbose", action="store_true", help="show Dagster's own log lines and tracebacks")
    run.set_defaults(handler=_cmd_run)

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
    bench.add_argument("suite", choices=("market", "transforms", "sim", "state"))
    bench.add_argument("--json", action="store_true")
    bench.add_argument("--repeat", type=int, default=3, help="timed calls per benchmark (best is reported)")
    bench.set_defaults(handler=_cmd_bench)
    return parser


# ---------------------------------------------------------------------------------------------- run


def _cmd_run(args: argparse.Namespace) -> int:
    from stress_pipeline.defs.runner import ensure_dagster_home

    dagster_home = ensure_dagster_home()

    import dagster as dg

    from stress_pipeline.defs import build_definitions
    from stress_pipeline.defs.runner import register_symbols, resolve_selection, run_selection
    from stress_pipeline.services import resolve_service_urls, service_status
    from stress_pipeline.settings import get_settings

    settings = get_settings()
    say = _progress_printer(quiet=args.json)
    started = time.perf_counter()
    say(f"DAGSTER_HOME={dagster_home}  STRESS_HOME={settings.home}  data={settings.data_dir}")
    resolve_service_urls(settings)
    instance = dg.DagsterInstance.get()
    new_symbols = register_symbols(instance, settings)
    if new_symbols:
        say(f"registered symbols found on disk: {', '.join(new_symbols)}")
    defs = build_definitions()
    keys = resolve_selection(defs, args.select)
    outcomes = run_selection(
        defs,
        instance,
        keys,
        on_step=lambda i, n, label: say(f"[group {i}/{n}] {label} ..."),
        on_done=lambda steps: [say(f"      {_step_line(step)}") for step in steps],
        verbose=args.verbose,
    )
    elapsed = time.perf_counter() - started
    ok = bool(outcomes) and all(step.ok for step in outcomes)
    services = service_status(settings)
    if args.json:
        print(json.dumps(_run_json(outcomes, services, ok, elapsed), indent=2, default=str))
    else:
        print(_run_report(outcomes, services, ok, elapsed, settings))
    return EXIT_OK if ok else EXIT_FAILED


def _progress_printer(*, quiet: bool):
    def say(message: str) -> None:
        if not quiet:
            print(message, file=sys.stderr, flush=True)

    return say


def _check_word(step, name: str, passed: bool, *, short: bool = False) -> str:
    if passed:
        return "pass" if short else "passed"
    return "warn" if name in step.warnings else ("FAIL" if short else "FAILED")


def _step_line(step) -> str:
    checks = ", ".join(f"{name} {_check_word(step, name, passed)}" for name, passed in step.checks.items())
    line = f"{step.status} in {step.seconds:.1f}s" + (f"; {checks}" if checks else "")
    return line + (f"\n      error: {step.error}" if step.error else "")


def _run_json(outcomes, services, ok: bool, elapsed: float) -> dict[str, object]:
    return {
        "ok": ok,
        "seconds": round(elapsed, 3),
        "steps": [
            {
                "asset": step.asset,
                "partition": step.partition,
                "status": step.status,
                "seconds": round(step.seconds, 3),
                "checks": step.checks,
                "error": step.error,
                "metadata": {k: v for k, v in step.metadata.items() if not _is_bulky(v)},
                "check_metadata": step.check_metadata,
            }
            for step in outcomes
        ],
        "services": services,
    }


def _is_bulky(value: object) -> bool:
    return isinstance(value, str) and len(value) > 500


def _run_report(outcomes, services, ok: bool, elapsed: float, settings) -> str:
    from stress_pipeline.services import format_status_table

    rows = [("asset", "partition", "status", "rows", "first", "last", "interval", "gaps", "checks")]
    for step in outcomes:
        meta = step.metadata
        checks = ", ".join(
            f"{name}: {_check_word(step, name, passed, short=True)}" for name, passed in step.checks.items()
        )
        rows.append(
            (
                step.asset,
                step.partition or "-",
                step.status,
                str(meta.get("rows", "")),
                str(meta.get("first_ts", ""))[:16],
                str(meta.get("last_ts", ""))[:16],
                str(meta.get("bar_interval", "")),
                str(meta.get("gaps", "")),
                checks or "-",
            )
        )
    lines = [_table(rows), ""]
    for step in outcomes:
        if step.error:
            lines.append(f"{step.asset}[{step.partition}] {step.status}: {step.error}")
        for name, passed in step.checks.items():
            if not passed:
                meta = step.check_metadata.get(name, {})
                failed = meta.get("failed_expectations", [])
                names = ", ".join(f"{f['name']} ({f['unexpected_count']})" for f in failed) if failed else ""
                if isinstance(meta.get("failing"), dict):
                    names = ", ".join(meta["failing"].get(step.partition, []))
                verdict = "warns" if name in step.warnings else "failed"
                lines.append(f"{step.asset}[{step.partition}] {name} {verdict}: {names}".rstrip(": "))
    passed = sum(step.ok for step in outcomes)
    verdict = "all passed" if ok else "FAILURES above"
    lines.append(f"{passed}/{len(outcomes)} partitions ok (materialised, checks pass) in {elapsed:.1f}s: {verdict}")
    lines.append("")
    lines.append(format_status_table(services))
    lines.append("")
    lines.append("Next:")
    lines.append("  make ui                            asset graph, runs, plots and checks: http://127.0.0.1:3000")
    lines.append(f"  ls {settings.storage_dir}")
    lines.append("                                     the materialised tables (Parquet, one file per partition)")
    lines.append("  stress-pipeline run --json         this summary, machine-readable")
    return "\n".join(lines)


def _table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    out = []
    for n, row in enumerate(rows):
        out.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
        if n == 0:
            out.append("  ".join("-" * width for width in widths))
    return "\n".join(out)


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

    out = args.out or get_settings().bars_dir
    options = {k: v for k, v in (("days", args.days), ("seed", args.seed)) if v is not None}
    started = time.perf_counter()
    if args.force:
        for path in synthetic.shipped_file_paths(out, **options):
            path.unlink(missing_ok=True)
    written = synthetic.ensure_shipped_data(out, **options)
    for path in written:
        print(path)
    print(f"wrote {len(written)} file(s) to {out} in {time.perf_counter() - started:.1f}s", file=sys.stderr)
    return EXIT_OK


# -------------------------------------------------------------------------------------------- bench


def _cmd_bench(args: argparse.Namespace) -> int:
    from stress_pipeline.bench.timing import format_measurements

    if args.suite == "transforms":
        from stress_pipeline.bench.transforms import format_transform_bench, run_transforms_bench

        rows = run_transforms_bench(repeat=args.repeat)
        print(json.dumps([row.as_dict() for row in rows], indent=2) if args.json else format_transform_bench(rows))
        return EXIT_OK if all(row.met for row in rows) else EXIT_FAILED

    if args.suite == "state":
        from stress_pipeline.bench.state import format_state_bench, run_state_bench, state_targets_met

        results = run_state_bench(repeat=args.repeat)
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

    from stress_pipeline.bench.market import run_market_bench
    from stress_pipeline.settings import get_settings

    settings = get_settings()
    measurements = run_market_bench(settings.bars_dir, settings.symbols_file, repeat=args.repeat)
    if args.json:
        print(json.dumps([m.as_dict() for m in measurements], indent=2))
    else:
        print(format_measurements(measurements))
    return EXIT_OK


# ---------------------------------------------------------------------------------------- scenarios


def _cmd_scenarios_list(args: argparse.Namespace) -> int:
    from stress_pipeline.market.symbols import discover_symbol_files
    from stress_pipeline.scenarios.catalog import build_catalog
    from stress_pipeline.settings import get_settings

    settings = get_settings()
    directory = args.dir or settings.stress_packs_dir
    catalog = build_catalog(directory, known_symbols=list(discover_symbol_files(settings.bars_dir)) or None)
    entries = [scenario.library_entry for scenario in catalog.scenarios]
    if args.json:
        print(json.dumps(entries, indent=2))
    else:
        rows = [("name", "type", "severity", "symbols", "parameters")]
        for entry in entries:
            params = ", ".join(f"{k}={v}" for k, v in entry["parameters"].items())
            rows.append((entry["name"], entry["type"], entry["severity"], ",".join(entry["symbols"]), _clip(params)))
        print(_table(rows))
        print(f"\n{len(entries)} scenarios in {len(catalog.packs)} packs under {directory}")
    for err in catalog.errors:
        print(f"rejected: {err}", file=sys.stderr)
    return EXIT_OK if not catalog.errors else EXIT_USAGE


def _cmd_scenarios_validate(args: argparse.Namespace) -> int:
    from stress_pipeline.market.symbols import discover_symbol_files
    from stress_pipeline.scenarios.packs import ScenarioPackError, check_unique_names, load_pack
    from stress_pipeline.settings import get_settings

    known = list(discover_symbol_files(get_settings().bars_dir)) or None
    try:
        packs = [load_pack(path, known_symbols=known) for path in args.files]
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
    sys.exit(main())
