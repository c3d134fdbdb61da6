"""Unplanned server loss: bring the server back within a bound, or fail with one clear error.

A planned outage (a scenario's drill) is begun and ended by the run itself. Any other time a write
finds PostgreSQL or Redis gone, the server was lost: the writer has buffered the write already (the
loss is detected by that failed write, so within one write's connect timeout), and the run's loop
asks the server's :class:`Supervisor` to get it back before going on:

* an embedded server (this STRESS_HOME's own process) is restarted through ``restart`` at most
  ``restart_attempts`` times, each attempt followed by a health probe;
* an external server is someone else's to restart: it gets ``outage_budget_s`` seconds, probed every
  ``probe_interval_s``.

Past the attempts or the budget, :class:`ServerLostError` ends the run; its message names the server
(its masked URL), how long it was gone and what the last probe said. Nothing buffered is dropped by
that: the disk buffer keeps it for the next run to replay (:mod:`~stress_pipeline.state.leftovers`).

No Dagster and no environment here: the caller passes the probe, the restart and the policy.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import TypeVar

from stress_pipeline.services.errors import ServiceUnavailableError

_T = TypeVar("_T")


class ServerLostError(RuntimeError):
    """A server stayed away past its bound; the message names it."""

    def __init__(self, server: str, message: str) -> None:
        self.server = server
        super().__init__(message)


@dataclass(frozen=True)
class SupervisorPolicy:
    restart_attempts: int = 3  # restarts of an embedded server before giving up
    outage_budget_s: float = 30.0  # seconds an external server may stay away
    probe_interval_s: float = 0.1

    def __post_init__(self) -> None:
        if self.restart_attempts < 1:
            raise ValueError(f"restart_attempts must be at least 1, got {self.restart_attempts}")
        if not self.outage_budget_s > 0 or not self.probe_interval_s > 0:
            raise ValueError(
                f"outage_budget_s and probe_interval_s must be positive, got {self.outage_budget_s} "
                f"and {self.probe_interval_s}"
            )


@dataclass(frozen=True)
class Recovery:
    """One unplanned loss that ended with the server back."""

    server: str
    how: str  # "restarted" (embedded) or "returned" (external)
    attempts: int  # restarts made (embedded) or probes made (external)
    seconds: float  # from the supervisor's call until the server answered


class Supervisor:
    """Gets one server back after an unplanned loss (see the module docstring).

    ``probe()`` raises ServiceUnavailableError while the server does not answer on the run's URL;
    ``restart()`` (None for an external server) starts the embedded process again.
    """

    def __init__(
        self, server: str, probe: Callable[[], None], restart: Callable[[], None] | None,
        policy: SupervisorPolicy = SupervisorPolicy(), *, clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:  # fmt: skip
        self.server, self.policy = server, policy
        self._probe, self._restart, self._clock, self._sleep = probe, restart, clock, sleep
        self.recoveries: list[Recovery] = []

    def alive(self) -> bool:
        """One health probe: does the server answer now?"""
        try:
            self._probe()
        except ServiceUnavailableError:
            return False
        return True

    def recover(self) -> Recovery:
        """Bring the server back, or raise ServerLostError naming it."""
        started = self._clock()
        recovery = self._restart_embedded(started) if self._restart is not None else self._wait_external(started)
        self.recoveries.append(recovery)
        return recovery

    def _restart_embedded(self, started: float) -> Recovery:
        last = "no attempt made"
        for attempt in range(1, self.policy.restart_attempts + 1):
            if self.alive():  # it came back on its own (or another process restarted it)
                return Recovery(self.server, "restarted", attempt - 1, self._clock() - started)
            try:
                assert self._restart is not None
                self._restart()
                self._probe()
            except (ServiceUnavailableError, OSError, RuntimeError) as err:
                last = str(err)
                self._sleep(self.policy.probe_interval_s * attempt)
                continue
            return Recovery(self.server, "restarted", attempt, self._clock() - started)
        raise ServerLostError(
            self.server,
            f"{self.server} was lost and did not come back after {self.policy.restart_attempts} restart "
            f"attempt(s) in {self._clock() - started:.1f} s; last error: {last}",
        )

    def _wait_external(self, started: float) -> Recovery:
        probes = 0
        last = "no probe made"
        while True:
            probes += 1
            try:
                self._probe()
            except ServiceUnavailableError as err:
                last = err.cause
            else:
                return Recovery(self.server, "returned", probes, self._clock() - started)
            waited = self._clock() - started
            if waited >= self.policy.outage_budget_s:
                raise ServerLostError(
                    self.server,
                    f"{self.server} has been unreachable for {waited:.1f} s, past its outage budget of "
                    f"{self.policy.outage_budget_s:g} s; last probe: {last}",
                )
            self._sleep(min(self.policy.probe_interval_s, self.policy.outage_budget_s - waited))


def supervised(by_service: Mapping[str, Supervisor], action: Callable[[], _T], *, skip: Collection[str] = ()) -> _T:
    """``action()``, getting back each server it finds gone (at most once per server) and trying again.

    ``by_service`` maps the ``service`` of a ServiceUnavailableError ("PostgreSQL", "Redis") to its
    supervisor; a server in ``skip`` (down on purpose) or without one is not waited for."""
    recovered: set[str] = set()
    while True:
        try:
            return action()
        except ServiceUnavailableError as err:
            supervisor = by_service.get(err.service)
            if supervisor is None or err.service in skip or err.service in recovered:
                raise
            recovered.add(err.service)
            supervisor.recover()


__all__ = ["Recovery", "ServerLostError", "Supervisor", "SupervisorPolicy", "supervised"]
