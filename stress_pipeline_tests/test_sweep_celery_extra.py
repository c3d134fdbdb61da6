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
