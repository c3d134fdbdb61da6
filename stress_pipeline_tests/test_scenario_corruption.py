"""Data corruption, and the quality checks that must catch it: every corrupted row is reported.

The headline test runs the Great Expectations bar suite on each symbol of corrupted synthetic bars and
requires every row flagged ``corrupted`` to be among the rows of a failed expectation, for each kind of
corruption alone and all together. The other tests pin down what each kind does to the bars, exactly.
"""

from __future__ import annotations

import itertools
from functools import lru_cache

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stress_pipeline.market.quality import FROZEN_HELPER_COLUMN, SPIKE_THRESHOLD, gap_ratio, validate_bars
from stress_pipeline.market.synthetic import generate_bars
from stress_pipeline.scenarios.apply import apply_scenario, run_scenario
from stress_pipeline.scenarios.arrays import PRICE_FIELDS, BarArrays, array_field_names
from stress_pipeline.scenarios.model import SCENARIO_ADAPTER
from stress_pipeline.scenarios.transforms.corruption import (
    CORRUPTION_TYPES,
    MAX_GAP_BARS,
    CorruptionPlanError,
    corruption_count,
)
from stress_pipeline.scenarios.windows import WindowError

SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
MINUTE_NS = 60_000_000_000
VALUE_COLUMNS = ("ts", "symbol", *PRICE_FIELDS, "volume", "spread_bps")


@lru_cache(maxsize=1)
def base_frame() -> pd.DataFrame:
    """Two days of realistic 1-minute bars for the three symbols (2,880 per symbol, no gaps)."""
    return generate_bars(SYMBOLS, days=2)


@lru_cache(maxsize=1)
def market() -> BarArrays:
    return BarArrays.from_frame(base_frame())


def corruption(types, pct, *, duration=1_440, seed=0, symbols=SYMBOLS, offset=None):
    spec = {
        "name": "test corruption",
        "type": "data_corruption",
        "symbols": list(symbols),
        "seed": seed,
        "parameters": {"corruption_pct": pct, "corruption_types": list(types), "duration_bars": duration},
    }
    if offset is not None:
        spec["window"] = {"offset_bars": offset}
    return SCENARIO_ADAPTER.validate_python(spec)


