"""Typed fault specs: one model per kind, errors that name the field, and one window rule for all.

The window of a fault is [at_s, at_s + duration_s) after the first bar, in whole nanoseconds computed
from the exact value of each float; the exchange simulator's windows and the state layer's plan must
be exactly that window.
"""

from __future__ import annotations

import re
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stress_pipeline.faults import STATE_KINDS, FaultPlan
from stress_pipeline.scenarios import load_packs
from stress_pipeline.scenarios.fault_model import (
    FAULT_KINDS,
    FAULT_TYPES,
    MAX_FAULT_SECONDS,
    FaultBase,
    FaultSpecError,
    LatencySpikeFault,
    RateLimitFault,
    WriterCrashFault,
    parse_faults,
    seconds_to_ns,
)
from stress_pipeline.trading.exchange.faults import MODELLED, fault_windows

START = 1_700_000_000_000_000_000
NS = 1_000_000_000
PACKS = Path(__file__).resolve().parents[1] / "data" / "stress_packs"

_seconds = st.floats(0, MAX_FAULT_SECONDS, allow_nan=False, allow_infinity=False)
_duration = st.floats(1e-9, MAX_FAULT_SECONDS, allow_nan=False, allow_infinity=False)
_start = st.integers(0, 2 * 10**18)
_PARAMS = {
    "writer_crash": st.fixed_dictionaries({}, optional={"point": st.just("after_ledger_before_redis")}),
    "rate_limit": st.fixed_dictionaries({}, optional={"limit_mult": st.floats(0, 100)}),
    "latency_spike": st.fixed_dictionaries({}, optional={"mult": st.floats(0, 1_000)}),
    "duplicate_fills": st.fixed_dictionaries({}, optional={"rate": st.floats(0, 1)}),
    "out_of_order_fills": st.fixed_dictionaries({}, optional={"window": st.integers(1, 1_000)}),
}


@st.composite
def fault_mappings(draw: st.DrawFn) -> dict:
    """Any valid fault as a stress pack writes it."""
    kind = draw(st.sampled_from(FAULT_KINDS))
    fault: dict = {"kind": kind, "at_s": draw(_seconds)}
    if kind != "writer_crash":
        fault["duration_s"] = draw(_duration)
    params = draw(_PARAMS.get(kind, st.just({})))
    if params or draw(st.booleans()):
        fault["params"] = params
    return fault


def _reference_ns(seconds: float) -> int:
    """Nanoseconds of a float's exact value, rounded half-even, by Decimal (independent of the code)."""
    return int((Decimal(seconds) * NS).to_integral_value(rounding=ROUND_HALF_EVEN))


# ------------------------------------------------------------------------------------------- window


@settings(max_examples=300, deadline=None)
@given(fault=fault_mappings(), start=_start)
def test_the_window_of_any_valid_fault_is_at_s_plus_duration_s_in_exact_nanoseconds(fault: dict, start: int) -> None:
    (spec,) = parse_faults([fault])
    assert isinstance(spec, FAULT_TYPES[fault["kind"]])
    begin, end = spec.window_ns(start)
    assert begin == start + _reference_ns(fault["at_s"])
    assert end == begin + _reference_ns(fault.get("duration_s", 0.0))
    assert (end > begin) == (fault["kind"] != "writer_crash")  # a crash is an instant, every other window is not
    assert spec.window_ns(start + 12_345) == (begin + 12_345, end + 12_345)  # relative to the first bar only


@settings(max_examples=300, deadline=None)
@given(at_ns=st.integers(0, 2**52), duration_ns=st.integers(1, 2**52), start=_start)
def test_seconds_written_from_whole_nanoseconds_come_back_exactly(at_ns: int, duration_ns: int, start: int) -> None:
    """Below 2**52 ns (52 days) a float of seconds holds every nanosecond; the window must find it again."""
    spec = RateLimitFault(at_s=at_ns / NS, duration_s=duration_ns / NS)
    assert spec.window_ns(start) == (start + at_ns, start + at_ns + duration_ns)


@given(at_s=st.integers(0, MAX_FAULT_SECONDS), duration_s=st.integers(1, MAX_FAULT_SECONDS))
def test_whole_seconds_are_exact_up_to_the_longest_fault(at_s: int, duration_s: int) -> None:
    (spec,) = parse_faults([{"kind": "redis_down", "at_s": at_s, "duration_s": duration_s}])
    assert spec.window_ns(START) == (START + at_s * NS, START + (at_s + duration_s) * NS)
    assert START + (MAX_FAULT_SECONDS * 2) * NS < 2**63  # every window fits in int64 nanoseconds


def test_nanoseconds_come_from_the_exact_value_not_a_float_product() -> None:
    at_s = 3420029.5021704426  # exactly 3420029.502170442580... s
    assert round(at_s * 1e9) == 3_420_029_502_170_442  # the float product rounds down first
    assert seconds_to_ns(at_s) == 3_420_029_502_170_443
    assert LatencySpikeFault(at_s=at_s, duration_s=1).window_ns(0)[0] == 3_420_029_502_170_443


