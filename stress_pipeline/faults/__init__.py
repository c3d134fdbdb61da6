"""Fault injection for the live state layer: network faults, server outages and their schedule.

A run proves its ledger and hot state survive faults only if the faults are real: a TCP proxy with
Toxiproxy-like toxics between the run and its servers (:mod:`~stress_pipeline.faults.proxy`), real
stops and restarts of the embedded servers or proxy outages of external ones
(:mod:`~stress_pipeline.faults.servers`), and the scenario's faults as a schedule in sim time plus the
delivery faults the writer applies to the fill stream (:mod:`~stress_pipeline.faults.plan`).
"""

from stress_pipeline.faults.plan import (
    CRASH_POINTS,
    STATE_KINDS,
    FaultAction,
    FaultPlan,
    duplicate,
    shuffle_window,
)
from stress_pipeline.faults.proxy import FaultProxy, ProxyStats, Toxics
from stress_pipeline.faults.servers import OutageError, OutageTimings, ServerOutage, outage

__all__ = [
    "CRASH_POINTS",
    "STATE_KINDS",
    "FaultAction",
    "FaultPlan",
    "FaultProxy",
    "OutageError",
    "OutageTimings",
    "ProxyStats",
    "ServerOutage",
    "Toxics",
    "duplicate",
    "outage",
    "shuffle_window",
]
