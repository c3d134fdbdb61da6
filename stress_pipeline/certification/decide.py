"""The certification of one day: every gate judged, the readiness checklist, GO or NO-GO with the reasons.

:func:`certify` takes what the pipeline stored (no Dagster): the scenario verdict table, the
divergence and reconciliation tables per scenario (with the partitions that were never materialised),
the thresholds and the readiness attestations. The result turns into one table (gates, checklist
items and the overall row, told apart by ``section``) that the asset stores, the history records and
the report and the CLI print; :meth:`Certification.from_table` reads it back.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from stress_pipeline.certification import measure
from stress_pipeline.certification.gates import (
    DEFAULT_THRESHOLDS,
    GATE_COLUMNS,
    GO,
    GateResult,
    Measurement,
    judge,
    overall,
)
from stress_pipeline.certification.readiness import Attestation, checklist

GATE, READINESS, OVERALL = "gate", "readiness", "overall"
TABLE_COLUMNS = ("section", *GATE_COLUMNS)


@dataclass(frozen=True)
class Sources:
    """The stored tables a certification reads, and the scenario partitions missing from each."""

    verdicts: pd.DataFrame | None
    divergence: Mapping[str, pd.DataFrame] = field(default_factory=dict)
    divergence_missing: Sequence[str] = ()
    reconciliation: Mapping[str, pd.DataFrame] = field(default_factory=dict)
    reconciliation_missing: Sequence[str] = ()
    baseline_days: float | None = None  # span of the baseline's bars, in days
    initial_capital: float = 100_000.0
    # the drills and monitoring assets (None while not materialised: their gates are then no_input)
    monitoring_coverage: pd.DataFrame | None = None
    alert_delivery: pd.DataFrame | None = None
    decision_flood: pd.DataFrame | None = None
    drills: pd.DataFrame | None = None  # every stored drill partition's rows
    drills_missing: Sequence[str] = ()
    scenarios: Sequence[str] = ()  # every scenario partition (each needs a verdict); empty: not known


@dataclass(frozen=True)
class Certification:
    verdict: str  # GO | NO-GO
    reasons: list[str]
    gates: list[GateResult]
    readiness: pd.DataFrame  # readiness.READINESS_COLUMNS

    @property
    def passed(self) -> bool:
        return self.verdict == GO

    def gate_table(self) -> pd.DataFrame:
        return pd.DataFrame([gate.row() for gate in self.gates], columns=list(GATE_COLUMNS))

    def table(self) -> pd.DataFrame:
        """Gates, checklist items and the overall verdict in one table (``section`` tells them apart)."""
        gates = self.gate_table().assign(section=GATE)
        items = pd.DataFrame({
            "section": READINESS, "gate": self.readiness["item"], "title": self.readiness["description"],
            "comparison": "is", "threshold": np.nan, "value": self.readiness["done"].astype(float), "unit": "",
            "verdict": np.where(self.readiness["done"], "done", "open"), "action": self.readiness["kind"],
            "source": "readiness checklist", "detail": self.readiness["evidence"],
        })  # fmt: skip
        summary = pd.DataFrame([{
            "section": OVERALL, "gate": "certification", "title": "Go / no-go", "comparison": "is",
            "threshold": np.nan, "value": float(self.passed), "unit": "", "verdict": self.verdict,
            "action": "", "source": "every gate", "detail": "; ".join(self.reasons) or "every gate passes",
        }])  # fmt: skip
        out = pd.concat([gates, items, summary], ignore_index=True)[list(TABLE_COLUMNS)]
        for column in ("threshold", "value"):
            out[column] = pd.to_numeric(out[column]).astype(np.float64)
        return out

    @classmethod
    def from_table(cls, table: pd.DataFrame) -> Certification:
        """The certification a stored table holds (the inverse of :meth:`table`)."""
        missing = [c for c in TABLE_COLUMNS if c not in table.columns]
        if missing:
            raise ValueError(f"certification table: missing column(s) {', '.join(missing)}")
        gates = [
            GateResult(**{c: _plain(getattr(row, c)) for c in GATE_COLUMNS})
            for row in table[table["section"] == GATE].itertuples(index=False)
        ]
        items = table[table["section"] == READINESS]
        readiness = pd.DataFrame({
            "item": items["gate"].to_list(), "description": items["title"].to_list(),
            "kind": items["action"].to_list(), "done": (items["verdict"] == "done").to_list(),
            "evidence": items["detail"].to_list(),
        })  # fmt: skip
        summary = table[table["section"] == OVERALL]
        if len(summary) != 1:
            raise ValueError(f"certification table: expected one overall row, found {len(summary)}")
        verdict, _reasons = overall(gates)
        if verdict != summary["verdict"].iloc[0]:
            raise ValueError(f"certification table: overall {summary['verdict'].iloc[0]} contradicts its gates")
        return cls(verdict, _reasons, gates, readiness)


def certify(
    sources: Sources, *, thresholds: Mapping[str, float] = DEFAULT_THRESHOLDS,
    attestations: Mapping[str, Attestation] | None = None,
) -> Certification:  # fmt: skip
    """Judge every gate on ``sources``; GO only when all pass, readiness checklist included."""
    verdicts = sources.verdicts
    measured: dict[str, Measurement] = {
        "hard_limit_breaches": measure.hard_limit_breaches(verdicts),
        "decision_latency_p99_ms": measure.decision_latency(sources.decision_flood, verdicts),
        "recovery_mean_s": measure.recovery_mean(
            sources.reconciliation, sources.reconciliation_missing, sources.drills, sources.drills_missing
        ),
        "integrity_delta_usd": measure.integrity_delta(sources.reconciliation, sources.reconciliation_missing),
        "stress_scenarios_passed_pct": measure.stress_scenarios_passed(verdicts, sources.scenarios),
        "circuit_breakers_pct": measure.circuit_breakers(verdicts),
        "divergence_pct": measure.divergence(
            sources.divergence, sources.divergence_missing, baseline_days=sources.baseline_days
        ),
        "no_optimistic_bias": measure.optimistic_bias(
            sources.divergence, sources.divergence_missing, initial_capital=sources.initial_capital
        ),
        "monitoring_coverage_pct": measure.monitoring_coverage(sources.monitoring_coverage),
        **measure.alert_delivery(sources.alert_delivery),
    }
    gates = {name: judge(name, measurement, thresholds) for name, measurement in measured.items()}
    items = checklist(gates, attestations or {})
    done = int(items["done"].sum())
    open_items = ", ".join(items.loc[~items["done"], "item"])
    readiness = Measurement(
        100.0 * done / len(items),
        f"{done} of {len(items)} items done" + (f"; open: {open_items}" if open_items else ""),
    )
    gates["readiness_pct"] = judge("readiness_pct", readiness, thresholds)
    ordered = list(gates.values())
    verdict, reasons = overall(ordered)
    return Certification(verdict, reasons, ordered, items)


def fingerprint(tables: Mapping[str, pd.DataFrame | None]) -> str:
    """A SHA-256 of the input tables' contents (name and rows, in name order): the same inputs give the
    same fingerprint, any changed value another."""
    digest = hashlib.sha256()
    for name in sorted(tables):
        digest.update(name.encode())
        table = tables[name]
        if table is None:
            digest.update(b"\x00missing")
            continue
        digest.update(",".join(map(str, table.columns)).encode())
        digest.update(pd.util.hash_pandas_object(table, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def _plain(value: object) -> object:
    """A table cell as a plain Python value (NaN -> None)."""
    if isinstance(value, float | np.floating):
        return None if np.isnan(value) else float(value)
    return value
