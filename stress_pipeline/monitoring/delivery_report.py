"""Alert delivery reliability (seed 002, test 3): alert scenarios sent through the real delivery path
to the real receiver over real HTTP, with the path degraded part of the time.

The alerts go from the durable queue (:class:`~stress_pipeline.monitoring.delivery.AlertDispatcher`)
through a :class:`~stress_pipeline.faults.proxy.FaultProxy` in front of the receiver, so the path can
be made slow, cut or made to swallow answers while they are in flight. Each fault lasts at least its
hold time (``outage_s``, ``stall_s``) before the path heals. The schedule over ``count`` scenarios:

=============  =======================================================================================
share          path
=============  =======================================================================================
first 30%      healthy
next 20%       slow: 300 ms ± 100 ms each way
next 20%       down: the proxy refuses connections for ``outage_s``, then comes back
next 10%       answers lost for ``stall_s``: the receiver records the event, its answer is dropped and
               the connection closes (the sender sends again: a redelivery the receiver must fold into
               the same incident)
last 20%       healthy
=============  =======================================================================================

Each scenario is one trigger with its own dedup key; ``delivery_s`` runs from the moment it was
raised to the receiver's accepting answer; ``incidents`` is what the receiver recorded for the event
(1 expected: more is a duplicate alert).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from stress_pipeline.faults.proxy import FaultProxy
from stress_pipeline.monitoring.alerts import trigger
from stress_pipeline.monitoring.delivery import AlertDispatcher, AlertSender, Delivery, Endpoint, RetryPolicy
from stress_pipeline.monitoring.monitors import FAILURE_MODES, SEVERITY
from stress_pipeline.monitoring.queue import AlertQueue

DELIVERY_COLUMNS = ("alert", "degraded", "delivered", "delivery_s", "incidents")
PHASES = (("healthy", 0.3), ("slow", 0.2), ("down", 0.2), ("answers_lost", 0.1), ("healthy", 0.2))
#: Retries of the scenarios: a timeout above the slow path's round trip, short backoffs.
SCENARIO_POLICY = RetryPolicy(max_attempts=3, base_delay_s=0.05, max_delay_s=0.5, timeout_s=2.0)

#: The incidents the receiver recorded per dedup key; the events it recorded per alert id.
CountIncidents = Callable[[Sequence[str]], dict[str, int]]
CountReceptions = Callable[[Sequence[str]], dict[str, int]]


@dataclass(frozen=True)
class DeliveryRun:
    table: pd.DataFrame  # DELIVERY_COLUMNS
    phases: list[str]  # the path's state while each scenario was raised
    attempts: list[int]  # HTTP attempts each delivered alert took
    receptions: list[int]  # times the receiver recorded each alert (> 1: redelivered, folded by dedup)
    seconds: float


def run_delivery_scenarios(
    receiver_port: int, routing_key: str, queue_dir: Path, count_incidents: CountIncidents, *,
    count: int = 50, degrade: bool = True, tag: str = "delivery", source: str = "stress-pipeline",
    pace_s: float = 0.02, outage_s: float = 1.5, stall_s: float = 1.2, wait_s: float = 60.0,
    count_receptions: CountReceptions | None = None,
) -> DeliveryRun:  # fmt: skip
    """Raise ``count`` alerts through a fault proxy in front of the receiver on ``receiver_port``.

    ``degrade=False`` keeps the path healthy throughout (the benchmark's healthy figures).
    """
    if count < 1:
        raise ValueError(f"count: expected >= 1 alert scenario, got {count!r}")
    phases = phase_schedule(count) if degrade else ["healthy"] * count
    started = time.monotonic()
    with FaultProxy("127.0.0.1", receiver_port, seed=count) as proxy, AlertQueue(queue_dir) as queue:
        url = f"http://127.0.0.1:{proxy.port}/v2/enqueue"
        dispatcher = AlertDispatcher(AlertSender(Endpoint(url, routing_key), queue, SCENARIO_POLICY), reconnect_s=0.1)
        try:
            ids, keys, since = [], [], time.monotonic()
            holds = {"down": outage_s, "answers_lost": stall_s}
            for i, phase in enumerate(phases):
                if i == 0 or phase != phases[i - 1]:
                    if i:
                        _leave(proxy, phases[i - 1], since, holds, dispatcher, wait_s)
                    _enter(proxy, phase)
                    since = time.monotonic()
                mode = FAILURE_MODES[i % len(FAILURE_MODES)]
                alert = trigger(mode, f"{tag}/scenario-{i:03d}", f"alert scenario {i} ({phase}): {mode}",
                                severity=SEVERITY[mode], source=source, custom_details={"phase": phase})  # fmt: skip
                ids.append(dispatcher.raise_alert(alert).alert_id)
                keys.append(alert.dedup_key)
                time.sleep(pace_s)
            _leave(proxy, phases[-1], since, holds, dispatcher, wait_s)
            dispatcher.wait_empty(wait_s)
        finally:
            dispatcher.close()
    done: dict[str, Delivery] = {d.alert_id: d for d in dispatcher.deliveries if d.delivered}
    incidents = count_incidents(keys)
    table = pd.DataFrame({
        "alert": keys,
        "degraded": [p != "healthy" for p in phases],
        "delivered": [i in done for i in ids],
        "delivery_s": [done[i].latency_s if i in done else np.nan for i in ids],
        "incidents": [int(incidents.get(k, 0)) for k in keys],
    })  # fmt: skip
    validate_delivery(table)
    attempts = [done[i].attempts if i in done else 0 for i in ids]
    received = count_receptions(ids) if count_receptions else {}
    receptions = [int(received.get(i, 0)) for i in ids]
    return DeliveryRun(table, phases, attempts, receptions, time.monotonic() - started)


def phase_schedule(count: int) -> list[str]:
    """The path's state for each of ``count`` scenarios (:data:`PHASES`)."""
    bounds = np.cumsum([share for _, share in PHASES])
    position = (np.arange(count) + 0.5) / count
    return [PHASES[int(np.searchsorted(bounds, x))][0] for x in position]


def delivery_summary(table: pd.DataFrame) -> dict[str, float]:
    """The gate values: delivery %, median and p95 delivery time (s), duplicates (events with > 1 incident)."""
    seconds = table["delivery_s"].to_numpy(dtype=float)
    delivered = seconds[~np.isnan(seconds)]
    return {
        "alerts": float(len(table)),
        "delivery_pct": float(100.0 * table["delivered"].mean()) if len(table) else 0.0,
        "median_s": float(np.median(delivered)) if len(delivered) else float("nan"),
        "p95_s": float(np.percentile(delivered, 95)) if len(delivered) else float("nan"),
        "duplicates": float((table["incidents"] > 1).sum()),
        "degraded": float(table["degraded"].sum()),
    }


#: Seed 002, test 3: every alert delivered, median under 15 s, 95th percentile under 30 s, no duplicate.
SEED_MEDIAN_S = 15.0
SEED_P95_S = 30.0


def delivery_failures(
    summary: dict[str, float], *, median_s: float = SEED_MEDIAN_S, p95_s: float = SEED_P95_S
) -> list[str]:
    """Why the figures of :func:`delivery_summary` miss the targets (empty: they pass)."""
    failures = []
    if not summary["alerts"]:
        failures.append("no alert scenario ran")
    if summary["delivery_pct"] < 100.0:
        failures.append(f"delivery {summary['delivery_pct']:.1f}% < 100%")
    if summary["duplicates"] > 0:
        failures.append(f"{summary['duplicates']:.0f} event(s) with more than one incident")
    if not summary["median_s"] < median_s:
        failures.append(f"median delivery {summary['median_s']:.3f} s, target < {median_s:g} s")
    if not summary["p95_s"] < p95_s:
        failures.append(f"p95 delivery {summary['p95_s']:.3f} s, target < {p95_s:g} s")
    return failures


def validate_delivery(table: pd.DataFrame) -> None:
    """Raise ValueError naming the column and row of the first value outside the contract."""
    missing = [c for c in DELIVERY_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"alert_delivery: missing column(s) {', '.join(missing)}")
    _check(table, "alert", table["alert"].map(lambda v: isinstance(v, str) and bool(v)), "a dedup key")
    for column in ("degraded", "delivered"):
        _check(table, column, table[column].map(lambda v: isinstance(v, bool | np.bool_)), "a bool")
    seconds = pd.to_numeric(table["delivery_s"], errors="coerce")
    delivered = table["delivered"].astype(bool)
    _check(table, "delivery_s", (delivered & (seconds >= 0)) | (~delivered & seconds.isna()),
           "seconds >= 0 when delivered, NaN when not")  # fmt: skip
    incidents = pd.to_numeric(table["incidents"], errors="coerce")
    _check(table, "incidents", (incidents >= 0) & (incidents == incidents.round()), "a count >= 0")
    _check(table, "alert", ~table["alert"].duplicated(), "one row per alert")


def _enter(proxy: FaultProxy, phase: str) -> None:
    if phase == "slow":
        proxy.latency(300, 100)
    elif phase == "down":
        proxy.down()
    elif phase == "answers_lost":
        proxy.timeout(0, stream="downstream")


def _leave(
    proxy: FaultProxy, phase: str, since: float, holds: dict[str, float], dispatcher: AlertDispatcher, wait_s: float
) -> None:
    """End ``phase`` and drain: an outage or lost answers heal once they lasted their hold time, then
    what they held back goes out; a slow path heals once the alerts raised in it went out. So each
    alert meets the path of its own phase."""
    if phase in holds:
        time.sleep(max(0.0, holds[phase] - (time.monotonic() - since)))
    else:
        dispatcher.wait_empty(wait_s)
    proxy.clear()
    if proxy.is_down:
        proxy.up()
    dispatcher.wait_empty(wait_s)


def _check(table: pd.DataFrame, column: str, good: pd.Series, expected: str) -> None:
    bad = np.flatnonzero(~good.to_numpy(dtype=bool))
    if len(bad):
        row = int(bad[0])
        value = table[column].iloc[row]
        value = value.item() if isinstance(value, np.generic) else value
        raise ValueError(f"alert_delivery: column {column!r}, row {row}: {value!r} "
                         f"is not {expected}")  # fmt: skip
