"""How the CLI shows a run: progress lines, the summary table, phase times and the JSON summary.

Plain formatting of what ``stress_pipeline.defs.runner`` returns (step outcomes, check verdicts,
finished steps); it imports neither Dagster nor the runner.
"""

from __future__ import annotations

import textwrap
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence

from stress_pipeline.certification.summary import run_lines as certification_lines
from stress_pipeline.verdicts.report import counts_text, outcome_lines

LIST_WIDTH = 110


def step_done_line(step) -> str:
    """``stressed_bars [24 partitions] materialized in 3.1s`` for a step that just finished."""
    names = ", ".join(step.names)
    where = _where(step.partitions)
    if not step.ok:
        return f"{names}{where} FAILED after {step.seconds:.1f}s: {step.error}"
    done = "materialized" if step.kind == "asset" else "evaluated"
    return f"{names}{where} {done} in {step.seconds:.1f}s"


def run_done_lines(outcomes: Sequence, verdicts: Sequence) -> list[str]:
    """After a run: every check's verdicts (partitions named), scenario partition changes, failures."""
    lines: list[str] = []
    by_check: dict[tuple[str, str], list] = defaultdict(list)
    for verdict in verdicts:
        by_check[(verdict.asset, verdict.check)].append(verdict)
    for (_asset, check), found in by_check.items():
        if len(found) == 1:
            verdict = found[0]
            where = f"[{verdict.partition}]" if verdict.partition is not None else ""
            text = f"{check}{where}: {verdict.status}"
            if verdict.status != "passed" and _detail(verdict):
                text += f" ({_detail(verdict)})"
            lines.append(text)
            continue
        statuses: dict[str, list[str]] = defaultdict(list)
        for verdict in found:
            statuses[verdict.status].append(str(verdict.partition))
        counts = ", ".join(f"{len(keys)} {status}" for status, keys in statuses.items())
        lines.append(f"{check} on {len(found)} partitions: {counts}")
        for verdict in found:
            if verdict.status != "passed":
                detail = f": {_detail(verdict)}" if _detail(verdict) else ""
                lines.append(f"  {check}[{verdict.partition}] {verdict.status}{detail}")
    for step in outcomes:
        if step.asset == "scenario_catalog":
            lines.extend(_partition_changes(step.metadata))
        if step.status == "failed" and step.error:
            lines.append(f"{step.asset}{_where((step.partition,))} failed: {_clip(step.error, 300)}")
    skipped = [step for step in outcomes if step.status == "skipped"]
    if skipped:
        names = sorted({step.asset for step in skipped})
        lines.append(f"skipped (an upstream step or a blocking check failed): {', '.join(names)}")
    return lines


def _partition_changes(metadata: Mapping[str, object]) -> list[str]:
    """What a catalog run did to the scenario partitions, from its metadata."""
    lines = []
    added = metadata.get("partitions_added") or []
    if added:
        lines.append("scenario partitions added: " + ", ".join(map(str, added)))
    for title, key in (("removed", "partitions_removed"), ("kept although no pack defines it", "partitions_kept")):
        for partition, reason in (metadata.get(key) or {}).items():
            lines.append(f"scenario partition {partition} {title}: {reason}")
    return lines


def phase_line(
    phases: Mapping[str, float], elapsed: float, beside: Mapping[str, float] | None = None, beside_wall: float = 0.0
) -> str:
    """The time by phase (asset group); ``beside``: the other processes', which ran meanwhile (the
    slowest of those running beside took ``beside_wall``)."""
    parts = ", ".join(f"{name} {seconds:.1f}s" for name, seconds in phases.items())
    if beside:
        others = ", ".join(f"{name} {seconds:.1f}s" for name, seconds in beside.items())
        parts += f"; meanwhile in other processes: {others}" + (f" ({beside_wall:.1f}s wall)" if beside_wall else "")
    return f"time by phase: {parts}; total {elapsed:.1f}s"


def check_word(status: str, *, short: bool = False) -> str:
    if status == "passed":
        return "pass" if short else "passed"
    if status == "failed":
        return "FAIL" if short else "FAILED"
    return status


def run_json(summary, services, phases: Mapping[str, float], elapsed: float) -> dict[str, object]:
    """The machine-readable summary: steps, every check verdict (with its partition), phases, services."""
    return {
        "ok": summary.ok,
        "seconds": round(elapsed, 3),
        "phases": {name: round(seconds, 3) for name, seconds in phases.items()},
        "beside_phases": {name: round(seconds, 3) for name, seconds in summary.beside_seconds.items()},
        "steps": [
            {
                "asset": step.asset,
                "partition": step.partition,
                "status": step.status,
                "seconds": round(step.seconds, 3),
                "step_seconds": round(step.step_seconds, 3),
                "checks": {verdict.check: verdict.status for verdict in step.verdicts},
                "error": step.error,
                "metadata": {k: v for k, v in step.metadata.items() if not _is_bulky(v)},
                "check_metadata": step.check_metadata,
            }
            for step in summary.steps
        ],
        "checks": [
            {
                "asset": verdict.asset,
                "check": verdict.check,
                "partition": verdict.partition,
                "status": verdict.status,
                "description": verdict.description,
            }
            for verdict in summary.checks
        ],
        "services": services,
    }