def symbol_frames(frame: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Each symbol's rows, in row order, index as in ``frame``."""
    return {symbol: frame[frame["symbol"] == symbol] for symbol in pd.unique(frame["symbol"])}


def classify(bars: pd.DataFrame) -> pd.Series:
    """The kind of each corrupted row of one symbol, read from the bars alone (base bars have no gaps)."""
    previous = bars.shift(1)
    step = bars["ts"] - previous["ts"]
    prices = bars[list(PRICE_FIELDS)]
    same_bar = (bars[[*PRICE_FIELDS, "volume"]] == previous[[*PRICE_FIELDS, "volume"]]).all(axis=1)
    kind = np.select(
        [
            prices.isna().any(axis=1),
            step == pd.Timedelta(0),
            step < pd.Timedelta(0),
            step > pd.Timedelta(minutes=1),
            same_bar,
        ],
        ["nan", "duplicate", "out_of_order", "gap", "stale"],
        "spike",
    )
    return pd.Series(kind, index=bars.index)[bars["corrupted"].to_numpy()]


def footprints(bars: pd.DataFrame, first_ns: int) -> list[tuple[int, int]]:
    """The base rows each corruption of one symbol touches, as (first, last) bar numbers, in order."""
    kinds = classify(bars)
    minute = ((bars["ts"].astype("int64") - first_ns) // MINUTE_NS).to_numpy()
    step = bars["ts"].diff().dt.total_seconds().div(60).to_numpy()
    position = {label: i for i, label in enumerate(bars.index)}
    spans = []
    for label, kind in kinds.items():
        i = position[label]
        bar = int(minute[i])
        if kind == "out_of_order":
            spans.append((bar, bar + 1))
        elif kind == "gap":
            spans.append((bar - int(step[i]) + 1, bar))
        else:
            spans.append((bar, bar))
    return sorted(spans)


def needed_bars(types, pct, duration) -> tuple[int, int]:
    """The fewest bars a plan needs: one per corruption, a second for out-of-order and gap, one clean
    between any two. Which kinds get the odd corruptions is drawn, hence a lower and an upper bound."""
    count = corruption_count(pct, duration)
    per_type, extra = divmod(count, len(types))
    wide = sum(1 for t in types if t in ("out_of_order", "gap"))
    fewest_wide = per_type * wide + max(0, extra - (len(types) - wide))
    most_wide = per_type * wide + min(extra, wide)
    return 2 * count - 1 + fewest_wide, 2 * count - 1 + most_wide


# ------------------------------------------------------------------------------------- counts and plan


@pytest.mark.parametrize(
    ("pct", "duration", "count"),
    [(0.1, 720, 72), (0.05, 1_440, 72), (0.05, 10, 1), (0.25, 10, 2), (0.35, 10, 4), (0.5, 1_440, 720)],
)
def test_corruption_count_is_rounded_and_at_least_one(pct, duration, count):
    # Python's round: 0.5 -> 0 (then at least one), 2.5 -> 2, 3.5 -> 4.
    assert corruption_count(pct, duration) == count


def test_types_are_split_as_evenly_as_possible_and_the_same_for_every_symbol():
    out = apply_scenario(corruption(CORRUPTION_TYPES, 0.1, duration=200, offset=100), base_frame())
    counts = {symbol: classify(bars).value_counts().to_dict() for symbol, bars in symbol_frames(out).items()}
    # 20 corruptions over 6 kinds: two kinds get 4, four kinds get 3.
    assert sorted(counts["BTCUSDT"].values()) == [3, 3, 3, 3, 4, 4]
    assert set(counts["BTCUSDT"]) == set(CORRUPTION_TYPES)
    assert counts["ETHUSDT"] == counts["BTCUSDT"] == counts["SOLUSDT"]
    # ... at positions of their own.
    minutes = {s: tuple(b.loc[b["corrupted"], "ts"].dt.strftime("%H%M")) for s, b in symbol_frames(out).items()}
    assert len(set(minutes.values())) == 3


def test_too_many_corruptions_for_the_window_are_rejected():
    # 50 gaps need at least 50 * 2 bars and 49 clean bars between them: 149 > 100.
    with pytest.raises(CorruptionPlanError, match="need 149 bars") as error:
        run_scenario(corruption(["gap"], 0.5, duration=100, offset=10), market())
    assert isinstance(error.value, WindowError)
    # One bar fewer per corruption fits: 50 single-row corruptions and 49 clean rows in 100 bars.
    run_scenario(corruption(["nan"], 0.5, duration=100, offset=10), market())


# ---------------------------------------------------------------------------------- each kind, exactly


def corrupt_one_kind(kind: str):
    """10 corruptions of ``kind`` per symbol in bars 100..299 of each symbol."""
    result = run_scenario(corruption([kind], 0.05, duration=200, offset=100, seed=5), market())
    return result, result.bars.to_frame()


def assert_common(result, out: pd.DataFrame, kind: str) -> None:
    base = base_frame()
    for symbol, bars in symbol_frames(out).items():
        flagged = bars[bars["corrupted"]]
        assert len(flagged) == 10
        assert (classify(bars) == kind).all()
        np.testing.assert_array_equal(bars["stressed"], bars["corrupted"])
        first_bar = base.loc[base["symbol"] == symbol, "ts"].iloc[100]
        assert flagged["ts"].min() >= first_bar
        assert flagged["ts"].max() <= first_bar + pd.Timedelta(minutes=199)
        assert result.windows[symbol] == (flagged["ts"].iloc[0].value, flagged["ts"].iloc[-1].value)
        assert result.pre_shock_ns[symbol] == (first_bar - pd.Timedelta(minutes=1)).value
    assert result.expected_drop == {}
    assert not out["halted"].any()


def by_ts(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.set_index(["symbol", "ts"])


def test_nan_blanks_one_price_of_the_row():
    result, out = corrupt_one_kind("nan")
    assert_common(result, out, "nan")
    assert len(out) == len(base_frame())
    flagged = out[out["corrupted"]]
    assert (flagged[list(PRICE_FIELDS)].isna().sum(axis=1) == 1).all()
    # Every field was drawn somewhere among the 30.
    assert set(flagged[list(PRICE_FIELDS)].isna().idxmax(axis=1)) == set(PRICE_FIELDS)
    clean = out.loc[:, VALUE_COLUMNS].where(~out.loc[:, VALUE_COLUMNS].isna(), base_frame().loc[:, VALUE_COLUMNS])
    pd.testing.assert_frame_equal(clean, base_frame().loc[:, VALUE_COLUMNS])


def test_spike_multiplies_or_divides_one_price_by_five_to_twenty():
    result, out = corrupt_one_kind("spike")
    assert_common(result, out, "spike")
    base = base_frame()
    ratio = out[list(PRICE_FIELDS)] / base[list(PRICE_FIELDS)]
    changed = ratio.ne(1.0)
    assert changed.sum(axis=1).eq(out["corrupted"].astype(int)).all()
    factors = ratio.to_numpy()[changed.to_numpy()]
    size = np.maximum(factors, 1.0 / factors)
    assert ((size >= 5.0 - 1e-9) & (size <= 20.0 + 1e-9)).all()
    assert (factors > 1).any() and (factors < 1).any()
    pd.testing.assert_frame_equal(
        out[["ts", "symbol", "volume", "spread_bps"]], base[["ts", "symbol", "volume", "spread_bps"]]
    )


def test_duplicate_inserts_an_identical_copy_after_the_row():
    result, out = corrupt_one_kind("duplicate")
    assert_common(result, out, "duplicate")
    base = base_frame()
    assert len(out) == len(base) + 30
    np.testing.assert_array_equal(result.bars.lengths(), market().lengths() + 10)
    copies = np.flatnonzero(out["corrupted"].to_numpy())
    pd.testing.assert_frame_equal(
        out.iloc[copies][list(VALUE_COLUMNS)].reset_index(drop=True),
        out.iloc[copies - 1][list(VALUE_COLUMNS)].reset_index(drop=True),
    )
    # The originals are untouched and unflagged: without the copies, the bars are the base bars.
    kept = out[~out["corrupted"]].reset_index(drop=True)
    pd.testing.assert_frame_equal(kept[list(VALUE_COLUMNS)], base[list(VALUE_COLUMNS)])
    assert not kept["stressed"].any()


def test_stale_repeats_the_previous_bar_under_its_own_timestamp():
    result, out = corrupt_one_kind("stale")
    assert_common(result, out, "stale")
    base = base_frame()
    rows = np.flatnonzero(out["corrupted"].to_numpy())
    repeated = [*PRICE_FIELDS, "volume"]
    np.testing.assert_array_equal(out.iloc[rows][repeated].to_numpy(), base.iloc[rows - 1][repeated].to_numpy())
    assert (out.iloc[rows]["volume"] > 0).all()
    untouched = out.drop(columns=[*repeated, "stressed", "corrupted", "halted"])
    pd.testing.assert_frame_equal(untouched, base.drop(columns=repeated))
    other = np.setdiff1d(np.arange(len(out)), rows)
    pd.testing.assert_frame_equal(out.iloc[other][list(VALUE_COLUMNS)], base.iloc[other][list(VALUE_COLUMNS)])


def test_out_of_order_moves_the_row_after_the_next_one():
    result, out = corrupt_one_kind("out_of_order")
    assert_common(result, out, "out_of_order")
    base = base_frame()
    late = np.flatnonzero(out["corrupted"].to_numpy())
    # The late row is the base row before the one it now follows.
    np.testing.assert_array_equal(out["ts"].iloc[late].to_numpy(), base["ts"].iloc[late - 1].to_numpy())
    np.testing.assert_array_equal(out["ts"].iloc[late - 1].to_numpy(), base["ts"].iloc[late].to_numpy())
    restored = out.sort_values(["symbol", "ts"], kind="stable", ignore_index=True)
    pd.testing.assert_frame_equal(restored[list(VALUE_COLUMNS)], base[list(VALUE_COLUMNS)])


def test_gap_removes_one_to_five_bars_and_flags_the_row_after():
    result, out = corrupt_one_kind("gap")
    assert_common(result, out, "gap")
    base = base_frame()
    steps = out.groupby("symbol")["ts"].diff()[out["corrupted"]] // pd.Timedelta(minutes=1)
    lost = steps - 1
    assert lost.between(1, MAX_GAP_BARS).all()
    assert len(base) - len(out) == lost.sum()
    np.testing.assert_array_equal(
        result.bars.lengths(), market().lengths() - lost.groupby(out["symbol"]).sum().loc[list(SYMBOLS)].to_numpy()
    )
    # What is left is the base bars, values and all.
    kept = by_ts(base).loc[by_ts(out).index]
    pd.testing.assert_frame_equal(by_ts(out)[list(VALUE_COLUMNS[2:])], kept[list(VALUE_COLUMNS[2:])])


def test_offsets_follow_rows_added_and_removed():
    result = run_scenario(corruption(CORRUPTION_TYPES, 0.2, duration=600, offset=1_000, seed=9), market())
    bars = result.bars
    out = bars.to_frame()
    assert bars.offsets[0] == 0 and bars.offsets[-1] == len(out)
    for i, symbol in enumerate(bars.symbols):
        assert (out.iloc[bars.segment(i)]["symbol"] == symbol).all()
    assert all(len(getattr(bars, name)) == bars.rows for name in array_field_names() if getattr(bars, name) is not None)


def test_base_bars_are_not_modified():
    base = market()
    before = {name: getattr(base, name).copy() for name in array_field_names() if getattr(base, name) is not None}
    for types in (["nan", "spike", "stale"], CORRUPTION_TYPES):
        run_scenario(corruption(types, 0.3, seed=1), base)
    for name, values in before.items():
        np.testing.assert_array_equal(getattr(base, name), values)


# ---------------------------------------------------------------------------------------- determinism


@pytest.mark.parametrize("types", [["nan", "spike", "stale"], list(CORRUPTION_TYPES)])
def test_same_seed_same_bars_other_seed_other_window(types):
    first = run_scenario(corruption(types, 0.1, duration=600, seed=21), market())
    again = run_scenario(corruption(types, 0.1, duration=600, seed=21), market())
    for name in array_field_names():
        if getattr(first.bars, name) is not None:
            np.testing.assert_array_equal(getattr(first.bars, name), getattr(again.bars, name))
    np.testing.assert_array_equal(first.bars.offsets, again.bars.offsets)
    assert first.windows == again.windows and first.pre_shock_ns == again.pre_shock_ns
    other = [run_scenario(corruption(types, 0.1, duration=600, seed=seed), market()) for seed in (22, 23, 24)]
    assert len({r.pre_shock_ns["BTCUSDT"] for r in (first, *other)}) > 1
    assert any(not np.array_equal(r.bars.corrupted, first.bars.corrupted) for r in other)


# ------------------------------------------------------------------------------------------ properties


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    types=st.lists(st.sampled_from(CORRUPTION_TYPES), min_size=1, max_size=6, unique=True),
    pct=st.floats(min_value=0.001, max_value=0.5),
    duration=st.integers(min_value=10, max_value=2_500),
    symbols=st.lists(st.sampled_from(SYMBOLS), min_size=1, max_size=3, unique=True),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
)
def test_corruption_properties(types, pct, duration, symbols, seed):
    sc = corruption(types, pct, duration=duration, seed=seed, symbols=symbols)
    least, most = needed_bars(types, pct, duration)
    if least > duration:
        with pytest.raises(CorruptionPlanError):
            run_scenario(sc, market())
        return
    if most > duration:  # fits or not, depending on which kinds the seed gives the odd corruptions
        try:
            result = run_scenario(sc, market())
        except CorruptionPlanError:
            return
    else:
        result = run_scenario(sc, market())
    out = result.bars.to_frame()
    count = corruption_count(pct, duration)
    first_bars = {s: int(market().ts[market().segment(market().segment_of(s))][0]) for s in symbols}
    for symbol, bars in symbol_frames(out).items():
        kinds = classify(bars).value_counts()
        assert kinds.sum() == count
        assert set(kinds.index) <= set(types)
        assert kinds.max() - (kinds.min() if len(kinds) == len(types) else 0) <= 1
        # No corruption touches the same or an adjacent base row as another.
        spans = footprints(bars, first_bars[symbol])
        assert all(b[0] - a[1] >= 2 for a, b in itertools.pairwise(spans))
        # ... so no two corrupted rows are neighbours in the result either.
        flags = bars["corrupted"].to_numpy()
        assert not (flags[1:] & flags[:-1]).any()
        # Rows added and lost add up.
        lost = int((bars["ts"].diff()[bars["corrupted"]] // pd.Timedelta(minutes=1) - 1).clip(lower=0).sum())
        added = int(kinds.get("duplicate", 0))
        assert len(bars) == 2_880 + added - lost
    np.testing.assert_array_equal(out["stressed"], out["corrupted"])
    clean = out[~out["corrupted"]]
    assert (clean["high"] >= clean[["open", "close"]].max(axis=1)).all()
    assert (clean["low"] <= clean[["open", "close"]].min(axis=1)).all()
    assert (clean[list(PRICE_FIELDS)] > 0).all().all()
    assert (clean["volume"] >= 0).all() and (clean["spread_bps"] >= 0).all()
    assert set(result.windows) == set(symbols)


# --------------------------------------------------------------------- every corrupted row is caught


def caught_rows(bars: pd.DataFrame, base: pd.DataFrame):
    """Validate one symbol's stressed bars as the pipeline should: the base gap ratio as the limit."""
    report = validate_bars(bars, max_gap_ratio=gap_ratio(base["ts"]), sample_size=len(bars))
    caught: set = set()
    for outcome in report.failures:
        caught |= set(outcome.unexpected_rows.index)
    return report, caught


CAUGHT_CASES = [[kind] for kind in CORRUPTION_TYPES] + [list(CORRUPTION_TYPES)]


@pytest.mark.parametrize("types", CAUGHT_CASES, ids=["+".join(t) if len(t) < 6 else "all" for t in CAUGHT_CASES])
@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    pct=st.sampled_from([0.002, 0.01, 0.05, 0.15, 0.3]),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
)
def test_every_corrupted_row_is_caught_by_the_quality_suite(types, pct, seed):
    base = base_frame()
    out = apply_scenario(corruption(types, pct, seed=seed), base)
    for symbol, bars in symbol_frames(out).items():
        report, caught = caught_rows(bars, base[base["symbol"] == symbol])
        corrupted = set(bars.index[bars["corrupted"]])
        assert len(corrupted) == corruption_count(pct, 1_440)
        missed = corrupted - caught
        assert not missed, f"{symbol}: {classify(bars).loc[sorted(missed)].to_dict()}\n{report.summary()}"


def test_clean_base_and_uncorrupted_stress_pass_the_suite():
    base = base_frame()
    stresses = [
        base,
        apply_scenario(
            SCENARIO_ADAPTER.validate_python(
                {"name": "thin", "type": "liquidity_drop", "symbols": list(SYMBOLS), "parameters": {"drop_pct": 0.95}}
            ),
            base,
        ),
        apply_scenario(
            SCENARIO_ADAPTER.validate_python(
                {
                    "name": "wide",
                    "type": "spread_explosion",
                    "symbols": list(SYMBOLS),
                    "parameters": {"spread_mult": 50},
                }
            ),
            base,
        ),
    ]
    for frame in stresses:
        for symbol, bars in symbol_frames(frame).items():
            report = validate_bars(bars, max_gap_ratio=gap_ratio(base.loc[base["symbol"] == symbol, "ts"]))
            assert report.success, report.summary()


# ---------------------------------------------------------------------- the checks that catch them


def one_day(symbol: str = "BTCUSDT") -> pd.DataFrame:
    return generate_bars((symbol,), days=1)


def failing(report) -> set[str]:
    return {o.name for o in report.failures}


def rows_of(report, name: str) -> list:
    return list(report.outcome(name).unexpected_rows.index)


def test_new_checks_are_real_gx_expectations():
    report = validate_bars(one_day())
    assert report.success, report.summary()
    assert report.outcome("no_price_spikes").expectation == "expect_column_values_to_be_between"
    assert report.outcome("no_frozen_bars").expectation == "expect_column_values_to_be_in_set"
    assert SPIKE_THRESHOLD == 1.0
    with pytest.raises(ValueError, match="spike_threshold"):
        validate_bars(one_day(), spike_threshold=0.0)


@pytest.mark.parametrize(
    ("column", "factor", "caught"), [("high", 3.0, True), ("low", 1 / 3, True), ("close", 2.0, False)]
)
def test_spike_threshold_is_one_log_unit(column, factor, caught):
    bars = one_day()
    bars.loc[700, column] *= factor
    report = validate_bars(bars)
    assert (not report.outcome("no_price_spikes").success) is caught
    if caught:
        assert rows_of(report, "no_price_spikes") == [700]
    # A tighter threshold catches a doubling too.
    assert rows_of(validate_bars(bars, spike_threshold=0.5), "no_price_spikes") == [700]


def test_bad_neighbours_do_not_move_the_local_median():
    bars = one_day()
    bars.loc[[500, 504, 506, 510], "close"] = np.nan
    bars.loc[502, "open"] *= 10.0
    bars.loc[508, "low"] /= 10.0
    bars = pd.concat([bars.loc[:503], bars.loc[[503]].set_axis([9_999]), bars.loc[504:]])
    report = validate_bars(bars, sample_size=100)
    assert rows_of(report, "no_price_spikes") == [502, 508]
    assert rows_of(report, "ts_unique") == [503, 9_999]
    assert report.outcome("no_frozen_bars").success


def scaled(bars: pd.DataFrame, factor: np.ndarray) -> pd.DataFrame:
    """Every price of bar i times factor[i]: consistent bars on a new path."""
    out = bars.copy()
    for column in PRICE_FIELDS:
        out[column] = out[column] * factor
    return out


def legit_paths(n: int) -> dict[str, np.ndarray]:
    one = np.ones(n)
    crash = one.copy()
    crash[600:606] = np.linspace(1.0, 0.70, 6)  # -30% over 5 bars ...
    crash[605:621] = np.linspace(0.70, 1.0, 16)  # ... back over 15
    two_legs = one.copy()
    legs = np.interp(np.arange(120), [0, 10, 25, 35, 120], [1.0, 0.75, 0.85, 0.554, 0.8])  # -44.6% at the low
    two_legs[600:720] = legs
    two_legs[720:] = 0.8
    halt_gap = one.copy()
    halt_gap[630:] = 0.70  # reopens 30% lower after a 30-minute halt
    return {"flash crash 30%": crash, "two-leg crash 44.6%": two_legs, "halt gap -30%": halt_gap}


@pytest.mark.parametrize("name", list(legit_paths(1_440)))
def test_legitimate_stress_is_not_a_spike(name):
    bars = scaled(one_day("SOLUSDT"), legit_paths(1_440)[name])
    if name.startswith("halt"):
        bars["halted"] = False
        halted = bars.index[600:630]
        bars.loc[halted, list(PRICE_FIELDS)] = bars.loc[599, "close"]
        bars.loc[halted, "volume"] = 0.0
        bars.loc[halted, "halted"] = True
    report = validate_bars(bars)
    assert report.success, report.summary()


def test_ten_times_the_volatility_is_not_a_spike():
    bars = one_day("SOLUSDT")
    log_close = np.log(bars["close"].to_numpy())
    window = slice(600, 660)
    factor = np.ones(len(bars))
    # Returns x10 over an hour: the path's log moves from the window start times 9 more.
    factor[window] = np.exp(9.0 * (log_close[window] - log_close[599]))
    factor[660:] = factor[659]
    report = validate_bars(scaled(bars, factor))
    assert report.success, report.summary()


def test_frozen_bar_needs_prices_and_volume_repeated_while_trading():
    bars = one_day("SOLUSDT")
    repeated = [*PRICE_FIELDS, "volume"]
    bars.loc[300, repeated] = bars.loc[299, repeated].to_numpy()  # a stale repeat: caught
    bars.loc[400, list(PRICE_FIELDS)] = bars.loc[399, list(PRICE_FIELDS)].to_numpy()  # same prices, new volume: fine
    bars.loc[[500, 501], repeated] = np.tile([*[bars.loc[499, "close"]] * 4, 0.0], (2, 1))  # no trades: fine
    report = validate_bars(bars)
    assert failing(report) == {"no_frozen_bars"}
    assert rows_of(report, "no_frozen_bars") == [300]


def test_halted_rows_are_never_frozen_and_a_duplicate_is_reported_once():
    bars = one_day()
    bars["halted"] = False
    bars.loc[200:230, list(PRICE_FIELDS)] = bars.loc[199, "close"]
    bars.loc[200:230, "volume"] = 0.0
    bars.loc[200:230, "halted"] = True
    assert validate_bars(bars).success
    duplicated = pd.concat([bars.loc[:800], bars.loc[[800]].set_axis([5_000]), bars.loc[801:]])
    report = validate_bars(duplicated)
    assert failing(report) == {"ts_unique", "ts_strictly_increasing"}
    assert FROZEN_HELPER_COLUMN not in duplicated.columns
