"""The production readiness checklist of seed 002: automated items from the gates, manual items attested.

Automated items are done when the gates behind them pass. Manual items (team trained, kill switch
tested, backup contacts, compliance review, small starting capital, failure modes documented) are
done only when ``data/certification/readiness.yaml`` says who attested them and when; an item left
out or with ``attested_by: null`` is not done. The checklist must be 100% complete for GO.

File shape::

    items:
      - item: team_trained
        attested_by: null        # a name once someone vouches for it
        attested_at: null        # ISO date or time of the attestation
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import yaml

from stress_pipeline.certification.gates import PASS, GateResult

MANUAL_ITEMS: dict[str, str] = {
    "failure_modes_documented": "All failure modes documented with mitigations",
    "team_trained": "Team trained on emergency procedures",
    "kill_switch_tested": "Manual kill-switch tested and accessible",
    "backup_contacts": "Backup contact methods (phone, SMS) configured",
    "compliance_review": "Legal/compliance review completed (if applicable)",
    "small_starting_capital": "Start with small capital (10% of planned amount)",
}
#: item -> (description, the gates that must pass)
AUTOMATED_ITEMS: dict[str, tuple[str, tuple[str, ...]]] = {
    "stress_scenarios_passed": ("All stress scenarios passed", ("stress_scenarios_passed_pct",)),
    "monitoring_coverage": ("Monitoring coverage 100%", ("monitoring_coverage_pct",)),
    "alert_delivery": ("Alert delivery tested and reliable", ("alert_delivery_pct", "alert_median_s", "alert_p95_s")),
    "circuit_breakers": ("Circuit breakers tested and functional", ("circuit_breakers_pct",)),
    "divergence": ("Backtest vs paper trading divergence <20%", ("divergence_pct", "no_optimistic_bias")),
}
READINESS_COLUMNS = ("item", "description", "kind", "done", "evidence")
_FIELDS = ("item", "attested_by", "attested_at")


class ReadinessError(ValueError):
    """A readiness file that cannot be used; the message names the file, the entry and the field."""


@dataclass(frozen=True)
class Attestation:
    item: str
    attested_by: str
    attested_at: str  # ISO, as written


def load_attestations(path: Path) -> dict[str, Attestation]:
    """The attested manual items of ``path`` (unattested entries are left out)."""
    try:
        data = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError:
        raise ReadinessError(f"{path}: no such readiness file") from None
    except yaml.YAMLError as exc:
        raise ReadinessError(f"{path}: not valid YAML ({exc})") from None
    if data is None:
        return {}
    if not isinstance(data, dict) or set(data) - {"items"}:
        raise ReadinessError(f"{path}: expected a mapping with one key, items")
    entries = data.get("items") or []
    if not isinstance(entries, list):
        raise ReadinessError(f"{path}: items: expected a list of entries")
    out: dict[str, Attestation] = {}
    seen: set[str] = set()
    for number, entry in enumerate(entries, start=1):
        where = f"{path}: items[{number}]"
        if not isinstance(entry, dict):
            raise ReadinessError(f"{where}: expected a mapping with {', '.join(_FIELDS)}")
        unknown = set(entry) - set(_FIELDS)
        if unknown:
            raise ReadinessError(f"{where}: unknown field(s) {', '.join(sorted(map(str, unknown)))}")
        item = entry.get("item")
        if item not in MANUAL_ITEMS:
            known = ", ".join(MANUAL_ITEMS)
            hint = " (automated: it follows its gates)" if item in AUTOMATED_ITEMS else ""
            raise ReadinessError(f"{where}: item: {item!r} is not a manual item{hint}; manual items: {known}")
        if item in seen:
            raise ReadinessError(f"{where}: item {item!r} is listed twice")
        seen.add(item)
        by, at = entry.get("attested_by"), entry.get("attested_at")
        if by is None and at is None:
            continue
        if not isinstance(by, str) or not by.strip():
            raise ReadinessError(f"{where} ({item}): attested_by: expected a name, got {by!r}")
        out[item] = Attestation(item, by.strip(), _when(at, f"{where} ({item}): attested_at"))
    return out


def _when(value: object, where: str) -> str:
    if isinstance(value, dt.datetime | dt.date):  # YAML reads unquoted ISO dates and times itself
        return value.isoformat()
    if isinstance(value, str):
        try:
            return dt.datetime.fromisoformat(value).isoformat()
        except ValueError:
            pass
    raise ReadinessError(f"{where}: expected an ISO date or time, got {value!r}")


def checklist(gates: Mapping[str, GateResult], attestations: Mapping[str, Attestation]) -> pd.DataFrame:
    """One row per checklist item: automated items from ``gates``, manual ones from ``attestations``."""
    rows = []
    for item, (description, names) in AUTOMATED_ITEMS.items():
        results = [gates[name] for name in names if name in gates]
        done = len(results) == len(names) and all(r.verdict == PASS for r in results)
        evidence = ", ".join(f"{r.gate} {r.verdict}" for r in results) or "no gate evaluated"
        rows.append((item, description, "automated", done, evidence))
    for item, description in MANUAL_ITEMS.items():
        attestation = attestations.get(item)
        evidence = (
            f"attested by {attestation.attested_by} at {attestation.attested_at}" if attestation else ("not attested")
        )
        rows.append((item, description, "manual", attestation is not None, evidence))
    return pd.DataFrame(rows, columns=list(READINESS_COLUMNS))
