"""The canonical bar table: one row per symbol and bar, defined once and validated at the boundary.

Every loader produces it, every scenario transform keeps it, and the IO manager stores it. Columns
added by stress transforms (``stressed``, ``corrupted``, ``halted``) are optional here.

The symbol is stored as dictionary codes: a pandas ``Categorical`` whose categories are the symbol
names in sorted order (an Arrow ``dictionary<int32, string>`` on disk). A table has a handful of
symbols and millions of rows, so grouping, sorting and splitting by symbol work on small integers,
and because the categories are sorted, code order is name order. ``bars["symbol"] == "BTCUSDT"``
works as on strings.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa

PRICE_COLUMNS = ("open", "high", "low", "close")
BAR_COLUMNS = ("ts", "symbol", "open", "high", "low", "close", "volume", "spread_bps")
STRESS_FLAG_COLUMNS = ("stressed", "corrupted", "halted")
FLOAT_COLUMNS = (*PRICE_COLUMNS, "volume", "spread_bps")
SYMBOL_TYPE = pa.dictionary(pa.int32(), pa.string())

BAR_SCHEMA = pa.schema(
    [
        pa.field("ts", pa.timestamp("ns", tz="UTC"), nullable=False),
        pa.field("symbol", SYMBOL_TYPE, nullable=False),
        pa.field("open", pa.float64()),
        pa.field("high", pa.float64()),
        pa.field("low", pa.float64()),
        pa.field("close", pa.float64()),
        pa.field("volume", pa.float64()),
        pa.field("spread_bps", pa.float64()),
    ]
)

STRESSED_BAR_SCHEMA = BAR_SCHEMA.append(pa.field("stressed", pa.bool_(), nullable=False)).append(
    pa.field("corrupted", pa.bool_(), nullable=False)
).append(pa.field("halted", pa.bool_(), nullable=False))

_TS_DTYPE = pd.DatetimeTZDtype("ns", "UTC")


class SchemaError(ValueError):
    """A frame does not have the canonical bar layout."""


def empty_bars() -> pd.DataFrame:
    """An empty frame with the canonical columns and dtypes."""
    return conform_bars(BAR_SCHEMA.empty_table().to_pandas())


def conform_bars(frame: pd.DataFrame) -> pd.DataFrame:
    """Return ``frame`` with the canonical column order and dtypes, or raise :class:`SchemaError`.

    Extra columns other than the stress flags are dropped; missing stress flags are not added. A
    frame that is already canonical costs a dtype check and a shallow copy (copy-on-write): no column
    is converted or copied. String symbols become the categorical (the one conversion that reads
    every row); a null symbol is refused, naming its row.
    """
    missing = [c for c in BAR_COLUMNS if c not in frame.columns]
    if missing:
        raise SchemaError(f"missing column(s) {', '.join(missing)}; expected {', '.join(BAR_COLUMNS)}")
    columns = list(BAR_COLUMNS) + [c for c in STRESS_FLAG_COLUMNS if c in frame.columns]
    out = frame.copy(deep=False) if list(frame.columns) == columns else frame.loc[:, columns]
    index = out.index
    if not isinstance(index, pd.RangeIndex) or index.start != 0 or index.step != 1:
        out = out.reset_index(drop=True)
    dtypes = out.dtypes
    if dtypes["ts"] != _TS_DTYPE:
        out["ts"] = pd.to_datetime(out["ts"], utc=True).astype(_TS_DTYPE)
    if not _is_canonical_symbol(out["symbol"].array):
        out["symbol"] = conform_symbols(out["symbol"])
    for column in FLOAT_COLUMNS:
        if dtypes[column] != np.float64:
            out[column] = out[column].astype(np.float64)
    for column in columns[len(BAR_COLUMNS):]:
        if dtypes[column] != np.bool_:
            out[column] = out[column].astype(bool)
    return out


def _is_canonical_symbol(values: object) -> bool:
    if not isinstance(values, pd.Categorical):
        return False
    dtype = values.dtype
    categories = dtype.categories
    codes = values.codes
    return (
        not dtype.ordered
        and categories.dtype == "str"
        and categories.is_monotonic_increasing
        and not (len(codes) and codes.min() < 0)
    )


def conform_symbols(values: pd.Series) -> pd.Series:
    """``values`` as the canonical symbol column: categorical, string categories in sorted order.

    Returned as is (the same object) when it already is one; a categorical with other categories is
    recoded without reading the names of every row.
    """
    dtype = values.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        if _is_canonical_symbol(values.array):
            return values
        codes = values.array.codes
        if len(codes) and codes.min() < 0:
            raise SchemaError(f"symbol is null at row {int(np.argmax(codes < 0))}")
        categories = dtype.categories
        names = categories.astype(str)
        if not names.has_duplicates:
            order = np.argsort(names.to_numpy(dtype=object), kind="stable")
            remap = np.empty(len(order), dtype=np.int32)
            remap[order] = np.arange(len(order), dtype=np.int32)
            recoded = pd.Categorical.from_codes(remap[codes], dtype=symbol_dtype(names[order]))
            return pd.Series(recoded, index=values.index, name=values.name)
        values = values.astype(object)
    if values.isna().any():
        raise SchemaError(f"symbol is null at row {int(np.argmax(values.isna().to_numpy()))}")
    return pd.Series(pd.Categorical(values.astype(str)), index=values.index, name=values.name)


def symbol_names(categories: pd.Index, codes: np.ndarray) -> tuple[str, ...]:
    """The names of ``codes`` (a few, e.g. one per segment) as a tuple of str."""
    return tuple(categories.to_numpy(dtype=object)[codes].tolist())


def symbol_dtype(names: Sequence[str] | pd.Index | np.ndarray) -> pd.CategoricalDtype:
    """The canonical categorical dtype over ``names`` (sorted, as strings)."""
    return pd.CategoricalDtype(pd.Index(sorted({str(n) for n in names}), dtype="str"))


def symbol_column(codes: np.ndarray, names: Sequence[str]) -> pd.Categorical:
    """A canonical symbol column from codes into ``names`` (any order, distinct)."""
    dtype = symbol_dtype(names)
    position = dtype.categories.get_indexer(list(names))
    return pd.Categorical.from_codes(position.astype(np.int32)[codes], dtype=dtype)


def symbol_codes(bars: pd.DataFrame) -> tuple[np.ndarray, pd.Index]:
    """Codes (read-only) and categories of a canonical frame's symbol column (codes index the sorted names)."""
    column = bars["symbol"].array
    return column.codes, column.categories


