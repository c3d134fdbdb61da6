"""Where alerts go and where metrics are pushed: the alerting resource.

Each field is bound to its environment variable with ``dg.EnvVar`` when that variable is set, so the
UI shows the variable's name, never the value (the routing key is a credential). Unset, alerts go to
the embedded alert receiver of STRESS_HOME with the project's local routing key, and metrics are
only written as a textfile.
"""

import os
from collections.abc import Callable

import dagster as dg
from pydantic import Field

from stress_pipeline.monitoring.delivery import Endpoint
from stress_pipeline.services.alert_receiver import alert_endpoint
from stress_pipeline.settings import Settings

ENV_VARIABLES = {
    "alert_url": "STRESS_ALERT_URL",
    "routing_key": "STRESS_ALERT_ROUTING_KEY",
    "pushgateway_url": "STRESS_PUSHGATEWAY_URL",
}


class AlertingResource(dg.ConfigurableResource):
    """The Events API v2 endpoint and routing key, and the Pushgateway."""

    alert_url: str | None = Field(default=None, description="STRESS_ALERT_URL; unset: the embedded alert receiver")
    routing_key: str | None = Field(default=None, description="STRESS_ALERT_ROUTING_KEY (never shown)")
    pushgateway_url: str | None = Field(default=None, description="STRESS_PUSHGATEWAY_URL; unset: textfile only")
    delivery_scenarios: int = Field(default=50, description="alert scenarios of alert_delivery (seed 002: 50)")

    def endpoint(self, settings: Settings, database_url: Callable[[], str]) -> Endpoint:
        """The configured endpoint, or the embedded receiver recording into ``database_url()``."""
        return alert_endpoint(settings.home, "" if self.alert_url else database_url(), self.alert_url,
                              self.routing_key)  # fmt: skip


def alerting_resource_from_env(**overrides: object) -> AlertingResource:
    bound = {field: dg.EnvVar(name) for field, name in ENV_VARIABLES.items() if os.environ.get(name)}
    return AlertingResource(**{**bound, **overrides})
