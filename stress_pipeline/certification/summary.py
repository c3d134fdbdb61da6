"""A stored certification as the CLI prints it: text for a person, JSON for a program."""

from __future__ import annotations

from collections.abc import Sequence

from stress_pipeline.certification.decide import Certification
from stress_pipeline.certification.gates import GateResult
from stress_pipeline.certification.history import REQUIRED_STREAK, Recorded

COMPUTED, FROM_HISTORY = "computed", "history"


def certification_json(recorded: Recorded, certification: Certification, source: str) -> dict[str, object]:
    """Everything the certification says, and whether it was computed now or read from the history."""
    return {
        "source": source,
        "partition": recorded.partition,
        "certification_id": recorded.certification_id,
        "recorded_at": recorded.recorded_at.isoformat(),
        "verdict": certification.verdict,
        "go": certification.passed,
        "reasons": list(certification.reasons),
        "core_suite_passed": recorded.core_passed,
        "streak": recorded.streak,
        "required_streak": REQUIRED_STREAK,
        "certified": recorded.certified,
        "code_version": recorded.code_version,
        "data_fingerprint": recorded.data_fingerprint,
        "gates": [gate.row() for gate in certification.gates],
        "readiness": certification.readiness.to_dict("records"),
    }


def certification_text(recorded: Recorded, certification: Certification, source: str) -> str:
    """The verdict first, then the gates, the open checklist items and the streak."""
    how = (
        "computed now"
        if source == COMPUTED
        else f"read from the history (recorded {recorded.recorded_at:%Y-%m-%d %H:%M:%S %Z})"
    )
    lines = [
        f"certification {recorded.partition}: {certification.verdict}  ({how}; #{recorded.certification_id})",
        "",
    ]
    width = max(len(gate.gate) for gate in certification.gates)
    for gate in certification.gates:
        lines.append(f"  {gate.verdict:<8} {gate.gate:<{width}}  {gate.detail}  [source: {gate.source}]")
    open_items = certification.readiness.loc[~certification.readiness["done"], "item"].tolist()
    done = len(certification.readiness) - len(open_items)
    opened = f"; open: {', '.join(open_items)}" if open_items else ""
    lines += ["", f"readiness checklist: {done} of {len(certification.readiness)} done{opened}"]
    if certification.reasons:
        lines += ["", f"{certification.verdict} because:"] + [f"  - {reason}" for reason in certification.reasons]
    state = "CERTIFIED" if recorded.certified else "not certified"
    lines += ["", f"core suite streak: {recorded.streak} consecutive passes of {REQUIRED_STREAK} required: {state}",
              f"code {recorded.code_version}; data fingerprint {recorded.data_fingerprint[:16]}"]  # fmt: skip
    return "\n".join(lines)


def gate_line(gate: GateResult) -> dict[str, str]:
    """What the end of a run prints of one gate (kept in the asset's metadata)."""
    return {"gate": gate.gate, "verdict": gate.verdict, "detail": gate.detail, "source": gate.source}


def run_lines(steps: Sequence) -> list[str]:
    """The certification at the end of `stress-pipeline run`: the verdict, each gate with its source,
    the streak and where the report is (from the steps' materialisation metadata)."""
    lines: list[str] = []
    for step in steps:
        meta = step.metadata
        if step.asset == "certification" and step.status == "materialized" and "verdict" in meta:
            state = "certified" if meta.get("certified") else "not certified"
            streak = f"core suite streak {meta.get('streak')} of {REQUIRED_STREAK}: {state}"
            lines += ["", f"certification {step.partition}: {meta['verdict']}  ({streak})"]
            lines += [f"  {g['verdict']:<8} {g['gate']}: {g['detail']}  [source: {g['source']}]"
                      for g in meta.get("gates_json") or []]  # fmt: skip
        elif step.asset == "certification_report" and step.status == "materialized" and "report" in meta:
            lines.append(f"certification report {step.partition}: {meta['report']}")
    return lines
