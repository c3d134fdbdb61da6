"""Fixtures shared by the test modules."""

from __future__ import annotations

import os
from typing import NamedTuple

import pytest


class ExternalServiceUrls(NamedTuple):
    postgres_url: str
    redis_url: str


@pytest.fixture
def external_service_urls() -> ExternalServiceUrls:
    """The servers named by STRESS_POSTGRES_URL and STRESS_REDIS_URL.

    Without them the test is skipped — unless STRESS_REQUIRE_EXTERNAL_SERVICES=1 (set in CI), where a
    silently skipped suite would hide a broken CI configuration, so the test fails instead.
    """
    names = ("STRESS_POSTGRES_URL", "STRESS_REDIS_URL")
    missing = [name for name in names if not os.environ.get(name)]
    if missing:
        reason = f"external services not configured: {', '.join(missing)} unset"
        if os.environ.get("STRESS_REQUIRE_EXTERNAL_SERVICES") == "1":
            pytest.fail(f"{reason} but STRESS_REQUIRE_EXTERNAL_SERVICES=1", pytrace=False)
        pytest.skip(reason)
    return ExternalServiceUrls(os.environ["STRESS_POSTGRES_URL"], os.environ["STRESS_REDIS_URL"])
