"""The bar data-quality suite: real Great Expectations runs on crafted and generated frames."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stress_pipeline.market.quality import (
    BAR_CHECKS,
    REQUIRED_COLUMNS,
    CheckSpec,
    QualityReport,
    gap_ratio,
    infer_interval,
    validate_bars,
)

PROJECT_ROOT = Path(__file__).resolve().parents[1]

ALL_NAMES = [
    "required_columns",
    *(f"not_null:{c}" for c in REQUIRED_COLUMNS),
    "prices_positive:open",
    "prices_positive:high",
    "prices_positive:low",
    "prices_positive:close",
    "high_ge_open",
    "high_ge_close",
    "low_le_open",
    "low_le_close",
    "volume_non_negative",
    "ts_unique",
    "ts_strictly_increasing",
    "gap_ratio",
    "no_price_spikes",
    "no_frozen_bars",
]


def make_bars(n: int = 50, *, freq: str = "min", index_start: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Valid bars: canonical dtypes, pandas-3 string symbol, an index that is not a RangeIndex from 0."""
    rng = np.random.default_rng(seed)
    ts = pd.date_range("2024-03-01", periods=n, freq=freq, tz="UTC").as_unit("ns")
    mid = 100.0 + np.cumsum(rng.normal(0.0, 0.2, n))
    open_ = mid + rng.uniform(-0.1, 0.1, n)
    close = mid + rng.uniform(-0.1, 0.1, n)
    high = np.maximum(open_, close) + rng.uniform(0.0, 0.3, n)
    low = np.minimum(open_, close) - rng.uniform(0.0, 0.3, n)
    frame = pd.DataFrame(
        {
            "ts": ts,
            "symbol": pd.array(["BTCUSDT"] * n, dtype="str"),
            "open": open_,
            "high": high,
            "low": low,
            "close": close,
            "volume": rng.uniform(0.0, 5.0, n),
            "spread_bps": 1.5,
        }
    )
    frame.index = pd.RangeIndex(index_start, index_start + n)
    return frame


def failed_names(report: QualityReport) -> set[str]:
    return {o.name for o in report.failures}


def assert_rows(report: QualityReport, name: str, bars: pd.DataFrame, labels: list) -> None:
    outcome = report.outcome(name)
    assert outcome.unexpected_count == len(labels)
    assert list(outcome.unexpected_rows.index) == labels
    pd.testing.assert_frame_equal(outcome.unexpected_rows, bars.loc[labels])


# --------------------------------------------------------------------------------------------------
# Clean frames


def test_clean_frame_passes_every_expectation():
    bars = make_bars()
    report = validate_bars(bars)
    assert report.success
    assert report.rows == 50
    assert [o.name for o in report.outcomes] == ALL_NAMES
    assert all(o.success and o.unexpected_count == 0 for o in report.outcomes)
    assert all(o.unexpected_rows.empty for o in report.outcomes)
    assert report.failures == ()
    assert report.gap_ratio == 0.0
    assert report.interval == pd.Timedelta(minutes=1)
    assert all("\n" not in o.details for o in report.outcomes)


def test_outcomes_name_real_gx_expectation_types():
    report = validate_bars(make_bars(10))
    types = {o.name: o.expectation for o in report.outcomes}
    assert types["required_columns"] == "expect_table_columns_to_match_set"
    assert types["not_null:open"] == "expect_column_values_to_not_be_null"
    assert types["prices_positive:open"] == "expect_column_values_to_be_between"
    assert types["high_ge_close"] == "expect_column_pair_values_a_to_be_greater_than_b"
    assert types["ts_unique"] == "expect_column_values_to_be_unique"
    assert types["ts_strictly_increasing"] == "expect_column_values_to_be_increasing"
    assert types["gap_ratio"] == "expect_column_sum_to_be_between"


def test_stressed_frame_with_flag_columns_passes():
    bars = make_bars()
    bars["stressed"] = False
    bars["corrupted"] = False
    bars["halted"] = np.arange(len(bars)) % 7 == 0
    report = validate_bars(bars)
    assert report.success, report.summary()
    assert list(report.outcome("not_null:ts").unexpected_rows.columns) == list(bars.columns)


