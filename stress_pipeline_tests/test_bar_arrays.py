"""Canonical bars with dictionary-coded symbols, and BarArrays read from and written back to frames."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stress_pipeline.market.schema import (
    BAR_COLUMNS,
    SchemaError,
    concat_bars,
    conform_bars,
    to_arrow,
)
from stress_pipeline.parquet_store import read_parquet, write_parquet_atomic
from stress_pipeline.scenarios.arrays import FLAG_FIELDS, BarArrays

MINUTE = 60_000_000_000


def _frame(seed: int, *, flags: bool, path: bool) -> pd.DataFrame:
    """Random bars: 1-4 symbols, repeated and unordered times, rows in any order, string symbols."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(0, 60))
    names = rng.choice(["ETHUSDT", "BTCUSDT", "SOL", "A1"], size=int(rng.integers(1, 5)), replace=False)
    data: dict[str, object] = {
        "ts": pd.to_datetime(1_700_000_000_000_000_000 + rng.integers(0, 40, n) * MINUTE, utc=True),
        "symbol": rng.choice(names, n),
        **{c: rng.uniform(1, 100, n) for c in ("open", "high", "low", "close", "volume", "spread_bps")},
    }
    if flags:
        data.update({name: rng.random(n) < 0.3 for name in FLAG_FIELDS})
    if path:
        data["path"] = rng.integers(0, 3, n).astype(np.int32)
    return pd.DataFrame(data)


def _sorted_reference(frame: pd.DataFrame) -> pd.DataFrame:
    keys = ["symbol", "path", "ts"] if "path" in frame.columns else ["symbol", "ts"]
    out = frame.assign(symbol=frame["symbol"].astype(str)).sort_values(keys, kind="stable", ignore_index=True)
    for name in FLAG_FIELDS:
        if name not in out.columns:
            out[name] = False
    columns = [*BAR_COLUMNS, *FLAG_FIELDS, *(["path"] if "path" in frame.columns else [])]
    return out.loc[:, columns]


@settings(max_examples=200, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    flags=st.booleans(),
    path=st.booleans(),
    presorted=st.booleans(),
    categorical=st.booleans(),
)
def test_from_frame_to_frame_round_trips_any_canonical_frame(seed, flags, path, presorted, categorical):
    frame = _frame(seed, flags=flags, path=path)
    if presorted:
        frame = _sorted_reference(frame).drop(columns=[] if flags else list(FLAG_FIELDS))
    if categorical:
        frame = frame.assign(symbol=frame["symbol"].astype("category"))
    before = frame.copy()
    arrays = BarArrays.from_frame(frame)
    expected = _sorted_reference(frame)
    # Sorted by symbol (then path), then time, with one segment per symbol in name order.
    assert list(arrays.symbols) == sorted(set(expected["symbol"]))
    assert arrays.lengths().tolist() == expected.groupby("symbol", sort=True).size().tolist()
    for copy in (True, False):
        out = arrays.to_frame(copy=copy)
        assert isinstance(out["symbol"].dtype, pd.CategoricalDtype)
        assert out["symbol"].cat.categories.tolist() == sorted(out["symbol"].cat.categories.tolist())
        pd.testing.assert_frame_equal(out.assign(symbol=out["symbol"].astype(str)), expected, check_dtype=False)
        assert out["ts"].dtype == "datetime64[ns, UTC]"
    pd.testing.assert_frame_equal(frame, before)  # the input is left as it was


def test_an_ordered_canonical_frame_is_read_without_copies_and_both_sides_stay_independent():
    frame = conform_bars(_sorted_reference(_frame(3, flags=False, path=False)).drop(columns=list(FLAG_FIELDS)))
    arrays = BarArrays.from_frame(frame)
    assert np.shares_memory(arrays.close, frame["close"].to_numpy())
    assert not arrays.close.flags.writeable  # transforms copy what they change
    out = arrays.replace(close=arrays.close * 2).to_frame()
    assert np.shares_memory(out["open"].to_numpy(), frame["open"].to_numpy())  # unchanged: the same column
    np.testing.assert_array_equal(out["close"].to_numpy(), frame["close"].to_numpy() * 2)
    out.loc[0, "open"] = -1.0
    frame.loc[1, "open"] = -2.0
    assert frame.loc[0, "open"] != -1.0 and out.loc[1, "open"] != -2.0
    assert arrays.open[1] != -2.0


def test_conform_bars_keeps_a_canonical_frame_as_it_is():
    frame = conform_bars(_frame(5, flags=True, path=False))
    again = conform_bars(frame)
    assert again is not frame
    for column in frame.columns:
        assert np.shares_memory(_buffer(again[column]), _buffer(frame[column])), column


def _buffer(column: pd.Series) -> np.ndarray:
    if column.name == "symbol":
        return column.array.codes
    return column.array.asi8 if column.name == "ts" else column.to_numpy()


def test_symbols_become_sorted_dictionary_codes_from_strings_or_any_categorical():
    frame = _frame(7, flags=False, path=False)
    names = sorted(set(frame["symbol"]))
    from_strings = conform_bars(frame)
    assert from_strings["symbol"].cat.categories.tolist() == names
    shuffled = frame.assign(symbol=pd.Categorical(frame["symbol"], categories=names[::-1], ordered=True))
    from_categorical = conform_bars(shuffled)
    assert from_categorical["symbol"].cat.categories.tolist() == names
    assert not from_categorical["symbol"].cat.ordered
    assert (from_categorical["symbol"].astype(str) == frame["symbol"]).all()
    assert (from_strings["symbol"] == names[0]).sum() == (frame["symbol"] == names[0]).sum()
    assert not (from_strings["symbol"] == "NOT_THERE").any()


def test_bad_symbol_columns_are_refused_naming_the_row():
    frame = _frame(11, flags=False, path=False).head(5)
    with pytest.raises(SchemaError, match="symbol is null at row 2"):
        conform_bars(frame.assign(symbol=[*frame["symbol"][:2], None, *frame["symbol"][3:]]))
    with pytest.raises(SchemaError, match="symbol is null at row 0"):
        conform_bars(frame.assign(symbol=pd.Categorical([None, *frame["symbol"][1:]])))
    with pytest.raises(SchemaError, match="missing column"):
        conform_bars(frame.drop(columns="spread_bps"))


def test_arrow_and_parquet_keep_the_dictionary(tmp_path):
    frame = conform_bars(_frame(13, flags=True, path=False))
    table = to_arrow(frame)
    assert table.schema.field("symbol").type == pa.dictionary(pa.int32(), pa.string())
    path = write_parquet_atomic(frame, tmp_path / "bars.parquet")
    back = read_parquet(path)
    assert isinstance(back["symbol"].dtype, pd.CategoricalDtype)
    pd.testing.assert_frame_equal(conform_bars(back), frame)


def test_concat_bars_keeps_the_dictionary_across_frames_with_other_symbols():
    frame = conform_bars(_frame(17, flags=False, path=False))
    names = frame["symbol"].cat.categories.tolist()
    parts = [conform_bars(frame[frame["symbol"] == name].assign(symbol=name)) for name in names]
    joined = concat_bars(parts)
    assert isinstance(joined["symbol"].dtype, pd.CategoricalDtype)
    assert joined["symbol"].cat.categories.tolist() == names
    assert (joined["symbol"].astype(str).to_numpy() == np.concatenate([p["symbol"].astype(str) for p in parts])).all()