def bar_order(codes: np.ndarray, ts: np.ndarray, path: np.ndarray | None = None) -> np.ndarray | None:
    """The stable permutation that sorts rows by symbol code (then path), then time; ``None`` when the
    rows already are in that order, which is checked in one pass and is the usual case."""
    if len(codes) < 2:
        return None
    same = codes[1:] == codes[:-1]
    ordered = bool(np.all(codes[1:] >= codes[:-1]))
    if ordered and path is not None:
        ordered = bool(np.all(~same | (path[1:] >= path[:-1])))
        same &= path[1:] == path[:-1]
    if ordered and bool(np.all(~same | (ts[1:] >= ts[:-1]))):
        return None
    keys = (ts, codes) if path is None else (ts, path, codes)
    return np.lexsort(keys)


def concat_bars(frames: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Concatenate canonical frames, keeping the symbol categorical (pandas would fall back to
    strings when the frames' categories differ)."""
    if not frames:
        return empty_bars()
    conformed = [conform_bars(f) for f in frames]
    dtype = symbol_dtype([n for f in conformed for n in f["symbol"].dtype.categories])
    same = [f if f["symbol"].dtype == dtype else f.assign(symbol=f["symbol"].cat.set_categories(dtype.categories))
            for f in conformed]
    return conform_bars(pd.concat(same, ignore_index=True))


def to_arrow(frame: pd.DataFrame) -> pa.Table:
    """Convert canonical bars to an Arrow table with the canonical schema (stress flags if present)."""
    conformed = conform_bars(frame)
    schema = STRESSED_BAR_SCHEMA if all(c in conformed.columns for c in STRESS_FLAG_COLUMNS) else BAR_SCHEMA
    if schema is BAR_SCHEMA:
        conformed = conformed.loc[:, list(BAR_COLUMNS)]
    return pa.Table.from_pandas(conformed, schema=schema, preserve_index=False)