@pytest.mark.parametrize("tz", [None, "America/New_York", "Asia/Tokyo"])
def test_naive_and_other_time_zones_are_handled(tz):
    bars = make_bars(30)
    bars["ts"] = bars["ts"].dt.tz_convert(tz) if tz else bars["ts"].dt.tz_localize(None)
    bars.loc[1010, ["open", "high", "low", "close"]] = [100.0, 100.5, 99.0, 101.0]
    report = validate_bars(bars)
    assert failed_names(report) == {"high_ge_close"}
    # The offending row is the caller's row, time zone included.
    assert_rows(report, "high_ge_close", bars, [1010])
    assert report.interval == pd.Timedelta(minutes=1)


def test_string_timestamps_are_parsed():
    bars = make_bars(20)
    bars["ts"] = bars["ts"].dt.strftime("%Y-%m-%dT%H:%M:%SZ").astype("str")
    report = validate_bars(bars)
    assert report.success, report.summary()
    assert report.interval == pd.Timedelta(minutes=1)


def test_empty_frame_passes():
    bars = make_bars(0)
    report = validate_bars(bars)
    assert report.success
    assert report.rows == 0
    assert report.interval is None
    assert report.gap_ratio == 0.0


# --------------------------------------------------------------------------------------------------
# One violation at a time


def _set(column, labels, value):
    def mutate(bars):
        for label in labels:
            bars.loc[label, column] = value(bars, label) if callable(value) else value
        return bars

    return mutate


def _above_high(bars, label):
    return bars.loc[label, "high"] + 1.0


def _below_low(bars, label):
    return bars.loc[label, "low"] - 0.5


VIOLATIONS = [
    # (name, mutate, failing names, offending labels of the checked outcome)
    ("not_null:open", _set("open", [1005], np.nan), {"not_null:open"}, [1005]),
    ("not_null:high", _set("high", [1003, 1030], np.nan), {"not_null:high"}, [1003, 1030]),
    ("not_null:low", _set("low", [1049], np.nan), {"not_null:low"}, [1049]),
    ("not_null:close", _set("close", [1000], np.nan), {"not_null:close"}, [1000]),
    ("not_null:volume", _set("volume", [1020], np.nan), {"not_null:volume"}, [1020]),
    ("not_null:symbol", _set("symbol", [1007, 1008], None), {"not_null:symbol"}, [1007, 1008]),
    # The last bar: a null ts in the middle would also leave a gap.
    ("not_null:ts", _set("ts", [1049], pd.NaT), {"not_null:ts"}, [1049]),
    ("prices_positive:low", _set("low", [1010, 1011], 0.0), {"prices_positive:low"}, [1010, 1011]),
    ("prices_positive:low", _set("low", [1012], -5.0), {"prices_positive:low"}, [1012]),
    (
        "prices_positive:open",
        lambda b: b.assign(**{c: b[c].mask(b.index == 1015, 0.0) for c in ("open", "low", "close")}),
        {"prices_positive:open", "prices_positive:low", "prices_positive:close"},
        [1015],
    ),
    (
        "prices_positive:high",
        lambda b: b.assign(**{c: b[c].mask(b.index == 1016, -1.0) for c in ("open", "high", "low", "close")}),
        {f"prices_positive:{c}" for c in ("open", "high", "low", "close")},
        [1016],
    ),
    ("high_ge_open", _set("open", [1004, 1040], _above_high), {"high_ge_open"}, [1004, 1040]),
    ("high_ge_close", _set("close", [1002, 1033], _above_high), {"high_ge_close"}, [1002, 1033]),
    ("low_le_open", _set("open", [1021], _below_low), {"low_le_open"}, [1021]),
    ("low_le_close", _set("close", [1022, 1023, 1024], _below_low), {"low_le_close"}, [1022, 1023, 1024]),
    ("volume_non_negative", _set("volume", [1006], -0.01), {"volume_non_negative"}, [1006]),
]


