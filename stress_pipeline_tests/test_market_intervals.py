"""The one bar interval rule and the one gap count."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stress_pipeline.market.intervals import DEFAULT_INTERVAL_NS, bar_interval_ns, missing_bars

MINUTE = 60_000_000_000


def _reference(ts: np.ndarray, offsets: np.ndarray) -> int:
    steps = []
    for lo, hi in itertools.pairwise(offsets):
        seg = ts[lo:hi]
        steps.extend(int(s) for s in np.diff(seg) if s > 0)
    if not steps:
        return DEFAULT_INTERVAL_NS
    return sorted(steps)[(len(steps) - 1) // 2]


def test_regular_minute_bars_have_a_one_minute_interval():
    ts = np.arange(100, dtype=np.int64) * MINUTE
    assert bar_interval_ns(ts) == MINUTE
    assert bar_interval_ns(ts.view("datetime64[ns]")) == MINUTE


def test_lower_median_is_an_observed_step_not_a_mean():
    ts = np.array([0, 60, 180, 240, 360], dtype=np.int64) * 1_000_000_000  # steps 60, 120, 60, 120
    assert bar_interval_ns(ts) == 60 * 1_000_000_000


def test_gaps_duplicates_and_backward_rows_do_not_move_it():
    ts = np.array([0, 1, 2, 2, 1, 3, 10, 11, 12], dtype=np.int64) * MINUTE
    assert bar_interval_ns(ts) == MINUTE


def test_steps_never_span_two_segments():
    a = np.arange(5, dtype=np.int64) * 300 * 1_000_000_000
    b = np.arange(5, dtype=np.int64) * 300 * 1_000_000_000 + 7
    ts = np.concatenate([a, b])
    assert bar_interval_ns(ts, np.array([0, 5, 10])) == 300 * 1_000_000_000


def test_no_positive_step_gives_the_default():
    assert bar_interval_ns(np.array([], dtype=np.int64)) == DEFAULT_INTERVAL_NS
    assert bar_interval_ns(np.array([5, 5, 5], dtype=np.int64), default=0) == 0


def test_sample_looks_at_the_first_bars_of_each_segment():
    ts = np.concatenate([np.arange(10) * MINUTE, 10 * MINUTE + np.arange(1, 100) * 2 * MINUTE]).astype(np.int64)
    assert bar_interval_ns(ts) == 2 * MINUTE
    assert bar_interval_ns(ts, sample_bars=8) == MINUTE


def test_bad_offsets_are_refused():
    ts = np.arange(4, dtype=np.int64)
    with pytest.raises(ValueError, match="offsets must rise from 0 to 4"):
        bar_interval_ns(ts, np.array([0, 3]))
    with pytest.raises(ValueError, match="sample_bars"):
        bar_interval_ns(ts, sample_bars=1)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.lists(st.integers(-5, 400), min_size=0, max_size=30), min_size=1, max_size=6),
    st.one_of(st.none(), st.integers(2, 12)),
)
def test_equals_the_sorted_reference_on_random_segments(segments, sample):
    ts = np.array([v * 1_000 for seg in segments for v in np.cumsum(seg)], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum([len(s) for s in segments])]).astype(np.int64)
    if sample is None:
        assert bar_interval_ns(ts, offsets) == _reference(ts, offsets)
    else:
        cut = [ts[lo : min(lo + sample, hi)] for lo, hi in itertools.pairwise(offsets)]
        cut_offsets = np.concatenate([[0], np.cumsum([len(c) for c in cut])]).astype(np.int64)
        flat = np.concatenate(cut) if cut else ts[:0]
        assert bar_interval_ns(ts, offsets, sample_bars=sample) == _reference(flat, cut_offsets)


def test_missing_bars_counts_whole_intervals_rounded():
    ts = np.array([0, 60, 180, 181, 420], dtype=np.int64) * 1_000_000_000
    assert missing_bars(ts, 60 * 1_000_000_000).tolist() == [0, 1, 0, 3]
    assert missing_bars(ts[:1], MINUTE).tolist() == []
    with pytest.raises(ValueError, match="interval must be positive"):
        missing_bars(ts, 0)
