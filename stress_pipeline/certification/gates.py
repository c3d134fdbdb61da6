"""The go/no-go gates: what each one compares, its threshold, and how a measurement is judged.

The gates are the users' own (seed 001's production readiness gates, seed 002's success metrics and
validation tests). Each has a fixed comparison (the seeds' wording: "P99 <= 15 ms", "divergence
< 20%") and a threshold that ``data/certification/gates.yaml`` may change. A gate's verdict is
``pass``, ``fail`` or ``no_input``: a gate nothing measured is not a pass, so one ``no_input`` is
enough for NO-GO, with the reason named.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

PASS, FAIL, NO_INPUT = "pass", "fail", "no_input"
GATE_VERDICTS = (PASS, FAIL, NO_INPUT)
GO, NO_GO = "GO", "NO-GO"

_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le, "<": operator.lt, ">=": operator.ge, ">": operator.gt, "==": operator.eq,
}  # fmt: skip


@dataclass(frozen=True)
class GateSpec:
    """One gate: ``value <comparison> threshold`` passes; ``action`` is what the users do when it fails."""

    name: str
    title: str
    comparison: str  # one of _COMPARE, or "is" for a yes/no gate without a threshold
    default: float | None
    unit: str
    action: str
    source: str  # the asset (or file) the measured value comes from
    seed: str  # the requirement document that asks for it
    percent: bool = False  # a threshold in 0..100


GATE_SPECS: tuple[GateSpec, ...] = (
    GateSpec("hard_limit_breaches", "Safety: hard-limit breaches", "<=", 0, "breaches", "block paper trading",
             "scenario_verdicts", "001"),
    GateSpec("decision_latency_p99_ms", "Latency: decision P99", "<=", 15, "ms", "block paper trading",
             "decision_flood", "001"),
    GateSpec("recovery_mean_s", "Recovery: mean time after a planned outage", "<=", 25, "s",
             "proceed with monitoring", "portfolio_reconciliation", "001"),
    GateSpec("integrity_delta_usd", "Integrity: position/cash delta exchange vs ledger vs Redis", "<=", 1, "$",
             "daily reconciliation", "portfolio_reconciliation", "001"),
    GateSpec("stress_scenarios_passed_pct", "Every stress scenario passes", ">=", 100, "%",
             "do not go live until fixed and retested", "scenario_verdicts", "002", percent=True),
    GateSpec("circuit_breakers_pct", "Circuit breakers prevent catastrophic loss in disaster scenarios", ">=", 95,
             "%", "do not go live: fix the risk limits", "scenario_verdicts", "002", percent=True),
    GateSpec("divergence_pct", "Backtest vs paper divergence over the baseline", "<", 20, "%",
             "do not trust the backtest's projections", "divergence_report", "002", percent=True),
    GateSpec("no_optimistic_bias", "Paper trading is not systematically better than the backtest", "is", None, "",
             "review the execution assumptions", "divergence_report", "002"),
    GateSpec("monitoring_coverage_pct", "Monitoring coverage of the failure modes", ">=", 100, "%",
             "do not go live: add the missing monitors", "monitoring_coverage", "002", percent=True),
    GateSpec("alert_delivery_pct", "Alert delivery rate", ">=", 100, "%", "do not go live: fix alerting",
             "alert_delivery", "002", percent=True),
    GateSpec("alert_median_s", "Alert delivery median", "<", 15, "s", "do not go live: fix alerting",
             "alert_delivery", "002"),
    GateSpec("alert_p95_s", "Alert delivery 95th percentile", "<", 30, "s", "do not go live: fix alerting",
             "alert_delivery", "002"),
    GateSpec("readiness_pct", "Production readiness checklist complete", ">=", 100, "%",
             "complete the checklist before going live", "readiness checklist", "002", percent=True),
)  # fmt: skip
SPECS = {spec.name: spec for spec in GATE_SPECS}
DEFAULT_THRESHOLDS = {spec.name: spec.default for spec in GATE_SPECS if spec.default is not None}
GATE_COLUMNS = ("gate", "title", "comparison", "threshold", "value", "unit", "verdict", "action", "source", "detail")


class GateConfigError(ValueError):
    """A gates file that cannot be used; the message names the file and the key."""


@dataclass(frozen=True)
class Measurement:
    """What a source says for one gate: ``value`` None means nothing measured it (``detail`` says why).

    ``failure`` is a reason to fail whatever the value (a lost fill beside a zero cash delta, say);
    ``verdict`` decides a yes/no gate (comparison "is").
    """

    value: float | None
    detail: str
    failure: str | None = None
    verdict: bool | None = None
    source: str | None = None  # overrides the spec's source when the value came from elsewhere


@dataclass(frozen=True)
class GateResult:
    gate: str
    title: str
    comparison: str
    threshold: float | None
    value: float | None
    unit: str
    verdict: str
    action: str
    source: str
    detail: str

    def row(self) -> dict[str, object]:
        return {column: getattr(self, column) for column in GATE_COLUMNS}

    def reason(self) -> str:
        """Why this gate stops a GO (one line)."""
        if self.verdict == NO_INPUT:
            return f"{self.gate}: no input ({self.detail})"
        return f"{self.gate}: {self.detail} (action: {self.action})"


def load_thresholds(path: Path) -> dict[str, float]:
    """The thresholds of ``path`` (a YAML mapping gate -> number) over the seeds' defaults.

    Unknown gates, non-numbers, negative numbers and percentages over 100 are refused with a
    :class:`GateConfigError` naming the file and the key; a gate left out keeps its default.
    """
    try:
        data = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError:
        raise GateConfigError(f"{path}: no such gates file") from None
    except yaml.YAMLError as exc:
        raise GateConfigError(f"{path}: not valid YAML ({exc})") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise GateConfigError(f"{path}: expected a mapping of gate name to threshold, got {type(data).__name__}")
    thresholds = dict(DEFAULT_THRESHOLDS)
    for key, value in data.items():
        if key not in DEFAULT_THRESHOLDS:
            known = ", ".join(DEFAULT_THRESHOLDS)
            raise GateConfigError(f"{path}: unknown gate {key!r} (gates with a threshold: {known})")
        thresholds[key] = check_threshold(key, value, where=str(path))
    return thresholds


def check_threshold(name: str, value: object, *, where: str = "thresholds") -> float:
    """``value`` as the threshold of gate ``name``, or :class:`GateConfigError` naming ``where`` and the key."""
    spec = SPECS.get(name)
    if spec is None or spec.default is None:
        raise GateConfigError(f"{where}: gate {name!r} takes no threshold")
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(float(value)):
        raise GateConfigError(f"{where}: {name}: expected a finite number, got {value!r}")
    number = float(value)
    if number < 0:
        raise GateConfigError(f"{where}: {name}: expected a number >= 0, got {value!r}")
    if spec.percent and number > 100:
        raise GateConfigError(f"{where}: {name}: a percentage, expected at most 100, got {value!r}")
    return number


def judge(name: str, measurement: Measurement, thresholds: Mapping[str, float] | None = None) -> GateResult:
    """The verdict of gate ``name`` on ``measurement`` (thresholds default to the seeds')."""
    spec = SPECS[name]
    threshold = None if spec.default is None else float((thresholds or DEFAULT_THRESHOLDS).get(name, spec.default))
    source = measurement.source or spec.source
    value = measurement.value
    if value is None or (spec.comparison == "is" and measurement.verdict is None):
        verdict, detail = NO_INPUT, measurement.detail
    elif measurement.failure:
        verdict, detail = FAIL, measurement.failure
    elif spec.comparison == "is":
        verdict, detail = (PASS if measurement.verdict else FAIL), measurement.detail
    else:
        ok = _COMPARE[spec.comparison](float(value), threshold)
        verdict = PASS if ok else FAIL
        shown = f"{_number(value)}{_unit(spec.unit)} {spec.comparison if ok else _negated(spec.comparison)} "
        detail = f"{shown}{_number(threshold)}{_unit(spec.unit)}: {measurement.detail}"
    return GateResult(
        gate=name, title=spec.title, comparison=spec.comparison, threshold=threshold,
        value=None if value is None else float(value), unit=spec.unit, verdict=verdict, action=spec.action,
        source=source, detail=detail,
    )  # fmt: skip


def overall(gates: list[GateResult]) -> tuple[str, list[str]]:
    """GO only when every gate passes; otherwise NO-GO and one reason per gate that did not pass."""
    reasons = [gate.reason() for gate in gates if gate.verdict != PASS]
    return (GO if gates and not reasons else NO_GO), (reasons or ([] if gates else ["no gates were evaluated"]))


def _negated(comparison: str) -> str:
    return {"<=": ">", "<": ">=", ">=": "<", ">": "<=", "==": "!="}[comparison]


def _unit(unit: str) -> str:
    return unit if unit in ("", "%") else f" {unit}"


def _number(value: float) -> str:
    return f"{value:,.2f}".rstrip("0").rstrip(".") if value != int(value) else f"{int(value):,}"