@pytest.mark.parametrize(("name", "mutate", "failing", "labels"), VIOLATIONS, ids=[v[0] for v in VIOLATIONS])
def test_each_violation_is_reported_with_exact_rows(name, mutate, failing, labels):
    bars = mutate(make_bars())
    report = validate_bars(bars)
    assert not report.success
    assert failed_names(report) == failing, report.summary()
    assert_rows(report, name, bars, labels)
    assert name in report.summary()


def test_high_below_close_on_two_rows():
    bars = make_bars()
    for label in (1011, 1037):
        bars.loc[label, "high"] = bars.loc[label, "close"] - 0.01
        bars.loc[label, "open"] = min(bars.loc[label, "open"], bars.loc[label, "high"])
        bars.loc[label, "low"] = min(bars.loc[label, "low"], bars.loc[label, "open"])
    report = validate_bars(bars)
    assert failed_names(report) == {"high_ge_close"}
    assert_rows(report, "high_ge_close", bars, [1011, 1037])


def test_equal_prices_are_allowed():
    bars = make_bars()
    bars.loc[1010, ["open", "high", "low", "close"]] = 101.0
    assert validate_bars(bars).success


def test_nan_price_is_reported_by_not_null_only():
    bars = make_bars()
    bars.loc[1009, "close"] = np.nan
    report = validate_bars(bars)
    assert failed_names(report) == {"not_null:close"}
    outcome = report.outcome("not_null:close")
    assert outcome.expectation == "expect_column_values_to_not_be_null"
    assert outcome.column == "close"
    assert_rows(report, "not_null:close", bars, [1009])
    # Column-value checks skip nulls, so the positivity and pair checks stay quiet on that row.
    assert report.outcome("prices_positive:close").success
    assert report.outcome("high_ge_close").success


def test_duplicate_row_fails_unique_and_strictly_increasing():
    bars = make_bars(20)
    duplicate = bars.loc[[1019]].set_axis([2000])
    bars = pd.concat([bars, duplicate])
    report = validate_bars(bars)
    assert failed_names(report) == {"ts_unique", "ts_strictly_increasing"}
    # Every row holding a repeated timestamp counts for uniqueness; only the repeat breaks the order.
    assert_rows(report, "ts_unique", bars, [1019, 2000])
    assert_rows(report, "ts_strictly_increasing", bars, [2000])
    assert report.gap_ratio == 0.0


def test_out_of_order_rows_fail_strictly_increasing_only():
    bars = make_bars()
    order = list(bars.index)
    order[10], order[11] = order[11], order[10]
    bars = bars.loc[order]
    report = validate_bars(bars)
    assert failed_names(report) == {"ts_strictly_increasing"}
    # Row order as given: the bar of 1010 now follows the later bar of 1011.
    assert_rows(report, "ts_strictly_increasing", bars, [1010])
    # Gaps are measured in time order, so a swap is not a gap.
    assert report.gap_ratio == 0.0


def test_sample_size_caps_rows_but_not_the_count():
    bars = make_bars()
    bars["volume"] = -1.0
    report = validate_bars(bars, sample_size=5)
    outcome = report.outcome("volume_non_negative")
    assert outcome.unexpected_count == 50
    assert list(outcome.unexpected_rows.index) == list(range(1000, 1005))
    none = validate_bars(bars, sample_size=0).outcome("volume_non_negative")
    assert none.unexpected_count == 50
    assert none.unexpected_rows.empty


def test_non_numeric_prices_fail_without_crashing():
    bars = make_bars(10)
    bars["open"] = bars["open"].map(lambda v: f"{v:.2f}").astype("str")
    report = validate_bars(bars)
    outcome = report.outcome("prices_positive:open")
    assert not outcome.success
    assert "GX could not evaluate" in outcome.details
    assert "\n" not in outcome.details


# --------------------------------------------------------------------------------------------------
# Missing columns


