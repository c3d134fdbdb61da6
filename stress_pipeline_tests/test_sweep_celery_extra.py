"""The ``[celery]`` extra pins one Dagster line: dagster-celery and dagster-postgres 0.X.Y go with dagster
1.(X-16).Y exactly (their own requirement), and the webserver with dagster."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def test_the_celery_extra_pins_matching_dagster_lines() -> None:
    extra = tomllib.loads(PYPROJECT.read_text())["project"]["optional-dependencies"]["celery"]
    pins = dict(re.fullmatch(r"([a-z-]+)==([0-9.]+)", spec).groups() for spec in extra)
    assert set(pins) == {"dagster", "dagster-webserver", "dagster-celery", "dagster-postgres"}
    major, minor, patch = (int(part) for part in pins["dagster"].split("."))
    assert major == 1 and pins["dagster-webserver"] == pins["dagster"]
    assert pins["dagster-celery"] == pins["dagster-postgres"] == f"0.{minor + 16}.{patch}"


def test_the_executor_settings_come_from_the_environment() -> None:
    import pytest

    from stress_pipeline.defs.sweeps.celery import DEFAULT_BROKER, ExecutorSettingError, celery_settings
    from stress_pipeline.defs.sweeps.workers import worker_command

    assert celery_settings({}) is None and celery_settings({"STRESS_EXECUTOR": "default"}) is None
    default = celery_settings({"STRESS_EXECUTOR": "celery"})
    assert (default.broker, default.backend, default.queue) == (DEFAULT_BROKER, "rpc://", "dagster")
    custom = celery_settings({"STRESS_EXECUTOR": "celery", "STRESS_CELERY_BROKER": "amqp://u:p@mq:5672//",
                              "STRESS_CELERY_QUEUE": "sweeps"})  # fmt: skip
    assert custom.executor_config() == {
        "broker": "amqp://u:p@mq:5672//", "backend": "rpc://", "config_source": {"task_default_queue": "sweeps"},
    }  # fmt: skip
    with pytest.raises(ExecutorSettingError, match="STRESS_EXECUTOR='dask': expected one of default, celery"):
        celery_settings({"STRESS_EXECUTOR": "dask"})
    command = worker_command(Path("/x/celery.yaml"), "sweep-1", "sweeps", concurrency=2)
    assert command[1:] == ["worker", "start", "-A", "dagster_celery.app", "-y", "/x/celery.yaml", "-q", "sweeps",
                           "-n", "sweep-1", "--", "--concurrency=2"]  # fmt: skip
