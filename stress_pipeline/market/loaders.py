"""Read market data files into the canonical bar table.

Formats, told apart by content rather than by name:
- Binance spot klines as in Binance's public dumps: no header, 12 columns, open time in ms or us;
- the Binance futures variant: the same 12 columns under a header row (open_time, ..., close_time, ...);
- generic OHLCV CSV with a header (timestamp | ts | open_time, open, high, low, close, volume
  [, spread_bps]) and the same columns in Parquet.
CSV files may be plain, .gz or .zip. The symbol comes from the file name.

Parsing is vectorised (pyarrow); only when a file is bad does a line-by-line pass run, to name the
line and column of the first problem in a :class:`BarFileError`. A file is read whole or not at all.
"""

from __future__ import annotations

import csv
import gzip
import io
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from stress_pipeline.market.errors import BarFileError
from stress_pipeline.market.schema import (
    bar_order,
    concat_bars,
    conform_bars,
    empty_bars,
    symbol_codes,
    symbol_column,
)
from stress_pipeline.market.symbols import default_spread_bps, symbol_from_path

BINANCE_COLUMNS = (
    "open_time", "open", "high", "low", "close", "volume", "close_time",
    "quote_volume", "count", "taker_buy_volume", "taker_buy_quote_volume", "ignore",
)  # fmt: skip
TIMESTAMP_ALIASES = ("timestamp", "ts", "open_time")
SYMBOLS_FILE_NAME = "symbols.yaml"
VALUE_COLUMNS = ("open", "high", "low", "close", "volume")

# Epoch magnitudes used to tell units apart (2001-09-09 in seconds is 1e9, in ms 1e12, ...).
_MS_MIN, _US_MIN, _NS_MIN = 10**11, 10**14, 10**17