def test_missing_column_is_reported_and_dependent_checks_skipped():
    bars = make_bars().drop(columns=["volume"])
    report = validate_bars(bars)
    assert failed_names(report) == {"required_columns"}
    outcome = report.outcome("required_columns")
    assert outcome.unexpected_count == 1
    assert outcome.unexpected_rows.empty
    assert "volume" in outcome.details
    names = {o.name for o in report.outcomes}
    assert "not_null:volume" not in names
    assert "volume_non_negative" not in names
    assert {"high_ge_close", "ts_strictly_increasing", "gap_ratio"} <= names


def test_missing_ts_and_prices():
    bars = make_bars().drop(columns=["ts", "high"])
    report = validate_bars(bars)
    assert report.outcome("required_columns").unexpected_count == 2
    names = {o.name for o in report.outcomes}
    assert not names & {"ts_unique", "ts_strictly_increasing", "gap_ratio", "high_ge_open", "high_ge_close"}
    assert "low_le_close" in names
    assert report.interval is None
    assert report.gap_ratio == 0.0


def test_frame_without_columns():
    report = validate_bars(pd.DataFrame())
    assert [o.name for o in report.outcomes] == ["required_columns"]
    assert report.outcome("required_columns").unexpected_count == len(REQUIRED_COLUMNS)
    assert not report.success


# --------------------------------------------------------------------------------------------------
# Interval and gaps


def _bars_with_missing(n_expected: int, drop_positions: list[int]) -> pd.DataFrame:
    bars = make_bars(n_expected)
    return bars.drop(index=bars.index[drop_positions])


def test_gap_ratio_is_exact():
    bars = _bars_with_missing(100, [10, 50, 51])
    assert len(bars) == 97
    assert gap_ratio(bars["ts"]) == pytest.approx(0.03, abs=1e-15)
    assert infer_interval(bars["ts"]) == pd.Timedelta(minutes=1)
    report = validate_bars(bars, max_gap_ratio=0.01)
    assert report.gap_ratio == pytest.approx(0.03, abs=1e-15)
    assert failed_names(report) == {"gap_ratio"}
    # The rows right after each gap: 1011 (after one missing bar) and 1052 (after two).
    assert_rows(report, "gap_ratio", bars, [1011, 1052])
    assert "3 missing of 100 expected" in report.outcome("gap_ratio").details


@pytest.mark.parametrize(("limit", "success"), [(0.03, True), (0.05, True), (0.0299, False), (0.0, False)])
def test_gap_limit_is_respected_both_ways(limit, success):
    bars = _bars_with_missing(100, [10, 50, 51])
    outcome = validate_bars(bars, max_gap_ratio=limit).outcome("gap_ratio")
    assert outcome.success is success
    # Rows after a gap are reported either way.
    assert outcome.unexpected_count == 2


def test_gap_limit_of_one_accepts_anything():
    bars = _bars_with_missing(100, list(range(1, 99)))
    assert gap_ratio(bars["ts"], pd.Timedelta(minutes=1)) == pytest.approx(0.98)
    assert validate_bars(bars, max_gap_ratio=1.0).outcome("gap_ratio").success


def test_gap_ratio_with_explicit_interval_and_edge_cases():
    ts = pd.Series(pd.date_range("2024-01-01", periods=10, freq="5min", tz="UTC"))
    assert gap_ratio(ts) == 0.0
    # On a one-minute grid, every five-minute step hides four bars: 36 of 46 expected.
    assert gap_ratio(ts, pd.Timedelta(minutes=1)) == pytest.approx(36 / 46)
    assert gap_ratio(ts.iloc[:1]) == 0.0
    assert gap_ratio(ts.iloc[:0]) == 0.0
    with pytest.raises(ValueError, match="positive"):
        gap_ratio(ts, pd.Timedelta(0))


