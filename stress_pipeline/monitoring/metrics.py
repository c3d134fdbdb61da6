"""Prometheus metrics of the suite's results, for node_exporter's textfile collector and a Pushgateway.

The suite runs in batches, not as a long-lived server, so its metrics are a snapshot built from the
result tables (:class:`ResultMetrics`, a Prometheus collector) each time they are published:

======================================================  =========  =====================================================
metric                                                  type       from
======================================================  =========  =====================================================
``stress_runs_total``                                   counter    publications so far (carried over in the textfile)
``stress_breaches_total{source,criterion}``             counter    failed rows: verdicts, coverage, drills, delivery
``stress_drill_runs_total{drill}``                      counter    runs of each drill the Dagster instance recorded
``stress_drill_passed{drill}``                          gauge      1 when every criterion of the drill's last run passed
``stress_drill_criterion_passed{drill,criterion}``      gauge      1 pass, 0 fail or not exercised (the drills table)
``stress_drill_recovery_seconds{drill}``                gauge      the drill's ``recovery_s`` row, when measured
``stress_drill_detection_seconds{drill,failure_mode}``  gauge      slowest detection per mode, drill's last run
``stress_monitoring_coverage_ratio``                    gauge      share of failure modes that passed
``stress_failure_detection_seconds{failure_mode}``      gauge      detection time of each failure mode (coverage)
``stress_alert_delivery_seconds``                       histogram  delivery time of each alert scenario
``stress_alerts_undelivered``                           gauge      alert scenarios not delivered
``stress_alert_duplicate_incidents``                    gauge      events the receiver opened more than one incident for
``stress_decision_latency_seconds``                     histogram  the decision flood's latencies, given as samples
``stress_decision_latency_seconds``                     summary    else quantiles .5/.99/.999 of decision_flood
``stress_decision_latency_max_seconds``                 gauge      the decision flood's slowest decision
======================================================  =========  =====================================================

Alert delivery times are the ``alert_delivery`` scenarios' (``stress_alert_delivery_seconds``).
Histograms are built from whole arrays (``numpy`` bucket counts), never one observation at a time.
:func:`write_textfile` replaces the file atomically (node_exporter never reads half of it);
:func:`push` PUTs the same snapshot to a Pushgateway under ``job``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from prometheus_client import CollectorRegistry, push_to_gateway, write_to_textfile
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families

#: The criterion row in which a drill records its time to recover.
RECOVERY_CRITERION = "recovery_s"
DELIVERY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 30.0)
DECISION_BUCKETS_S = (1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 1.5e-2, 2.5e-2, 5e-2, 0.1)
JOB = "stress_pipeline"


@dataclass(frozen=True, eq=False)  # hashed by identity, as a registry needs its collectors
class ResultMetrics:
    """The snapshot; every table is optional (absent: its metrics are not exposed)."""

    runs_total: float = 1.0
    verdicts: pd.DataFrame | None = None  # scenario_verdicts: scenario, criterion, outcome, ...
    coverage: pd.DataFrame | None = None  # monitoring_coverage
    delivery: pd.DataFrame | None = None  # alert_delivery
    drills: pd.DataFrame | None = None  # every stored drill's rows: drill, criterion, value, outcome, ...
    drill_detections: pd.DataFrame | None = None  # every stored drill's detections: drill, failure_mode, detection_s
    drill_runs: Mapping[str, int] | None = None  # drill -> runs recorded so far
    decision_flood: pd.DataFrame | None = None  # one row: decisions, p50_ms, p99_ms, p999_ms, max_ms, ...
    decision_latencies_s: np.ndarray | None = field(default=None)

    def collect(self) -> Iterator[Metric]:
        yield CounterMetricFamily("stress_runs", "Times the suite published its results.", value=self.runs_total)
        yield self._breaches()
        if self.drill_runs is not None:
            runs = CounterMetricFamily("stress_drill_runs", "Runs of each drill.", labels=["drill"])
            for drill, n in sorted(self.drill_runs.items()):
                runs.add_metric([str(drill)], float(n))
            yield runs
        if self.drills is not None:
            yield from _drill_outcomes(self.drills)
        if self.drill_detections is not None:
            detection = GaugeMetricFamily(
                "stress_drill_detection_seconds", "Slowest detection per drill and mode, first evidence to conclusion.",
                labels=["drill", "failure_mode"],
            )
            slowest = self.drill_detections.groupby(["drill", "failure_mode"])["detection_s"].max()
            for (drill, mode), seconds in slowest.items():
                detection.add_metric([str(drill), str(mode)], float(seconds))
            yield detection
        if self.coverage is not None:
            ratio = float((self.coverage["outcome"] == "pass").mean()) if len(self.coverage) else 0.0
            yield GaugeMetricFamily("stress_monitoring_coverage_ratio", "Failure modes detected and alerted in time.",
                                    value=ratio)  # fmt: skip
            detection = GaugeMetricFamily("stress_failure_detection_seconds", "Detection time per failure mode.",
                                          labels=["failure_mode"])  # fmt: skip
            for mode, seconds in zip(self.coverage["failure_mode"], self.coverage["detection_s"], strict=True):
                if not math.isnan(float(seconds)):
                    detection.add_metric([str(mode)], float(seconds))
            yield detection
        if self.delivery is not None:
            seconds = self.delivery["delivery_s"].to_numpy(dtype=float)
            yield histogram("stress_alert_delivery_seconds", "Alert delivery time, raised to accepted.", seconds,
                            DELIVERY_BUCKETS_S)  # fmt: skip
            yield GaugeMetricFamily("stress_alerts_undelivered", "Alert scenarios not delivered.",
                                    value=float((~self.delivery["delivered"].astype(bool)).sum()))  # fmt: skip
            yield GaugeMetricFamily("stress_alert_duplicate_incidents", "Events with more than one incident.",
                                    value=float((self.delivery["incidents"] > 1).sum()))  # fmt: skip
        if self.decision_latencies_s is not None:
            yield histogram("stress_decision_latency_seconds", "Risk decision latency.",
                            np.asarray(self.decision_latencies_s, dtype=float), DECISION_BUCKETS_S)  # fmt: skip
        elif self.decision_flood is not None and len(self.decision_flood):
            yield from _flood_summary(self.decision_flood.iloc[-1])

    def _breaches(self) -> CounterMetricFamily:
        family = CounterMetricFamily("stress_breaches", "Failed criteria.", labels=["source", "criterion"])
        sources = (("scenario_verdicts", self.verdicts, "criterion"), ("monitoring_coverage", self.coverage,
                   "failure_mode"), ("drills", self.drills, "criterion"))  # fmt: skip
        for source, table, column in sources:
            if table is not None and len(table):
                failed = table.loc[table["outcome"] == "fail", column].value_counts()
                for criterion, n in failed.items():
                    family.add_metric([source, str(criterion)], float(n))
        if self.delivery is not None:
            bad = {"undelivered": (~self.delivery["delivered"].astype(bool)).sum(),
                   "duplicate_incident": (self.delivery["incidents"] > 1).sum()}  # fmt: skip
            for criterion, n in bad.items():
                if n:
                    family.add_metric(["alert_delivery", criterion], float(n))
        return family


def _drill_outcomes(drills: pd.DataFrame) -> Iterator[Metric]:
    passed = GaugeMetricFamily("stress_drill_passed", "1 when every criterion of the drill passed.", labels=["drill"])
    for drill, outcomes in drills.groupby("drill")["outcome"]:
        passed.add_metric([str(drill)], float((outcomes == "pass").all()))
    yield passed
    criteria = GaugeMetricFamily("stress_drill_criterion_passed", "1 pass, 0 fail or not exercised.",
                                 labels=["drill", "criterion"])  # fmt: skip
    for drill, criterion, outcome in zip(drills["drill"], drills["criterion"], drills["outcome"], strict=True):
        criteria.add_metric([str(drill), str(criterion)], float(outcome == "pass"))
    yield criteria
    recovery = GaugeMetricFamily("stress_drill_recovery_seconds", "Time to recover, as the drill measured it.",
                                 labels=["drill"])  # fmt: skip
    rows = drills[drills["criterion"] == RECOVERY_CRITERION]
    for drill, seconds in zip(rows["drill"], pd.to_numeric(rows["value"]), strict=True):
        if not math.isnan(float(seconds)):
            recovery.add_metric([str(drill)], float(seconds))
    yield recovery


def _flood_summary(row: pd.Series) -> Iterator[Metric]:
    summary = Metric("stress_decision_latency_seconds", "Risk decision latency under the decision flood.", "summary")
    for quantile, column in (("0.5", "p50_ms"), ("0.99", "p99_ms"), ("0.999", "p999_ms")):
        summary.add_sample("stress_decision_latency_seconds", {"quantile": quantile}, float(row[column]) / 1000.0)
    summary.add_sample("stress_decision_latency_seconds_count", {}, float(row["decisions"]))
    yield summary
    yield GaugeMetricFamily("stress_decision_latency_max_seconds", "Slowest decision under the decision flood.",
                            value=float(row["max_ms"]) / 1000.0)  # fmt: skip


def histogram(name: str, documentation: str, values: np.ndarray, bounds: Sequence[float]) -> HistogramMetricFamily:
    """A histogram of ``values`` (NaN left out) over ``bounds``, counted with numpy."""
    values = values[~np.isnan(values)]
    cumulative = np.searchsorted(np.sort(values), np.asarray(bounds, dtype=float), side="right")
    buckets = [(_le(b), float(c)) for b, c in zip(bounds, cumulative, strict=True)] + [("+Inf", float(len(values)))]
    return HistogramMetricFamily(name, documentation, buckets=buckets, sum_value=float(values.sum()))


def registry_of(metrics: ResultMetrics) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(metrics)
    return registry


def previous_runs(textfile: Path) -> float:
    """``stress_runs_total`` as last written to ``textfile`` (0 when there is none or it is unreadable)."""
    try:
        text = textfile.read_text()
    except OSError:
        return 0.0
    try:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == "stress_runs_total":
                    return float(sample.value)
    except ValueError:
        return 0.0
    return 0.0


def write_textfile(metrics: ResultMetrics, textfile: Path) -> Path:
    """Write the snapshot for node_exporter's textfile collector (atomic replace; folder created)."""
    textfile.parent.mkdir(parents=True, exist_ok=True)
    write_to_textfile(str(textfile), registry_of(metrics))
    return textfile


def push(metrics: ResultMetrics, gateway_url: str, *, job: str = JOB, timeout_s: float = 10.0) -> None:
    """PUT the snapshot to the Pushgateway at ``gateway_url`` (replacing the job's previous group)."""
    push_to_gateway(gateway_url, job=job, registry=registry_of(metrics), timeout=timeout_s)


def _le(bound: float) -> str:
    return repr(float(bound))