def load_bars(paths: str | Path | Iterable[str | Path], *, symbols_file: Path | None = None) -> pd.DataFrame:
    """Load one or several market data files into canonical bars.

    Files of one symbol concatenate; identical duplicate rows drop; rows sort by symbol and time (when
    they are not in that order already). ``spread_bps`` comes from the data when a file has it, else
    from ``symbols_file`` (data/symbols.yaml: per-symbol and default spreads; a missing file means the
    built-in default). Without ``symbols_file``, a file's ``symbols.yaml`` is the one of its data
    directory, found beside the file or one folder up (``data/bars/X.csv.gz`` -> ``data/symbols.yaml``),
    the layout the pipeline reads, so a notebook and the assets see the same spreads. Raises
    :class:`BarFileError` for the first bad file.
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    paths = [Path(p) for p in paths]
    if not paths:
        raise ValueError("load_bars: no files given")
    frames = [
        read_bar_file(path, symbols_file=Path(symbols_file) if symbols_file else data_symbols_file(path))
        for path in paths
    ]
    bars = concat_bars(frames) if len(frames) > 1 else frames[0]
    codes, _ = symbol_codes(bars)
    ts = bars["ts"].array.asi8
    order = bar_order(codes, ts)
    if order is not None:
        bars = bars.take(order).reset_index(drop=True)
        codes, ts = codes[order], ts[order]
    # Identical rows share symbol and time, so they sit next to each other once sorted.
    if len(ts) > 1 and bool(np.any((codes[1:] == codes[:-1]) & (ts[1:] == ts[:-1]))):
        bars = bars.drop_duplicates(ignore_index=True)
    return conform_bars(bars)


def data_symbols_file(path: Path) -> Path:
    """The ``symbols.yaml`` of the data directory holding ``path``: beside it, else one folder up (it
    may not exist: then the built-in default spread applies)."""
    beside = path.parent / SYMBOLS_FILE_NAME
    return beside if beside.exists() else path.parent.parent / SYMBOLS_FILE_NAME


def read_bar_file(path: str | Path, *, symbols_file: Path) -> pd.DataFrame:
    """Read one file into canonical bars (unsorted, duplicates kept)."""
    path = Path(path)
    symbol = symbol_from_path(path)
    if not path.is_file():
        raise BarFileError(path, "no such file")
    name = path.name.lower()
    columns = _read_parquet(path) if name.endswith((".parquet", ".pq")) else _read_csv(path)
    n = len(columns["ts"])
    spread = columns.get("spread_bps")
    if spread is None:
        spread = np.full(n, default_spread_bps(symbols_file, symbol), dtype=np.float64)
    frame = pd.DataFrame(
        {
            "ts": pd.Series(columns["ts"].view("datetime64[ns]")).dt.tz_localize("UTC"),
            "symbol": symbol_column(np.zeros(n, dtype=np.int32), [symbol]),
            **{c: columns[c] for c in VALUE_COLUMNS},
            "spread_bps": spread,
        }
    )
    return conform_bars(frame) if n else empty_bars()


# ---------------------------------------------------------------------------------------------- CSV


@dataclass(frozen=True)
class _CsvLayout:
    """Which columns of a CSV file hold what."""

    names: tuple[str, ...]  # column names as used for parsing (header names, or Binance names)
    header: bool
    ts_column: str
    binance_time: bool  # open time as epoch ms/us integers
    value_columns: dict[str, str]  # canonical name -> file column name
    spread_column: str | None


def _read_csv(path: Path) -> dict[str, np.ndarray]:
    data = _decompressed_bytes(path)
    if not data.strip():
        raise BarFileError(path, "the file is empty: no bars", location="line 1")
    layout = _csv_layout(path, data)
    try:
        table = _parse_csv_fast(data, layout)
        return _csv_columns(path, data, layout, table)
    except (pa.ArrowInvalid, _NeedsDiagnosis) as exc:
        _diagnose_csv(path, data, layout)
        raise BarFileError(path, f"cannot be parsed: {exc}") from None


class _NeedsDiagnosis(Exception):
    """The fast path found a problem it cannot place; the line-by-line pass will."""


def _decompressed_bytes(path: Path) -> bytes:
    name = path.name.lower()
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise BarFileError(path, f"cannot be read: {exc.strerror or exc}") from None
    if name.endswith(".gz"):
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            raise BarFileError(path, f"not a readable gzip file: {exc}") from None
    if name.endswith(".zip"):
        try:
            with zipfile.ZipFile(io.BytesIO(raw)) as archive:
                members = [m for m in archive.namelist() if not m.endswith("/")]
                csvs = [m for m in members if m.lower().endswith(".csv")] or members
                if not csvs:
                    raise BarFileError(path, "the zip archive holds no file")
                return archive.read(csvs[0])
        except zipfile.BadZipFile as exc:
            raise BarFileError(path, f"not a readable zip file: {exc}") from None
    return raw


def _first_line(data: bytes) -> str:
    return data.split(b"\n", 1)[0].decode("utf-8", errors="replace").strip().lstrip("\ufeff")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _csv_layout(path: Path, data: bytes) -> _CsvLayout:
    first = _first_line(data)
    fields = [f.strip() for f in first.split(",")]
    if _is_number(fields[0]):
        return _CsvLayout(
            names=BINANCE_COLUMNS,
            header=False,
            ts_column="open_time",
            binance_time=True,
            value_columns={c: c for c in VALUE_COLUMNS},
            spread_column=None,
        )
    names = tuple(f.lower() for f in fields)
    if len(set(names)) != len(names):
        raise BarFileError(path, f"the header repeats a column name: {first}", location="line 1")
    ts_column = next((alias for alias in TIMESTAMP_ALIASES if alias in names), None)
    if ts_column is None:
        raise BarFileError(
            path, f"no timestamp column in the header (expected one of {', '.join(TIMESTAMP_ALIASES)})",
            location="line 1",
        )
    missing = [c for c in VALUE_COLUMNS if c not in names]
    if missing:
        raise BarFileError(path, "missing from the header", location="line 1", column=", ".join(missing))
    binance_time = ts_column == "open_time" and "close_time" in names
    return _CsvLayout(
        names=names,
        header=True,
        ts_column=ts_column,
        binance_time=binance_time,
        value_columns={c: c for c in VALUE_COLUMNS},
        spread_column="spread_bps" if "spread_bps" in names else None,
    )


def _parse_csv_fast(data: bytes, layout: _CsvLayout) -> pa.Table:
    wanted = [layout.ts_column, *layout.value_columns.values()]
    if layout.spread_column:
        wanted.append(layout.spread_column)
    types: dict[str, pa.DataType] = {c: pa.float64() for c in wanted[1:]}
    types[layout.ts_column] = pa.int64() if layout.binance_time else pa.string()
    return pacsv.read_csv(
        io.BytesIO(data),
        read_options=pacsv.ReadOptions(column_names=list(layout.names), skip_rows=1 if layout.header else 0),
        parse_options=pacsv.ParseOptions(ignore_empty_lines=True),
        convert_options=pacsv.ConvertOptions(column_types=types, include_columns=wanted, strings_can_be_null=False),
    )


def _csv_columns(path: Path, data: bytes, layout: _CsvLayout, table: pa.Table) -> dict[str, np.ndarray]:
    if table.num_rows == 0:
        raise BarFileError(path, "no bars after the header", location="line 2" if layout.header else "line 1")
    out: dict[str, np.ndarray] = {}
    for canonical, column in layout.value_columns.items():
        if table.column(column).null_count:
            raise _NeedsDiagnosis(f"empty value in column {column}")
        out[canonical] = table.column(column).to_numpy().astype(np.float64, copy=False)
    if layout.spread_column:
        if table.column(layout.spread_column).null_count:
            raise _NeedsDiagnosis(f"empty value in column {layout.spread_column}")
        out["spread_bps"] = table.column(layout.spread_column).to_numpy().astype(np.float64, copy=False)
    ts_values = table.column(layout.ts_column)
    if layout.binance_time:
        if ts_values.null_count:
            raise _NeedsDiagnosis("empty open time")
        ns, bad = _binance_time_to_ns(ts_values.to_numpy())
    else:
        ns, bad = _generic_time_to_ns(pd.Series(ts_values.to_pandas()))
    if bad.any():
        raise _NeedsDiagnosis(f"unparsable timestamp in column {layout.ts_column}")
    out["ts"] = ns
    return out


def _diagnose_csv(path: Path, data: bytes, layout: _CsvLayout) -> None:
    """Walk the file line by line and raise a BarFileError for the first problem found."""
    text = data.decode("utf-8", errors="replace").lstrip("\ufeff")
    reader = csv.reader(io.StringIO(text))
    index = {name: i for i, name in enumerate(layout.names)}
    numeric = [*layout.value_columns.values(), *([layout.spread_column] if layout.spread_column else [])]
    for row in reader:
        line = reader.line_num
        if layout.header and line == 1:
            continue
        if not row or all(not field.strip() for field in row):
            continue
        if len(row) != len(layout.names):
            raise BarFileError(
                path, f"expected {len(layout.names)} columns, found {len(row)}", location=f"line {line}"
            )
        for column in numeric:
            value = row[index[column]].strip()
            if not value:
                raise BarFileError(path, "empty value, expected a number", location=f"line {line}", column=column)
            if not _is_number(value):
                raise BarFileError(
                    path, f"cannot parse {value!r} as a number", location=f"line {line}", column=column
                )
        raw_ts = row[index[layout.ts_column]].strip()
        if layout.binance_time:
            ok = raw_ts.isdigit() and not _binance_time_to_ns(np.array([int(raw_ts)]))[1][0]
            expected = "an epoch time in milliseconds or microseconds"
        else:
            ok = bool(raw_ts) and not _generic_time_to_ns(pd.Series([raw_ts]))[1][0]
            expected = "a timestamp (ISO 8601 or epoch s/ms/us/ns)"
        if not ok:
            raise BarFileError(
                path, f"cannot parse {raw_ts!r} as {expected}", location=f"line {line}", column=layout.ts_column
            )


# ------------------------------------------------------------------------------------------ Parquet


def _read_parquet(path: Path) -> dict[str, np.ndarray]:
    try:
        parquet = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types for a corrupt file
        raise BarFileError(path, f"not a readable Parquet file: {exc}") from None
    names = {name.lower(): name for name in parquet.schema_arrow.names}
    ts_column = next((names[a] for a in TIMESTAMP_ALIASES if a in names), None)
    if ts_column is None:
        raise BarFileError(path, f"no timestamp column (expected one of {', '.join(TIMESTAMP_ALIASES)})")
    missing = [c for c in VALUE_COLUMNS if c not in names]
    if missing:
        raise BarFileError(path, "missing column", column=", ".join(missing))
    numeric = {c: names[c] for c in (*VALUE_COLUMNS, "spread_bps") if c in names}
    if parquet.metadata.num_rows == 0:
        raise BarFileError(path, "the file holds no rows", location="row group 0")
    parts: list[dict[str, np.ndarray]] = []
    for group in range(parquet.num_row_groups):
        try:
            table = parquet.read_row_group(group, columns=[ts_column, *numeric.values()])
        except Exception as exc:
            raise BarFileError(path, f"cannot be read: {exc}", location=f"row group {group}") from None
        part: dict[str, np.ndarray] = {}
        for canonical, column in numeric.items():
            part[canonical] = _parquet_numeric(path, group, column, table.column(column))
        part["ts"] = _parquet_time(path, group, ts_column, table.column(ts_column))
        parts.append(part)
    return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}


def _parquet_numeric(path: Path, group: int, column: str, values: pa.ChunkedArray) -> np.ndarray:
    series = pd.Series(values.to_pandas())
    numbers = pd.to_numeric(series, errors="coerce").astype(np.float64)
    bad = numbers.isna().to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        original = series.iloc[row]
        problem = "empty value, expected a number" if pd.isna(original) else f"cannot parse {original!r} as a number"
        raise BarFileError(path, problem, location=f"row group {group}, row {row}", column=column)
    return numbers.to_numpy()


def _parquet_time(path: Path, group: int, column: str, values: pa.ChunkedArray) -> np.ndarray:
    if pa.types.is_timestamp(values.type):
        series = pd.Series(values.to_pandas())
        if series.dt.tz is None:
            series = series.dt.tz_localize("UTC")
        ns = series.dt.tz_convert("UTC").astype("datetime64[ns, UTC]").array.asi8
        bad = series.isna().to_numpy()
    elif pa.types.is_integer(values.type) or pa.types.is_floating(values.type):
        ns, bad = _epoch_to_ns(pd.Series(values.to_pandas()))
    else:
        ns, bad = _generic_time_to_ns(pd.Series(values.to_pandas()))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise BarFileError(
            path, f"cannot parse {values[row].as_py()!r} as a timestamp",
            location=f"row group {group}, row {row}", column=column,
        )
    return ns


# --------------------------------------------------------------------------------------- timestamps


def _binance_time_to_ns(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Binance open times: milliseconds until 2025, microseconds since; told apart per value."""
    values = values.astype(np.int64, copy=False)
    is_us = values >= _US_MIN
    ns = np.where(is_us, values * 1_000, values * 1_000_000)
    bad = (values < _MS_MIN) | (values >= _NS_MIN)
    return ns, bad


def _epoch_to_ns(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Epoch numbers in s, ms, us or ns, told apart by magnitude."""
    numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    bad = ~np.isfinite(numbers) | (numbers <= 0)
    safe = np.where(bad, 0.0, numbers)
    scale = np.select(
        [safe < _MS_MIN, safe < _US_MIN, safe < _NS_MIN], [1e9, 1e6, 1e3], default=1.0
    )
    return np.rint(safe * scale).astype(np.int64), bad


def _generic_time_to_ns(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """ISO 8601 strings or epoch numbers (as text) to UTC nanoseconds; naive times are UTC."""
    text = values.astype(str).str.strip()
    numeric = pd.to_numeric(text, errors="coerce")
    if numeric.notna().all():
        return _epoch_to_ns(numeric)
    parsed = pd.to_datetime(text, utc=True, errors="coerce", format="ISO8601")
    bad = parsed.isna().to_numpy()
    ns = parsed.astype("datetime64[ns, UTC]").array.asi8.copy()
    ns[bad] = 0
    return ns, bad
