"""What a drill's system exposes, as the monitors read it: an :class:`Observation` built while it runs.

A drill records the events (orders, fills, rejects), webhooks, health probes, equity and market
marks and live-state flags of its system with the time of its clock; the monitors
(``monitoring/monitors.py``) then detect the failure from that alone, never from what the drill
knows it injected, and their detections become the drill's alerts and its detection times.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np
import pandas as pd

from stress_pipeline.drills.core import EPOCH, DrillRecord
from stress_pipeline.monitoring.monitors import (
    DETECTION_COLUMNS,
    EQUITY_COLUMNS,
    FLAG_COLUMNS,
    MARK_COLUMNS,
    MONITORS,
    PROBE_COLUMNS,
    WEBHOOK_COLUMNS,
    MonitorConfig,
    Observation,
    alerts_for,
    empty_table,
    run_monitors,
)
from stress_pipeline.simulation.events import EVENT_COLUMNS

START = pd.Timestamp(EPOCH).as_unit("ns")


def at(t_s: float) -> pd.Timestamp:
    """The drill clock's ``t_s`` as the timestamp the observation carries."""
    return START + pd.Timedelta(seconds=float(t_s))


class Observed:
    """Rows of each observation table, appended as the drill's system runs."""

    def __init__(self) -> None:
        self.events: list[dict] = []
        self.webhooks: list[dict] = []
        self.probes: list[dict] = []
        self.equity: list[dict] = []
        self.marks: list[dict] = []
        self.flags: list[dict] = []

    def event(self, t_s: float, kind: str, symbol: str | None, order_id: int | None, qty: float, price: float,
              reason: str = "", **details: object) -> None:  # fmt: skip
        self.events.append({"ts": at(t_s), "kind": kind, "symbol": symbol, "order_id": order_id, "qty": qty,
                            "price": price, "reason": reason,
                            "details": json.dumps(details, sort_keys=True)})  # fmt: skip

    def webhook(self, t_s: float, strategy: str, status: str) -> None:
        self.webhooks.append({"ts": at(t_s), "strategy": strategy, "status": status})

    def probe(self, t_s: float, target: str, ok: bool, error: str = "") -> None:
        self.probes.append({"ts": at(t_s), "target": target, "ok": ok, "latency_ms": 1.0 if ok else np.nan,
                            "error": error})  # fmt: skip

    def flag(self, t_s: float, name: str, value: bool) -> None:
        self.flags.append({"ts": at(t_s), "name": name, "value": value})

    def observation(self, as_of_s: float) -> Observation:
        events = _table(self.events, EVENT_COLUMNS[1:])
        events.insert(0, "event_id", np.arange(len(events)))
        events["order_id"] = events["order_id"].astype("Int64")
        return Observation(
            as_of=at(as_of_s), events=events[list(EVENT_COLUMNS)], equity=_table(self.equity, EQUITY_COLUMNS),
            marks=_table(self.marks, MARK_COLUMNS), probes=_table(self.probes, PROBE_COLUMNS),
            webhooks=_table(self.webhooks, WEBHOOK_COLUMNS), flags=_table(self.flags, FLAG_COLUMNS),
        )  # fmt: skip


def detect(observed: Observed, as_of_s: float, modes: Sequence[str], config: MonitorConfig,
           record: DrillRecord, subject_prefix: str, *, since_s: float = -np.inf) -> pd.DataFrame:  # fmt: skip
    """Run the monitors of ``modes`` on what was observed; each detection concluded after ``since_s``
    (the ones before were reported by an earlier call) goes on the timeline, into the drill's
    detections, and its alert into the drill's queue. Returns those detections (``DETECTION_COLUMNS``)."""
    chosen = {mode: MONITORS[mode] for mode in modes}
    detections = run_monitors(observed.observation(as_of_s), config, chosen)
    if len(detections):
        detections = detections[detections["detected_at"] > at(since_s) if np.isfinite(since_s) else
                                np.ones(len(detections), dtype=bool)].reset_index(drop=True)  # fmt: skip
    if not len(detections):
        return empty_table(DETECTION_COLUMNS)
    source = f"stress-pipeline/drills/{record.drill}"
    for row, alert in zip(detections.itertuples(index=False), alerts_for(detections, source=source,
                                                                          subject_prefix=subject_prefix), strict=True):
        t_s = (row.detected_at - START).total_seconds()
        record.mark("detection", f"{row.failure_mode}: {row.summary}", t_s)
        record.detections.append((row.failure_mode, (row.evidence_at - START).total_seconds(), t_s))
        if record.alerts is not None:
            record.alerts.put(alert.unrouted_body())
        record.raised.append(alert.dedup_key)
        record.mark("alert", f"{row.failure_mode} ({row.severity})", t_s)
    return detections


def _table(rows: list[dict], columns: Sequence[str]) -> pd.DataFrame:
    if not rows:
        return empty_table(tuple(columns))
    return pd.DataFrame(rows, columns=list(columns)).sort_values("ts", kind="stable").reset_index(drop=True)
