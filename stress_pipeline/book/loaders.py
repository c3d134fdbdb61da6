"""Read depth files into the canonical depth table (:mod:`stress_pipeline.book.schema`).

Three layouts, told apart by content:

* **Canonical CSV / Parquet** (the documented layout): columns ``ts, symbol, side, level, price,
  size`` and optionally ``kind`` (snapshot/update; all snapshot when absent), one row per level, in
  time order per symbol. In CSV, ``ts`` is ISO 8601 with a zone (``2023-10-17T13:30:00Z``); in
  Parquet a timestamp column (naive means UTC). CSV may be plain, .gz or .zip.
* **Wide snapshot CSV**, the layout of public crypto depth datasets (Tardis ``book_snapshot_25`` /
  ``book_snapshot_5``): one snapshot per line, ``timestamp`` in microseconds since the epoch, and
  columns ``asks[i].price, asks[i].amount, bids[i].price, bids[i].amount`` (empty cells for levels a
  snapshot does not have, at the deep end); ``symbol`` from its column, else from the file name.
* **Binance depth snapshot JSON** (``GET /api/v3/depth`` / ``/fapi/v1/depth``): ``{"lastUpdateId",
  "E"?, "T"?, "bids": [[price, qty], ...], "asks": [...]}``, prices and sizes as strings; the time is
  ``T`` (or ``E``) in ms, else the ``ts`` argument; the symbol from the file name.

Every problem is a :class:`~stress_pipeline.book.schema.DepthError` naming the file, the line (CSV,
1-based with the header), row (Parquet) or entry (JSON), and the field: a missing column, a value
that is not a number, a negative size, unsorted levels, a crossed book.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from stress_pipeline.book.schema import DEPTH_COLUMNS, DepthError, conform_depth
from stress_pipeline.market.errors import BarFileError
from stress_pipeline.market.files import open_decompressed
from stress_pipeline.market.symbols import symbol_from_path

_WIDE = re.compile(r"^(bids|asks)\[(\d+)\]\.(price|amount)$")
_REQUIRED = ("ts", "symbol", "side", "level", "price", "size")


def load_depth(path: str | Path, *, symbol: str | None = None, ts: str | pd.Timestamp | None = None) -> pd.DataFrame:
    """The canonical depth table of one file (layout by content; see the module docstring)."""
    path = Path(path)
    name = path.name.lower()
    if name.endswith(".json"):
        return _read_binance_json(path, symbol, ts)
    if name.endswith((".parquet", ".pq")):
        try:
            table = pq.read_table(path)
        except (OSError, pa.ArrowInvalid) as exc:
            raise DepthError(str(path), f"not a readable Parquet file: {exc}") from None
        return _from_columns(path, table.to_pandas(), symbol, lambda r: f"row {r}", time_text=False)
    try:
        with open_decompressed(path) as stream:
            table = pacsv.read_csv(stream, convert_options=pacsv.ConvertOptions(
                strings_can_be_null=True, column_types={"ts": pa.string()}))
    except BarFileError as exc:
        raise DepthError(str(path), exc.problem) from None
    except pa.ArrowInvalid as exc:
        raise DepthError(str(path), f"not a readable CSV file: {exc}") from None
    return _from_columns(path, table.to_pandas(), symbol, lambda r: f"line {r + 2}", time_text=True)


def _from_columns(path: Path, frame: pd.DataFrame, symbol: str | None, locate, *, time_text: bool) -> pd.DataFrame:
    wide = [c for c in frame.columns if _WIDE.match(str(c))]
    if wide:
        return _read_wide(path, frame, wide, symbol, locate)
    missing = [c for c in _REQUIRED if c not in frame.columns and not (c == "symbol" and symbol)]
    if missing:
        raise DepthError(str(path), f"missing column(s) {', '.join(missing)}; expected {', '.join(DEPTH_COLUMNS)} "
                                    "(kind optional) or the wide bids[i].price/asks[i].amount layout",
                         location="line 1" if time_text else None, field=missing[0])  # fmt: skip
    if "symbol" not in frame.columns:
        frame = frame.assign(symbol=symbol.upper())
    for column in ("level", "price", "size"):
        frame[column] = _numbers(path, frame[column], column, locate)
    frame["ts"] = _times(path, frame["ts"], locate, text=time_text)
    return conform_depth(frame, str(path), locate)


def _read_wide(path: Path, frame: pd.DataFrame, wide: list[str], symbol: str | None, locate) -> pd.DataFrame:
    if "timestamp" not in frame.columns:
        raise DepthError(str(path), "missing column timestamp (microseconds since the epoch)", location="line 1",
                         field="timestamp")  # fmt: skip
    micros = _numbers(path, frame["timestamp"], "timestamp", locate)
    bad = ~np.isfinite(micros) | (micros != np.floor(micros))
    if bad.any():
        row = int(np.argmax(bad))
        raise DepthError(str(path), f"not a whole number of microseconds: {frame['timestamp'].iloc[row]!r}",
                         location=locate(row), field="timestamp")  # fmt: skip
    names = frame["symbol"].astype(str).str.upper() if "symbol" in frame.columns else None
    default = (symbol or symbol_from_path(path)).upper()
    levels: dict[tuple[str, int], dict[str, str]] = {}
    for column in wide:
        side, level, field = _WIDE.match(column).groups()
        levels.setdefault((side, int(level)), {})[field] = column
    n = len(frame)
    parts = []
    for (side, level), fields in sorted(levels.items(), key=lambda kv: (kv[0][0] != "bids", kv[0][1])):
        if set(fields) != {"price", "amount"}:
            other = "amount" if "price" in fields else "price"
            raise DepthError(str(path), f"{side}[{level}].{other} is missing", location="line 1",
                             field=f"{side}[{level}].{other}")  # fmt: skip
        price = _numbers(path, frame[fields["price"]], fields["price"], locate)
        size = _numbers(path, frame[fields["amount"]], fields["amount"], locate)
        one_empty = np.isnan(price) != np.isnan(size)
        if one_empty.any():
            row = int(np.argmax(one_empty))
            column = fields["price"] if np.isnan(price[row]) else fields["amount"]
            raise DepthError(str(path), "empty while the other field of its level is not", location=locate(row),
                             field=column)  # fmt: skip
        parts.append(pd.DataFrame({"line": np.arange(n), "side": "bid" if side == "bids" else "ask", "level": level,
                                   "price": price, "size": size, "column": fields["price"]}))  # fmt: skip
    long = pd.concat(parts, ignore_index=True)
    long = long[np.isfinite(long["price"].to_numpy())]
    long = long.sort_values(["line", "side", "level"], ascending=[True, False, True], kind="stable")
    line = long["line"].to_numpy()
    column = long["column"].to_numpy(dtype=object)
    out = pd.DataFrame({
        "ts": pd.to_datetime(micros[line].astype(np.int64) * 1_000, utc=True),
        "symbol": names.to_numpy(dtype=object)[line] if names is not None else default,
        "side": long["side"].to_numpy(dtype=object), "level": long["level"].to_numpy(dtype=np.int32),
        "price": long["price"].to_numpy(), "size": long["size"].to_numpy(), "kind": "snapshot",
    })  # fmt: skip
    return conform_depth(out, str(path), lambda r: f"{locate(int(line[r]))} ({column[r]})")


def _read_binance_json(path: Path, symbol: str | None, ts) -> pd.DataFrame:
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DepthError(str(path), f"not a readable JSON file: {exc}") from None
    if not isinstance(raw, dict):
        raise DepthError(str(path), "expected an object with bids and asks")
    for key in ("bids", "asks"):
        if not isinstance(raw.get(key), list):
            raise DepthError(str(path), f"missing list {key!r} of [price, quantity] pairs", field=key)
    stamp = raw.get("T", raw.get("E"))
    if stamp is not None:
        when = pd.Timestamp(int(stamp), unit="ms", tz="UTC")
    elif ts is not None:
        when = pd.Timestamp(ts)
        when = when.tz_localize("UTC") if when.tzinfo is None else when.tz_convert("UTC")
    else:
        raise DepthError(str(path), "no time in the snapshot (T or E): pass ts=", field="T")
    rows, where = [], []
    for key, side in (("bids", "bid"), ("asks", "ask")):
        for i, entry in enumerate(raw[key]):
            if not isinstance(entry, list) or len(entry) < 2:
                raise DepthError(str(path), "expected [price, quantity]", location=f"{key}[{i}]", field=key)
            values = []
            for j, field in enumerate(("price", "quantity")):
                try:
                    values.append(float(entry[j]))
                except (TypeError, ValueError):
                    raise DepthError(str(path), f"not a number: {entry[j]!r}", location=f"{key}[{i}]",
                                     field=field) from None  # fmt: skip
            rows.append((side, i, *values))
            where.append(f"{key}[{i}]")
    frame = pd.DataFrame(rows, columns=["side", "level", "price", "size"])
    frame.insert(0, "symbol", (symbol or symbol_from_path(path)).upper())
    frame.insert(0, "ts", when)
    frame["kind"] = "snapshot"
    return conform_depth(frame, str(path), lambda r: where[r])


def _numbers(path: Path, values: pd.Series, column: str, locate) -> np.ndarray:
    if pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values.dtype):
        return values.to_numpy(dtype=np.float64, na_value=np.nan)
    numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    bad = np.isnan(numbers) & values.notna().to_numpy()
    if bad.any():
        row = int(np.argmax(bad))
        raise DepthError(str(path), f"not a number: {values.iloc[row]!r}", location=locate(row), field=column)
    return numbers


def _times(path: Path, values: pd.Series, locate, *, text: bool) -> pd.Series:
    if not text or isinstance(values.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(values.dtype):
        out = pd.to_datetime(values, utc=True) if not isinstance(values.dtype, pd.DatetimeTZDtype) else values
        return out.dt.tz_convert("UTC")
    strings = values.astype("str")
    parsed = pd.to_datetime(strings, utc=True, errors="coerce", format="ISO8601")
    has_zone = strings.str.contains(r"(?:Z|[+-]\d\d:?\d\d)$", regex=True)
    bad = parsed.isna() | ~has_zone
    if bad.any():
        row = int(np.argmax(bad.to_numpy()))
        raise DepthError(str(path), f"expected an ISO 8601 time with a zone, e.g. 2023-10-17T13:30:00Z "
                                    f"(got {values.iloc[row]!r})", location=locate(row), field="ts")  # fmt: skip
    return parsed
