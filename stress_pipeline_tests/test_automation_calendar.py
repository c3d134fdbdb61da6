"""US market hours from the XNYS calendar (DST changes, a holiday, an early close), market time,
staleness of the lite run, the run's offset, and the suites file."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from stress_pipeline.automation.market_hours import (
    LITE_OFFSET_S,
    lite_not_before,
    lite_slot,
    lite_slots,
    lite_staleness,
    market_time_between,
    nightly_due,
    offset_wait_s,
    session_on,
)
from stress_pipeline.automation.suites import SuiteError, load_suites, suite_named
from stress_pipeline.scenarios.catalog import BASELINE_KEY, build_catalog

NY = ZoneInfo("America/New_York")
DATA = Path(__file__).resolve().parents[1] / "data"


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def ny(*args: int) -> datetime:
    return datetime(*args, tzinfo=NY)


def hours_utc(slots: list[datetime]) -> list[str]:
    return [slot.astimezone(UTC).strftime("%H:%M") for slot in slots]


def test_slots_keep_new_york_times_across_the_march_dst_change() -> None:
    # Friday 6 March 2026 is EST (UTC-5); Monday 9 March is EDT (UTC-4): the same New York times.
    before, after = lite_slots(date(2026, 3, 6)), lite_slots(date(2026, 3, 9))
    assert hours_utc(before) == ["14:30", "15:00", "16:00", "17:00", "18:00", "19:00", "20:00"]
    assert hours_utc(after) == ["13:30", "14:00", "15:00", "16:00", "17:00", "18:00", "19:00"]
    for slots in (before, after):
        assert [s.astimezone(NY).strftime("%H:%M") for s in slots] == [
            "09:30", "10:00", "11:00", "12:00", "13:00", "14:00", "15:00"
        ]  # fmt: skip
    assert lite_slot(utc(2026, 3, 9, 13, 30)).due and not lite_slot(utc(2026, 3, 6, 13, 30)).due


def test_slots_keep_new_york_times_across_the_november_dst_change() -> None:
    before, after = lite_slots(date(2026, 10, 30)), lite_slots(date(2026, 11, 2))
    assert hours_utc(before)[:2] == ["13:30", "14:00"] and hours_utc(before)[-1] == "19:00"
    assert hours_utc(after)[:2] == ["14:30", "15:00"] and hours_utc(after)[-1] == "20:00"
    # 09:30 EST is 14:30 UTC: before the change that instant was 10:30 EDT, inside the session.
    assert lite_slot(utc(2026, 11, 2, 14, 30)).due
    assert "before the open" in lite_slot(utc(2026, 11, 2, 13, 30)).reason


def test_a_holiday_has_no_slot_and_says_which_holiday() -> None:
    thanksgiving = date(2026, 11, 26)
    assert session_on(thanksgiving) is None and lite_slots(thanksgiving) == []
    decision = lite_slot(ny(2026, 11, 26, 11, 0))
    assert not decision.due and "XNYS closed (Thanksgiving)" in decision.reason
    weekend = lite_slot(ny(2026, 11, 28, 11, 0))
    assert not weekend.due and "weekend" in weekend.reason


def test_an_early_close_ends_the_slots_at_13_00() -> None:
    friday = session_on(date(2026, 11, 27))
    assert friday is not None and friday.early_close
    assert friday.close == ny(2026, 11, 27, 13, 0).astimezone(UTC)
    assert [s.astimezone(NY).strftime("%H:%M") for s in lite_slots(date(2026, 11, 27))] == [
        "09:30", "10:00", "11:00", "12:00"
    ]  # fmt: skip
    assert lite_slot(ny(2026, 11, 27, 12, 0)).due
    late = lite_slot(ny(2026, 11, 27, 13, 0))
    assert not late.due and "after the early close at 13:00" in late.reason
    regular = lite_slot(ny(2026, 11, 30, 16, 0))
    assert not regular.due and "after the close at 16:00" in regular.reason


def test_nightly_runs_after_the_close_of_a_trading_day_only() -> None:
    assert nightly_due(ny(2026, 11, 25, 17, 30)).due
    assert not nightly_due(ny(2026, 11, 25, 15, 30)).due
    holiday = nightly_due(ny(2026, 11, 26, 17, 30))
    assert not holiday.due and "Thanksgiving" in holiday.reason
    assert nightly_due(ny(2026, 11, 27, 13, 30)).due  # after the early close


def test_market_time_counts_only_sessions() -> None:
    friday_3pm, monday_10am = ny(2026, 3, 6, 15, 0), ny(2026, 3, 9, 10, 0)
    assert market_time_between(friday_3pm, monday_10am) == timedelta(hours=1, minutes=30)
    # Over Thanksgiving and its early close: Wed 15:00-16:00, Fri 09:30-13:00, Mon 09:30-10:00.
    assert market_time_between(ny(2026, 11, 25, 15, 0), ny(2026, 11, 30, 10, 0)) == timedelta(hours=5)
    assert market_time_between(monday_10am, friday_3pm) == timedelta(0)


def test_staleness_is_judged_in_market_time_and_only_in_market_hours() -> None:
    now = ny(2026, 3, 10, 11, 0)
    fresh = lite_staleness(now, ny(2026, 3, 10, 9, 30), ny(2026, 3, 1, 0, 0))
    assert not fresh.stale and fresh.elapsed == timedelta(hours=1, minutes=30)
    stale = lite_staleness(now, ny(2026, 3, 9, 15, 0), ny(2026, 3, 1, 0, 0))
    assert stale.stale and stale.elapsed == timedelta(hours=2, minutes=30)
    assert "since the last successful lite run" in stale.reason and stale.session.day == date(2026, 3, 10)
    # Watching began after the last run: counted from then, not from the old run.
    watched = lite_staleness(now, ny(2026, 3, 2, 15, 0), ny(2026, 3, 10, 10, 0))
    assert not watched.stale and "watching began" in watched.reason
    # No run ever and watching for long: stale.
    assert lite_staleness(now, None, ny(2026, 3, 9, 9, 30)).stale
    closed = lite_staleness(ny(2026, 3, 10, 18, 0), None, ny(2026, 3, 1, 0, 0))
    assert not closed.stale and "outside market hours" in closed.reason


def test_the_offset_is_applied_by_waiting_for_not_before() -> None:
    slot = ny(2026, 3, 10, 11, 0)
    not_before = lite_not_before(slot)
    assert not_before - slot == timedelta(seconds=LITE_OFFSET_S) == timedelta(seconds=5)
    assert offset_wait_s(not_before, slot + timedelta(seconds=1)) == pytest.approx(4.0)
    assert offset_wait_s(not_before, slot + timedelta(seconds=30)) == 0.0
    with pytest.raises(ValueError, match=r"3600\.0 s ahead of .* more than the 5 s offset"):
        offset_wait_s(not_before, slot - timedelta(seconds=3595))
    with pytest.raises(ValueError, match="naive 2026-03-10T11:00:00"):
        lite_slot(datetime(2026, 3, 10, 11, 0))


def test_the_shipped_suites_define_core_as_major_and_catastrophic_without_monte_carlo() -> None:
    suites = load_suites(DATA / "suites.yaml")
    assert set(suites) == {"nightly_core_suite", "weekly_full_sweep"}
    scenarios = build_catalog(DATA / "stress_packs").scenarios
    core = suites["nightly_core_suite"].scenario_keys(scenarios)
    every = suites["weekly_full_sweep"].scenario_keys(scenarios)
    by_key = {s.key: s for s in scenarios}
    assert core[0] == BASELINE_KEY and every == [BASELINE_KEY, *by_key]
    assert set(core) - {BASELINE_KEY} == {
        k for k, s in by_key.items() if s.severity in ("major", "catastrophic") and s.type != "monte_carlo"
    }
    assert len(core) > 10 and not any(by_key[k].type == "monte_carlo" for k in core[1:])
    assert any(s.type == "monte_carlo" for s in scenarios) and suites["weekly_full_sweep"].every_scenario
    assert "certification_report" in suites["nightly_core_suite"].select


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("suites: {}", "expected a mapping `suites:`"),
        ("suites: {nightly: {scenarios: all}}", "suite 'nightly', field select: expected a Dagster asset selection"),
        ("suites: {nightly: {select: '*', scenarios: {severities: [huge]}}}", "field scenarios.severities"),
        ("suites: {nightly: {select: '*', scenarios: {exclude_types: [monte]}}}", "field scenarios.exclude_types"),
        ("suites: {nightly: {select: '*', scenarios: {baseline: maybe}}}", "field scenarios.baseline"),
        ("suites: {nightly: {select: '*', schedule: daily}}", "unknown field(s) schedule"),
        ("suites: [", "not valid YAML"),
    ],
)
def test_a_bad_suites_file_is_named_with_suite_and_field(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "suites.yaml"
    path.write_text(text)
    with pytest.raises(SuiteError, match=r"suites\.yaml") as raised:
        load_suites(path)
    assert message in str(raised.value)


def test_an_unknown_suite_names_the_defined_ones(tmp_path: Path) -> None:
    with pytest.raises(SuiteError, match=r"no suite 'hourly' \(defined: nightly_core_suite, weekly_full_sweep\)"):
        suite_named(DATA / "suites.yaml", "hourly")
