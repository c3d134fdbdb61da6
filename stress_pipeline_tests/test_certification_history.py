"""Certification history in a real PostgreSQL: migrations, records with their gates, the streak.

Runs against STRESS_POSTGRES_URL (skipped when unset, failed when STRESS_REQUIRE_EXTERNAL_SERVICES=1);
each test works in a schema of its own, dropped afterwards.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stress_pipeline.certification import history
from stress_pipeline.certification.decide import certify
from stress_pipeline.certification.gates import GO, NO_GO
from stress_pipeline.services import postgres_engine
from stress_pipeline_tests.test_certification_gates import all_attested, flood_table, full_sources

PASSING = certify(full_sources(), attestations=all_attested())
FAILING = certify(full_sources(decision_flood=flood_table(p99=16.0)), attestations=all_attested())
# a NO-GO whose core suite passes: only the (non-core) monitoring coverage is missing
CORE_ONLY = certify(full_sources(monitoring_coverage=None), attestations=all_attested())


@pytest.fixture
def engine(external_service_urls) -> Iterator[sa.Engine]:
    engine = postgres_engine(external_service_urls.postgres_url)
    yield engine
    engine.dispose()


@pytest.fixture
def schema(engine: sa.Engine) -> Iterator[str]:
    name = f"test_cert_{uuid.uuid4().hex[:12]}"
    yield name
    with engine.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))


def _record(engine, schema, certification, n=0, **kwargs):
    return history.record(engine, certification, partition=f"2026-12-{1 + n % 28:02d}", code_version="git test",
                          data_fingerprint=f"fp{n}", schema=schema, **kwargs)  # fmt: skip


def test_migrate_is_idempotent_and_keeps_its_own_version_table(engine, schema):
    assert history.current_revision(engine, schema) is None
    assert history.migrate(engine, schema) == history.head_revision() == "c0001"
    assert history.migrate(engine, schema) == "c0001"
    with engine.connect() as conn:
        names = set(sa.inspect(conn).get_table_names(schema=schema))
    assert names == {"certifications", "certification_gates", history.VERSION_TABLE}


def test_record_stores_every_gate_and_reads_it_back(engine, schema):
    history.migrate(engine, schema)
    stored = _record(engine, schema, FAILING)
    assert (stored.verdict, stored.core_passed, stored.streak, stored.certified) == (NO_GO, False, 0, False)
    assert stored.reasons == FAILING.reasons and stored.data_fingerprint == "fp0"
    back = history.gates_of(engine, stored.certification_id, schema=schema)
    assert [g.row() for g in back.gates] == [g.row() for g in FAILING.gates]
    assert back.readiness.equals(FAILING.readiness)
    assert history.latest(engine, schema=schema) == stored
    assert history.latest(engine, partition="2030-01-01", schema=schema) is None
    with pytest.raises(LookupError, match="no certification #999"):
        history.gates_of(engine, 999, schema=schema)


def test_streak_across_101_certifications_certifies_at_100_and_resets(engine, schema):
    history.migrate(engine, schema)
    records = [_record(engine, schema, PASSING, n) for n in range(99)]
    assert [r.streak for r in records] == list(range(1, 100))
    assert not any(r.certified for r in records)
    hundredth = _record(engine, schema, PASSING, 99)
    assert (hundredth.streak, hundredth.certified, hundredth.verdict) == (100, True, GO)
    hundred_first = _record(engine, schema, PASSING, 100)
    assert (hundred_first.streak, hundred_first.certified) == (101, True)
    reset = _record(engine, schema, FAILING, 101)
    assert (reset.streak, reset.certified) == (0, False)
    again = _record(engine, schema, PASSING, 102)
    assert (again.streak, again.certified) == (1, False)
    stored = history.history(engine, limit=200, schema=schema)
    assert len(stored) == 103 and [r.certification_id for r in stored] == sorted(r.certification_id for r in stored)
    assert history.streak_from_history([r.core_passed for r in stored]) == again.streak


def test_core_suite_decides_the_streak_not_the_overall_verdict(engine, schema):
    history.migrate(engine, schema)
    assert CORE_ONLY.verdict == NO_GO and history.core_passed(CORE_ONLY)
    first = _record(engine, schema, CORE_ONLY, 0)
    second = _record(engine, schema, CORE_ONLY, 1)
    assert (first.streak, second.streak, second.verdict) == (1, 2, NO_GO)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.booleans(), min_size=1, max_size=12))
def test_stored_streak_matches_its_definition(engine, passes):
    schema = f"test_cert_{uuid.uuid4().hex[:12]}"
    try:
        history.migrate(engine, schema)
        stored = [_record(engine, schema, PASSING if p else FAILING, n, required=3) for n, p in enumerate(passes)]
        for n, record in enumerate(stored):
            assert record.streak == history.streak_from_history(passes[: n + 1])
            assert record.certified == (record.streak >= 3)
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))


def test_code_version_names_the_checkout():
    assert history.code_version().startswith(("git ", "package "))