@settings(max_examples=150, deadline=None)
@given(faults=st.lists(fault_mappings(), max_size=8), start=_start)
def test_exchange_windows_and_the_state_plan_use_the_same_window(faults: list[dict], start: int) -> None:
    specs = parse_faults(faults)
    windows = fault_windows(specs, start)
    arrays = {"exchange_outage": windows.outage, "rate_limit": windows.rate_limit,
              "latency_spike": windows.latency, "postgres_down": windows.ledger_down,
              "kill_switch": windows.kill_switch}  # fmt: skip
    for kind in MODELLED:
        expected = [spec.window_ns(start) for spec in specs if spec.kind == kind]
        assert [tuple(row) for row in arrays[kind].tolist()] == expected
    assert windows.rate_limit_mult.tolist() == [s.params.limit_mult for s in specs if s.kind == "rate_limit"]
    assert windows.latency_mult.tolist() == [s.params.mult for s in specs if s.kind == "latency_spike"]

    outages = [s for s in specs if s.kind in ("redis_down", "postgres_down")]
    try:
        plan = FaultPlan.from_scenario(specs, start)
    except ValueError as err:  # two outages of one server at once: refused, and only then
        assert "overlaps the previous" in str(err) and len(outages) >= 2
        return
    begins = {(a.index, a.begin_ns, a.end_ns) for a in plan.actions if a.phase == "begin"}
    assert begins == {(i, *spec.window_ns(start)) for i, spec in enumerate(specs) if spec.kind in STATE_KINDS}


# ------------------------------------------------------------------------------------------- models


def test_every_kind_has_its_model_with_typed_defaults() -> None:
    assert set(FAULT_KINDS) == {
        "redis_down", "postgres_down", "writer_crash", "exchange_outage", "rate_limit", "latency_spike",
        "duplicate_fills", "out_of_order_fills", "kill_switch",
    }  # fmt: skip
    defaults = {kind: parse_faults([{"kind": kind, "at_s": 1, "duration_s": 2}
                                    if kind != "writer_crash" else {"kind": kind, "at_s": 1}])[0].params.model_dump()
                for kind in FAULT_KINDS}  # fmt: skip
    assert defaults == {
        "redis_down": {}, "postgres_down": {}, "exchange_outage": {},
        "writer_crash": {"point": "after_ledger_before_redis"},
        "rate_limit": {"limit_mult": 0.0}, "latency_spike": {"mult": 10.0},
        "duplicate_fills": {"rate": 0.1}, "out_of_order_fills": {"window": 5}, "kill_switch": {},
    }  # fmt: skip
    assert all(issubclass(cls, FaultBase) and cls.model_fields["kind"].default == kind
               for kind, cls in FAULT_TYPES.items())  # fmt: skip
    assert WriterCrashFault(at_s=7).window_ns(0) == (7 * NS, 7 * NS)


@pytest.mark.parametrize(
    ("faults", "message"),
    [
        ([{"kind": "latency_spike", "at_s": 1, "duration_s": 1, "params": {"mult": -2}}],
         "faults[0] (latency_spike): params.mult: Input should be greater than or equal to 0 (got -2)"),
        ([{"kind": "rate_limit", "at_s": 1, "duration_s": 1, "params": {"limit_mult": "half"}}],
         "faults[0] (rate_limit): params.limit_mult: Input should be a valid number (got 'half')"),
        ([{"kind": "rate_limit", "at_s": 1, "duration_s": 1, "params": {"mult": 2}}],
         "faults[0] (rate_limit): params.mult: unknown field"),
        ([{"kind": "exchange_outage", "at_s": 1, "duration_s": 1}, {"kind": "exchange_outage", "at_s": 2}],
         "faults[1] (exchange_outage): duration_s: missing (required)"),
        ([{"kind": "exchange_outage", "at_s": float("inf"), "duration_s": 1}],
         "faults[0] (exchange_outage): at_s: Input should be a finite number (got inf)"),
        ([{"kind": "postgres_down", "at_s": MAX_FAULT_SECONDS + 1, "duration_s": 1}],
         f"faults[0] (postgres_down): at_s: Input should be less than or equal to {MAX_FAULT_SECONDS}"),
        ([{"kind": "postgres_down", "at_s": True, "duration_s": 1}],
         "faults[0] (postgres_down): at_s: Input should be a valid number (got True)"),
        ([{"at_s": 1, "duration_s": 1}], "faults[0] (None): kind: expected one of redis_down, postgres_down"),
    ],
)
def test_bad_faults_are_refused_naming_position_kind_and_field(faults: list[dict], message: str) -> None:
    with pytest.raises(FaultSpecError, match=re.escape(message)):
        parse_faults(faults)


def test_a_bad_fault_in_a_pack_names_the_file_scenario_and_field(tmp_path: Path) -> None:
    pack = tmp_path / "drills.yaml"
    pack.write_text(
        "pack: drills\nscenarios:\n"
        "  - name: Slow venue\n    type: historical_replay\n    symbols: [BTCUSDT]\n"
        "    parameters: {start: '2024-01-01T00:00:00Z', end: '2024-01-02T00:00:00Z'}\n"
        "    faults:\n      - {kind: latency_spike, at_s: 60, duration_s: 30, params: {mult: -1}}\n"
    )
    with pytest.raises(ValueError) as err:
        load_packs(tmp_path)
    text = str(err.value)
    assert "drills.yaml" in text and "Slow venue" in text and "faults.0.latency_spike.params.mult" in text


def test_the_shipped_packs_load_unchanged_into_typed_faults() -> None:
    faults = [fault for scenario in load_packs(PACKS) for fault in scenario.faults]
    assert {fault.kind for fault in faults} >= {"redis_down", "postgres_down", "writer_crash", "duplicate_fills",
                                                 "out_of_order_fills"}  # fmt: skip
    by_kind = {fault.kind: fault for fault in faults}
    assert by_kind["duplicate_fills"].params.rate == 0.2 and by_kind["out_of_order_fills"].params.window == 5
    assert by_kind["redis_down"].window_ns(0) == (259_200 * NS, 259_260 * NS)