def test_infer_interval():
    ts = pd.Series(pd.date_range("2024-01-01", periods=6, freq="h", tz="UTC"))
    assert infer_interval(ts) == pd.Timedelta(hours=1)
    assert infer_interval(ts.iloc[::-1]) == pd.Timedelta(hours=1)
    assert infer_interval(pd.concat([ts, ts, pd.Series([pd.NaT])])) == pd.Timedelta(hours=1)
    assert infer_interval(ts.iloc[:1]) is None
    assert infer_interval(pd.Series([], dtype="datetime64[ns, UTC]")) is None
    # Diffs 1, 1, 1, 3, 3 hours: the median is one hour, and the two 3-hour steps are gaps.
    last = ts.iloc[[3]]
    sparse = pd.concat([ts.iloc[:4], last + pd.Timedelta(hours=3), last + pd.Timedelta(hours=6)])
    assert infer_interval(sparse) == pd.Timedelta(hours=1)
    assert gap_ratio(sparse) == pytest.approx(4 / 10)


def test_microsecond_timestamps_beyond_the_nanosecond_range():
    ts = pd.Series(pd.to_datetime(["2500-01-01T00:00:00Z", "2500-01-01T00:01:00Z", "2500-01-01T00:03:00Z"]))
    assert ts.dt.unit == "us"
    assert infer_interval(ts) == pd.Timedelta(minutes=1)
    assert gap_ratio(ts) == pytest.approx(0.25)
    bars = make_bars(3).assign(ts=ts.to_numpy())
    report = validate_bars(bars, max_gap_ratio=0.25)
    assert report.success, report.summary()


def test_invalid_arguments():
    bars = make_bars(5)
    with pytest.raises(ValueError, match="max_gap_ratio"):
        validate_bars(bars, max_gap_ratio=1.5)
    with pytest.raises(ValueError, match="sample_size"):
        validate_bars(bars, sample_size=-1)
    with pytest.raises(TypeError):
        validate_bars(bars["open"])  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------------
# Reports


def test_summary_and_markdown_name_failures_and_counts():
    bars = make_bars()
    bars.loc[[1002, 1033], "close"] = bars.loc[[1002, 1033], "high"] + 1.0
    bars.loc[1040, "volume"] = -3.0
    report = validate_bars(bars)
    summary = report.summary()
    assert "FAILED" in summary.splitlines()[0]
    assert "high_ge_close: unexpected_count=2" in summary
    assert "volume_non_negative: unexpected_count=1" in summary
    assert "ts_unique" not in summary
    assert len(summary.splitlines()) == 1 + len(report.failures)

    markdown = report.to_markdown(sample_rows=1)
    assert "### `high_ge_close`: 2 unexpected" in markdown
    assert "### `volume_non_negative`: 1 unexpected" in markdown
    assert "first 1 of 2" in markdown
    assert "| 1002 |" in markdown and "| 1033 |" not in markdown
    assert "| 1040 |" in markdown

    clean = validate_bars(make_bars(10))
    assert "PASSED" in clean.summary()
    assert "All expectations passed." in clean.to_markdown()


def test_suite_is_extensible_with_more_checks():
    spread = CheckSpec(
        name="spread_non_negative",
        column="spread_bps",
        requires=("spread_bps",),
        expected=lambda _: "spread_bps >= 0",
        build=lambda gxe, _: gxe.ExpectColumnValuesToBeBetween(column="spread_bps", min_value=0),
    )
    bars = make_bars()
    bars.loc[1030, "spread_bps"] = -1.0
    report = validate_bars(bars, checks=(*BAR_CHECKS, spread))
    assert failed_names(report) == {"spread_non_negative"}
    assert_rows(report, "spread_non_negative", bars, [1030])
    with pytest.raises(ValueError, match="unique"):
        validate_bars(bars, checks=(spread, spread))


