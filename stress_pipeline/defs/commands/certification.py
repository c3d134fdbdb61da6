"""The `certify` and `report` commands (enabled through ``COMMAND_MODULES`` in cli.py).

    stress-pipeline certify [--json] [--latest]    exit 0 on GO, 1 on NO-GO
    stress-pipeline report [--out FILE]

``certify`` materialises today's ``certification`` (from what the pipeline stored; it records the
certification in the history) and prints it; with ``--latest`` it computes nothing and reads the
newest certification of the history. Either way the output says which. ``report`` materialises
today's ``certification_report`` (and the certification first when today has none) and prints the
file's path, or copies it to ``--out``.
"""

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

EXIT_GO, EXIT_NO_GO, EXIT_USAGE = 0, 1, 2


def register(commands: argparse._SubParsersAction) -> None:
    certify = commands.add_parser("certify", help="go / no-go: today's certification (exit 0 on GO, 1 on NO-GO)")
    certify.add_argument("--json", action="store_true", help="print the certification as JSON")
    certify.add_argument("--latest", action="store_true", help="read the latest recorded certification, compute none")
    certify.add_argument("--verbose", action="store_true", help="show Dagster's own log lines and tracebacks")
    certify.set_defaults(handler=_cmd_certify)
    report = commands.add_parser("report", help="today's certification report: one self-contained HTML file")
    report.add_argument("--out", type=Path, help="copy the report to FILE (default: print where it is stored)")
    report.add_argument("--verbose", action="store_true", help="show Dagster's own log lines and tracebacks")
    report.set_defaults(handler=_cmd_report)


def _cmd_certify(args: argparse.Namespace) -> int:
    from stress_pipeline.certification import history
    from stress_pipeline.certification.summary import COMPUTED, FROM_HISTORY, certification_json, certification_text

    settings, home = _project()
    engine = _engine(settings)
    if args.latest:
        source, partition = FROM_HISTORY, None
    else:
        source, partition = COMPUTED, _materialise(settings, home, ["certification"], verbose=args.verbose)
    history.migrate(engine)
    recorded = history.latest(engine, partition=partition)
    if recorded is None:
        print("stress-pipeline: error: no certification recorded yet: run `stress-pipeline certify`", file=sys.stderr)
        return EXIT_USAGE
    result = history.gates_of(engine, recorded.certification_id)
    if args.json:
        print(json.dumps(certification_json(recorded, result, source), indent=2, default=str))
    else:
        print(certification_text(recorded, result, source))
    return EXIT_GO if result.passed else EXIT_NO_GO


def _cmd_report(args: argparse.Namespace) -> int:
    from stress_pipeline.defs.certification.assets import REPORT_NAME, certification_days

    settings, home = _project()
    day = certification_days.get_last_partition_key()
    stored = settings.paths.asset_file(("certification",), day)
    assets = ["certification_report"] if stored.exists() else ["certification", "certification_report"]
    _materialise(settings, home, assets, verbose=args.verbose)
    path = settings.paths.report_file(REPORT_NAME, day)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, args.out)
        print(f"certification report {day}: {args.out} (stored at {path})")
    else:
        print(f"certification report {day}: {path}")
    return 0


def _project():
    from stress_pipeline.cli import _project as project

    return project()


def _engine(settings):
    from stress_pipeline.services import postgres_engine, resolve_service_urls

    return postgres_engine(resolve_service_urls(settings).postgres_url)


def _materialise(settings, home: Path, names: list[str], *, verbose: bool) -> str:
    """Materialise today's partition of ``names`` through the project's runner; today's partition key."""
    os.environ["DAGSTER_HOME"] = str(home)
    import dagster as dg

    from stress_pipeline.defs import build_definitions
    from stress_pipeline.defs.certification.assets import certification_days
    from stress_pipeline.defs.runner import Runner

    defs = build_definitions()
    summary = Runner(defs, dg.DagsterInstance.get(), verbose=verbose).run([dg.AssetKey(name) for name in names])
    failed = [f"{s.asset}[{s.partition}]: {s.error}" for s in summary.steps if s.status == "failed"]
    if failed or not summary.steps:
        raise RuntimeError("the certification could not be computed: " + ("; ".join(failed) or "nothing ran"))
    return certification_days.get_last_partition_key()
