"""Monitoring: alerts in PagerDuty's Events API v2 shape, their delivery through a durable queue,
and the embedded alert receiver that records every delivery in PostgreSQL.

No Dagster and no environment here: endpoints, routing keys and paths arrive as arguments.
"""

from stress_pipeline.monitoring.alerts import (
    DEFAULT_ENDPOINT,
    Alert,
    AlertError,
    acknowledge,
    dedup_key,
    mask_routing_key,
    resolve,
    trigger,
)
from stress_pipeline.monitoring.delivery import AlertDispatcher, AlertSender, Delivery, Endpoint, RetryPolicy
from stress_pipeline.monitoring.queue import AlertQueue

__all__ = [
    "DEFAULT_ENDPOINT",
    "Alert",
    "AlertDispatcher",
    "AlertError",
    "AlertQueue",
    "AlertSender",
    "Delivery",
    "Endpoint",
    "RetryPolicy",
    "acknowledge",
    "dedup_key",
    "mask_routing_key",
    "resolve",
    "trigger",
]
