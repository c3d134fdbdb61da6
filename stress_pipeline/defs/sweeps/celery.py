"""The sweep job on Dagster's Celery executor: which executor, which broker, which queue.

With STRESS_EXECUTOR=celery the ``parameter_sweep`` job runs each step as a Celery task on the workers
listening on STRESS_CELERY_QUEUE at STRESS_CELERY_BROKER (the run itself is launched as usual: the
Celery run launcher is broken in this Dagster line, the executor is not). The workers re-import this code
location and open the instance from the run's ``InstanceRef``: on several hosts the instance keeps its
runs and events in PostgreSQL (dagster-postgres) and STRESS_HOME is storage every host mounts.

Queues and priorities are Celery's by tag: a step tagged ``dagster-celery/queue`` goes to that queue
(else STRESS_CELERY_QUEUE), ``dagster-celery/priority`` on a step and ``dagster-celery/run_priority`` on a
run order the tasks (higher first, 0-10 on RabbitMQ's priority queue ``dagster``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

import dagster as dg

EXECUTOR_VARIABLE = "STRESS_EXECUTOR"
DEFAULT_BROKER = "amqp://guest:guest@127.0.0.1:5672//"
DEFAULT_BACKEND = "rpc://"
DEFAULT_QUEUE = "dagster"  # the queue dagster-celery declares with priorities
EXECUTORS = ("default", "celery")


class ExecutorSettingError(ValueError):
    """STRESS_EXECUTOR or a Celery variable holds a value the project cannot use."""


@dataclass(frozen=True)
class CelerySettings:
    """Where the sweep's Celery tasks go: the broker, the result backend and the default queue."""

    broker: str = DEFAULT_BROKER
    backend: str = DEFAULT_BACKEND
    queue: str = DEFAULT_QUEUE

    def executor_config(self) -> dict[str, object]:
        """The ``celery_executor`` config block (the workers' ``-y`` file holds the same under execution.config)."""
        return {"broker": self.broker, "backend": self.backend, "config_source": {"task_default_queue": self.queue}}


def celery_settings(environ: Mapping[str, str] | None = None) -> CelerySettings | None:
    """The Celery settings when STRESS_EXECUTOR=celery (None for the default executor)."""
    env = os.environ if environ is None else environ
    executor = env.get(EXECUTOR_VARIABLE) or "default"
    if executor not in EXECUTORS:
        raise ExecutorSettingError(f"{EXECUTOR_VARIABLE}={executor!r}: expected one of {', '.join(EXECUTORS)}")
    if executor == "default":
        return None
    return CelerySettings(
        broker=env.get("STRESS_CELERY_BROKER") or DEFAULT_BROKER,
        backend=env.get("STRESS_CELERY_BACKEND") or DEFAULT_BACKEND,
        queue=env.get("STRESS_CELERY_QUEUE") or DEFAULT_QUEUE,
    )


def celery_executor_for(settings: CelerySettings) -> dg.ExecutorDefinition:
    """dagster-celery's executor configured with ``settings`` (an error that says what to install without it)."""
    try:
        from dagster_celery import celery_executor
    except ImportError as err:
        raise ExecutorSettingError(
            f"{EXECUTOR_VARIABLE}=celery needs dagster-celery: pip install -e '.[celery]' ({err})"
        ) from None
    return celery_executor.configured(settings.executor_config(), name="celery_sweep")


def sweep_executor(environ: Mapping[str, str] | None = None) -> dg.ExecutorDefinition | None:
    """The executor of the sweep job: Celery's when configured, else None (the Definitions' default)."""
    settings = celery_settings(environ)
    return None if settings is None else celery_executor_for(settings)