def run_report(summary, services, phases: Mapping[str, float], elapsed: float, settings) -> str:
    """The table a person reads at the end of `stress-pipeline run`, and what to look at next."""
    from stress_pipeline.services import format_status_table

    rows = [("asset", "partition", "status", "rows", "first", "last", "interval", "gaps", "checks")]
    for step in summary.steps:
        meta = step.metadata
        checks = ", ".join(f"{v.check}: {check_word(v.status, short=True)}" for v in step.verdicts)
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
    lines = [*verdict_section(summary.steps), format_table(rows), ""]
    for step in summary.steps:
        if step.error:
            lines.append(f"{step.asset}[{step.partition}] {step.status}: {step.error}")
    for verdict in summary.checks:
        if verdict.status != "passed":
            where = f"[{verdict.partition}]" if verdict.partition is not None else ""
            detail = _failure_detail(verdict)
            lines.append(f"{verdict.asset}{where} {verdict.check} {check_word(verdict.status)}{detail}")
    passed = sum(step.ok for step in summary.steps)
    warned = sum(verdict.status == "warn" for verdict in summary.checks)
    if not summary.ok:
        verdict_word = "FAILURES above"
    elif warned:
        verdict_word = f"the pipeline worked; {warned} check(s) warn: findings about the system under test, above"
    else:
        verdict_word = "all passed"
    lines.append(
        f"{passed}/{len(summary.steps)} partitions ok (materialised, checks pass) in {elapsed:.1f}s: {verdict_word}"
    )
    lines.extend(verdict_count_line(summary.steps))
    lines.extend(certification_lines(summary.steps))
    lines.append(phase_line(phases, elapsed, summary.beside_seconds, summary.beside_wall_seconds))
    lines.append("")
    lines.append(format_status_table(services))
    lines.append("")
    lines.append("Next:")
    lines.append("  make ui                            asset graph, runs, plots and checks: http://127.0.0.1:3000")
    lines.append(f"  ls {settings.storage_dir}")
    lines.append("                                     the materialised tables (one file per partition)")
    lines.append("  stress-pipeline run --json         this summary, machine-readable")
    return "\n".join(lines)


def verdict_section(steps: Sequence) -> list[str]:
    """The scenario verdicts of this run (from the ``scenario_verdicts`` step's metadata), printed first;
    none when the run did not judge the scenarios."""
    step = _verdicts_step(steps)
    if step is None:
        return []
    return [*outcome_lines(step.metadata["outcomes_json"], step.metadata.get("missing") or ()), ""]


def verdict_count_line(steps: Sequence) -> list[str]:
    """The verdict counts again at the end of the report."""
    step = _verdicts_step(steps)
    return [] if step is None else [f"scenario verdicts (listed first): {counts_text(step.metadata['outcomes_json'])}"]


def _verdicts_step(steps: Sequence):
    for step in steps:
        if step.asset == "scenario_verdicts" and step.metadata.get("outcomes_json") is not None:
            return step
    return None


def _failure_detail(verdict) -> str:
    detail = _detail(verdict, 300)
    return f": {detail}" if detail else ""


def _detail(verdict, width: int = 200) -> str:
    """Why a check did not pass: its description, else the failed expectations or listed failures."""
    if verdict.description:
        return _clip(verdict.description, width)
    failed = verdict.metadata.get("failed_expectations")
    if failed:
        return _clip(", ".join(f"{f['name']} ({f['unexpected_count']})" for f in failed), width)
    for key, value in verdict.metadata.items():
        if isinstance(value, list | tuple) and value:
            return _clip(f"{key}: " + ", ".join(map(str, value)), width)
    return ""


def format_table(rows: list[tuple[str, ...]]) -> str:
    """Left-aligned columns, a rule under the header row."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    out = []
    for n, row in enumerate(rows):
        out.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
        if n == 0:
            out.append("  ".join("-" * width for width in widths))
    return "\n".join(out)


def partition_list(partitions: Iterable[str | None], indent: str = "  ") -> str:
    """The partition keys of a run, wrapped."""
    text = ", ".join(str(p) for p in partitions)
    return textwrap.fill(text, LIST_WIDTH, initial_indent=indent, subsequent_indent=indent)


def _where(partitions: Sequence[str | None]) -> str:
    if not partitions or partitions == (None,):
        return ""
    if len(partitions) == 1:
        return f"[{partitions[0]}]"
    return f" [{len(partitions)} partitions]"


def _is_bulky(value: object) -> bool:
    return isinstance(value, str) and len(value) > 500


def _clip(text: str, width: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: width - 3] + "..."