def test_importing_the_module_does_not_import_great_expectations():
    code = (
        "import sys\n"
        "import stress_pipeline.market.quality\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('great_expectations', 'dagster'))\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, check=True, timeout=120)


# --------------------------------------------------------------------------------------------------
# Properties

INTERVALS = [pd.Timedelta(seconds=1), pd.Timedelta(minutes=1), pd.Timedelta(minutes=5), pd.Timedelta(days=1)]


@st.composite
def valid_bars(draw) -> pd.DataFrame:
    n = draw(st.integers(min_value=2, max_value=40))
    interval = draw(st.sampled_from(INTERVALS))
    start = pd.Timestamp("2020-01-01", tz="UTC") + pd.Timedelta(minutes=draw(st.integers(0, 10**6)))
    unit = st.floats(min_value=0.0, max_value=1.0)
    rows = []
    for _ in range(n):
        low = draw(st.floats(min_value=1e-4, max_value=1e6))
        high = low * (1.0 + draw(st.floats(min_value=0.0, max_value=0.5)))
        open_ = min(max(low + draw(unit) * (high - low), low), high)
        close = min(max(low + draw(unit) * (high - low), low), high)
        volume = draw(st.floats(min_value=0.0, max_value=1e9))
        rows.append((low, high, open_, close, volume))
    low, high, open_, close, volume = (np.array(c) for c in zip(*rows, strict=True))
    frame = pd.DataFrame(
        {
            "ts": pd.date_range(start, periods=n, freq=interval).as_unit("ns"),
            "symbol": pd.array([draw(st.sampled_from(["BTCUSDT", "ETH-USD", "NVDA"]))] * n, dtype="str"),
            "open": open_,
            "high": high,
            "low": low,
            "close": close,
            "volume": volume,
            "spread_bps": 2.0,
        }
    )
    if draw(st.booleans()):
        frame["stressed"] = False
        frame["corrupted"] = False
        frame["halted"] = False
    labels = draw(st.lists(st.integers(-(10**6), 10**6), min_size=n, max_size=n, unique=True))
    frame.index = pd.Index(labels)
    return frame


PROPERTY_SETTINGS = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# valid_bars draws every row independently of its neighbours (prices anywhere from 1e-4 to 1e6), so
# the checks that compare a row with its neighbours do not apply; they have their own tests.
ROW_CHECKS = tuple(c for c in BAR_CHECKS if c.name not in {"no_price_spikes", "no_frozen_bars"})


@PROPERTY_SETTINGS
@given(valid_bars())
def test_any_valid_frame_passes(bars):
    report = validate_bars(bars, checks=ROW_CHECKS)
    assert report.success, report.summary()
    assert report.gap_ratio == 0.0


@PROPERTY_SETTINGS
@given(valid_bars(), st.data())
def test_high_below_close_on_one_row_is_always_caught(bars, data):
    position = data.draw(st.integers(min_value=0, max_value=len(bars) - 1))
    label = bars.index[position]
    close = bars.loc[label, "close"]
    bars.loc[label, "high"] = close * data.draw(st.floats(min_value=0.01, max_value=0.999))
    report = validate_bars(bars)
    outcome = report.outcome("high_ge_close")
    assert not outcome.success
    assert outcome.unexpected_count == 1
    assert list(outcome.unexpected_rows.index) == [label]


# --------------------------------------------------------------------------------------------------
# The same bars judged twice


def test_the_same_bars_are_judged_once_and_any_change_is_judged_again() -> None:
    bars = make_bars(200, seed=7)
    first = validate_bars(bars)
    assert validate_bars(bars.copy()) is first  # same content, index, columns and parameters: kept
    assert validate_bars(bars, max_gap_ratio=0.5) is not first
    moved = bars.copy()
    moved.index = moved.index + 1  # other labels: the sample rows must carry them
    assert validate_bars(moved) is not first and validate_bars(moved).rows == first.rows
    broken = bars.copy()
    label = broken.index[3]
    broken.loc[label, "high"] = broken.loc[label, "low"] - 1.0
    report = validate_bars(broken)
    assert not report.success and list(report.outcome("high_ge_close").unexpected_rows.index) == [label]
    assert validate_bars(bars) is first and first.success


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(row=st.integers(min_value=0, max_value=59), column=st.sampled_from(["open", "high", "low", "close", "volume"]),
       factor=st.floats(min_value=1.000001, max_value=3.0))  # fmt: skip
def test_a_changed_cell_is_never_judged_by_a_kept_report(row: int, column: str, factor: float) -> None:
    bars = make_bars(60, seed=3)
    kept = validate_bars(bars)
    changed = bars.copy()
    changed.iloc[row, changed.columns.get_loc(column)] *= factor
    assert validate_bars(changed) is not kept
