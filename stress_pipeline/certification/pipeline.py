"""From what the pipeline stored to a certification: the steps the assets and the CLI share.

The inputs arrive as the IO manager hands them over: a mapping ``{partition: value}`` that reads a
partition when asked and raises ``FileNotFoundError`` for one never materialised (those are
collected as missing, so the gates that need them say so), and whole tables or None for the
optional sources (an asset not materialised yet, or not in the graph yet).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from stress_pipeline.certification.decide import Certification, Sources, certify, fingerprint
from stress_pipeline.certification.gates import load_thresholds
from stress_pipeline.certification.history import REQUIRED_STREAK, Recorded
from stress_pipeline.certification.readiness import load_attestations
from stress_pipeline.certification.report import History, ScenarioRuns
from stress_pipeline.parquet_store import atomic_file
from stress_pipeline.scenarios.catalog import BASELINE_KEY
from stress_pipeline.simulation.result import SimResult

#: Unpartitioned tables the certification reads when they are stored (None while not materialised).
OPTIONAL_SOURCES = ("scenario_verdicts", "monitoring_coverage", "alert_delivery", "decision_flood")


@dataclass(frozen=True)
class CertificationFiles:
    """The users' certification configuration under the data directory."""

    gates: Path
    readiness: Path

    @classmethod
    def under(cls, data_dir: Path) -> CertificationFiles:
        folder = Path(data_dir) / "certification"
        return cls(folder / "gates.yaml", folder / "readiness.yaml")


def stored(values: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The partitions of ``values`` that were materialised (read now) and the keys of those that were not."""
    present, missing = {}, []
    for key in values:
        try:
            present[key] = values[key]
        except FileNotFoundError:
            missing.append(key)
    return present, missing


def baseline_days(paper: Mapping[str, Any]) -> float | None:
    """The span in days of the baseline's paper run (its equity curve), None when it is not stored."""
    if BASELINE_KEY not in paper:
        return None
    try:
        result: SimResult = paper[BASELINE_KEY]
    except FileNotFoundError:
        return None
    index = pd.DatetimeIndex(result.equity.index)
    if len(index) < 2:
        return 0.0
    return float((index[-1] - index[0]) / pd.Timedelta(days=1))


def certify_stored(
    *, divergence: Mapping[str, Any], reconciliation: Mapping[str, Any], paper: Mapping[str, Any],
    drills: Mapping[str, Any], optional: Mapping[str, pd.DataFrame | None], files: CertificationFiles,
    initial_capital: float,
) -> tuple[Certification, str]:  # fmt: skip
    """The certification of what is stored, and the fingerprint of the tables it read."""
    unknown = set(optional) - set(OPTIONAL_SOURCES)
    if unknown:
        raise ValueError(f"unknown optional source(s) {', '.join(sorted(unknown))}")
    divergence_tables, divergence_missing = stored(divergence)
    reconciliation_tables, reconciliation_missing = stored(reconciliation)
    drill_tables, drills_missing = stored(drills)
    drill_rows = pd.concat(list(drill_tables.values()), ignore_index=True) if drill_tables else None
    sources = Sources(
        verdicts=optional.get("scenario_verdicts"), divergence=divergence_tables,
        divergence_missing=divergence_missing, reconciliation=reconciliation_tables,
        reconciliation_missing=reconciliation_missing, baseline_days=baseline_days(paper),
        initial_capital=initial_capital, monitoring_coverage=optional.get("monitoring_coverage"),
        alert_delivery=optional.get("alert_delivery"), decision_flood=optional.get("decision_flood"),
        drills=drill_rows, drills_missing=drills_missing, scenarios=list(divergence),
    )  # fmt: skip
    certification = certify(
        sources, thresholds=load_thresholds(files.gates), attestations=load_attestations(files.readiness)
    )
    tables: dict[str, pd.DataFrame | None] = {name: optional.get(name) for name in OPTIONAL_SOURCES}
    tables.update({f"divergence_report[{k}]": v for k, v in divergence_tables.items()})
    tables.update({f"portfolio_reconciliation[{k}]": v for k, v in reconciliation_tables.items()})
    tables.update({f"drills[{k}]": v for k, v in drill_tables.items()})
    tables["thresholds"] = pd.DataFrame([{"text": files.gates.read_text()}])
    tables["readiness"] = pd.DataFrame([{"text": files.readiness.read_text()}])
    return certification, fingerprint(tables)


def scenario_runs(
    paper: Mapping[str, Any], backtest: Mapping[str, Any], reconciliation: Mapping[str, Any]
) -> dict[str, ScenarioRuns]:
    """What is stored of each scenario (a part never materialised is None)."""
    parts = [stored(values)[0] for values in (paper, backtest, reconciliation)]
    keys = list(dict.fromkeys(key for part in parts for key in part))
    return {key: ScenarioRuns(*(part.get(key) for part in parts)) for key in keys}


def history_of(recorded: Recorded | None) -> History | None:
    """The report's view of a history record."""
    if recorded is None:
        return None
    return History(recorded.certification_id, recorded.streak, recorded.certified, REQUIRED_STREAK,
                   recorded.code_version, recorded.data_fingerprint)  # fmt: skip


def write_report(html: str, path: Path) -> dict[str, object]:
    """Write the report atomically; its path, size and SHA-256 (the row the asset stores)."""
    data = html.encode("utf-8")
    with atomic_file(path) as handle:
        handle.write(data)
    return {"path": str(path), "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
