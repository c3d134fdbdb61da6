"""Read market data files into the canonical bar table.

Formats, told apart by content rather than by name:
- Binance spot klines as in Binance's public dumps: no header, 12 columns, open time in ms or us;
- the Binance futures variant: the same 12 columns under a header row (open_time, ..., close_time, ...);
- generic OHLCV CSV with a header (timestamp | ts | open_time, open, high, low, close, volume
  [, spread_bps]) and the same columns in Parquet.
CSV files may be plain, .gz or .zip. The symbol comes from the file name.

Parsing is vectorised (pyarrow) and streams: CSV in blocks (``pyarrow.csv.open_csv``), Parquet by row
group, each turned into numpy columns as it arrives, so the peak memory of a load stays near the size
of the bars it returns, not of the text. A file larger than ``max_file_bytes`` (on disk, or once
decompressed) is refused, naming it. Only when a file is bad does a line-by-line pass run, to name the
line and column of the first problem in a :class:`BarFileError`; a NaN, an infinite or an empty value
is such a problem. A file is read whole or not at all. :func:`load_bars_with_sources` also returns
where each bar came from (:class:`~stress_pipeline.market.sources.BarSources`), so a quality failure
names the file and line of the offending rows.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import io
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, NamedTuple

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
from stress_pipeline.market.sources import BarSources, SourceFile
from stress_pipeline.market.symbols import default_spread_bps, symbol_from_path
from stress_pipeline.settings import DEFAULT_MAX_FILE_BYTES

BINANCE_COLUMNS = (
    "open_time", "open", "high", "low", "close", "volume", "close_time",
    "quote_volume", "count", "taker_buy_volume", "taker_buy_quote_volume", "ignore",
)  # fmt: skip
TIMESTAMP_ALIASES = ("timestamp", "ts", "open_time")
SYMBOLS_FILE_NAME = "symbols.yaml"
VALUE_COLUMNS = ("open", "high", "low", "close", "volume")

CSV_BLOCK_BYTES = 1024**2
"""Bytes of CSV text parsed per block. Small blocks keep the reader's own memory near 50 MB whatever
the file (16 MiB blocks cost over 200 MB in flight) at the same speed (`stress-pipeline bench ingest`)."""
_HEAD_BYTES = 64 * 1024

# Epoch magnitudes used to tell units apart (2001-09-09 in seconds is 1e9, in ms 1e12, ...).
_MS_MIN, _US_MIN, _NS_MIN = 10**11, 10**14, 10**17


class LoadedBars(NamedTuple):
    """Canonical bars and where each row came from."""

    bars: pd.DataFrame
    sources: BarSources


def load_bars(
    paths: str | Path | Iterable[str | Path], *, symbols_file: Path | None = None,
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
) -> pd.DataFrame:
    """Load one or several market data files into canonical bars.

    Files of one symbol concatenate; identical duplicate rows drop; rows sort by symbol and time (when
    they are not in that order already). ``spread_bps`` comes from the data when a file has it, else
    from ``symbols_file`` (data/symbols.yaml: per-symbol and default spreads; a missing file means the
    built-in default). Without ``symbols_file``, a file's ``symbols.yaml`` is the one of its data
    directory, found beside the file or one folder up (``data/bars/X.csv.gz`` -> ``data/symbols.yaml``),
    the layout the pipeline reads, so a notebook and the assets see the same spreads. Raises
    :class:`BarFileError` for the first bad file, or a file over ``max_file_bytes``.
    """
    return load_bars_with_sources(paths, symbols_file=symbols_file, max_file_bytes=max_file_bytes).bars


def load_bars_with_sources(
    paths: str | Path | Iterable[str | Path], *, symbols_file: Path | None = None,
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
) -> LoadedBars:
    """:func:`load_bars`, with the file and record of every row (see :class:`BarSources`)."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    paths = [Path(p) for p in paths]
    if not paths:
        raise ValueError("load_bars: no files given")
    frames, files = [], []
    for path in paths:
        try:
            frame, source = _read_bar_file(
                path, symbols_file=Path(symbols_file) if symbols_file else data_symbols_file(path),
                max_file_bytes=max_file_bytes,
            )  # fmt: skip
        except MemoryError:
            raise BarFileError(
                path, "out of memory while loading it: lower max_file_bytes (STRESS_MAX_FILE_BYTES) or split the file"
            ) from None
        frames.append(frame)
        files.append(source)
    offsets = np.concatenate([[0], np.cumsum([len(f) for f in frames])]).astype(np.int64)
    records = np.arange(offsets[-1], dtype=np.int64)
    bars = concat_bars(frames) if len(frames) > 1 else frames[0]
    del frames
    codes, _ = symbol_codes(bars)
    ts = bars["ts"].array.asi8
    order = bar_order(codes, ts)
    if order is not None:
        bars = bars.take(order).reset_index(drop=True)
        codes, ts, records = codes[order], ts[order], records[order]
    # Identical rows share symbol and time, so they sit next to each other once sorted.
    if len(ts) > 1 and bool(np.any((codes[1:] == codes[:-1]) & (ts[1:] == ts[:-1]))):
        keep = ~bars.duplicated().to_numpy()
        bars = bars.loc[keep].reset_index(drop=True)
        records = records[keep]
    return LoadedBars(conform_bars(bars), BarSources(tuple(files), offsets, records))


def data_symbols_file(path: Path) -> Path:
    """The ``symbols.yaml`` of the data directory holding ``path``: beside it, else one folder up (it
    may not exist: then the built-in default spread applies)."""
    beside = path.parent / SYMBOLS_FILE_NAME
    return beside if beside.exists() else path.parent.parent / SYMBOLS_FILE_NAME


def read_bar_file(
    path: str | Path, *, symbols_file: Path, max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
) -> pd.DataFrame:
    """Read one file into canonical bars (unsorted, duplicates kept)."""
    return _read_bar_file(Path(path), symbols_file=symbols_file, max_file_bytes=max_file_bytes)[0]


def _read_bar_file(path: Path, *, symbols_file: Path, max_file_bytes: int) -> tuple[pd.DataFrame, SourceFile]:
    try:
        symbol = symbol_from_path(path)
    except ValueError:
        raise BarFileError(
            path, "cannot tell the symbol from the file name (expected e.g. BTCUSDT-1m-2024-01.csv.gz)"
        ) from None
    if not path.is_file():
        raise BarFileError(path, "no such file")
    size = path.stat().st_size
    if size > max_file_bytes:
        raise BarFileError(path, f"{size:,} bytes, larger than the limit of {max_file_bytes:,} bytes (max_file_bytes)")
    name = path.name.lower()
    parquet = name.endswith((".parquet", ".pq"))
    if parquet:
        columns, header = _read_parquet(path), False
    else:
        columns, header = _read_csv_with_layout(path, max_file_bytes)
    n = len(columns["ts"])
    spread = columns.pop("spread_bps", None)
    if spread is None:
        spread = np.full(n, default_spread_bps(symbols_file, symbol), dtype=np.float64)
    # copy=False: the columns were just made for this frame; pandas would otherwise copy them into one block.
    frame = pd.DataFrame(
        {
            "ts": pd.Series(columns.pop("ts").view("datetime64[ns]"), copy=False).dt.tz_localize("UTC"),
            "symbol": symbol_column(np.zeros(n, dtype=np.int32), [symbol]),
            **{c: columns.pop(c) for c in VALUE_COLUMNS},
            "spread_bps": spread,
        },
        copy=False,
    )
    return (conform_bars(frame) if n else empty_bars()), SourceFile(path, parquet, header)


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


def _read_csv(path: Path, max_file_bytes: int = DEFAULT_MAX_FILE_BYTES) -> dict[str, np.ndarray]:
    """The columns of a CSV file (plain, .gz or .zip), streamed block by block."""
    return _read_csv_with_layout(path, max_file_bytes)[0]


def _read_csv_with_layout(path: Path, max_file_bytes: int) -> tuple[dict[str, np.ndarray], bool]:
    with open_decompressed(path) as stream:
        head = stream.read(_HEAD_BYTES)
    if not head.strip():
        raise BarFileError(path, "the file is empty: no bars", location="line 1")
    layout = _csv_layout(path, head)
    try:
        return _stream_csv(path, layout, max_file_bytes), layout.header
    except (pa.ArrowInvalid, _NeedsDiagnosis) as exc:
        _diagnose_csv(path, layout)
        raise BarFileError(path, f"cannot be parsed: {exc}") from None


class _NeedsDiagnosis(Exception):
    """The fast path found a problem it cannot place; the line-by-line pass will."""


@contextlib.contextmanager
def open_decompressed(path: Path, max_bytes: int | None = None) -> Iterator[BinaryIO]:
    """The bytes of a data file, decompressed as they are read (.gz; .zip: its CSV member).

    With ``max_bytes``, reading past that many decompressed bytes raises a :class:`BarFileError`,
    so a small archive cannot expand past the size limit. Unreadable or corrupt files raise one too.
    """
    name = path.name.lower()
    kind = "gzip" if name.endswith(".gz") else "zip" if name.endswith(".zip") else None
    try:
        with contextlib.ExitStack() as stack:
            raw: BinaryIO = stack.enter_context(open(path, "rb"))
            stream: BinaryIO = raw
            if kind == "gzip":
                stream = stack.enter_context(gzip.GzipFile(fileobj=raw, mode="rb"))  # type: ignore[arg-type]
            elif kind == "zip":
                archive = stack.enter_context(zipfile.ZipFile(raw))
                stream = stack.enter_context(archive.open(_zip_member(path, archive)))  # type: ignore[assignment]
            if max_bytes is not None and kind is not None:
                stream = io.BufferedReader(_Limited(stream, path, max_bytes), CSV_BLOCK_BYTES)  # type: ignore[assignment]
            yield stream
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise BarFileError(path, f"not a readable gzip file: {exc}") from None
    except zipfile.BadZipFile as exc:
        raise BarFileError(path, f"not a readable zip file: {exc}") from None
    except OSError as exc:
        raise BarFileError(path, f"cannot be read: {exc.strerror or exc}") from None


def _zip_member(path: Path, archive: zipfile.ZipFile) -> str:
    members = [m for m in archive.namelist() if not m.endswith("/")]
    csvs = [m for m in members if m.lower().endswith(".csv")] or members
    if not csvs:
        raise BarFileError(path, "the zip archive holds no file")
    return csvs[0]


class _Limited(io.RawIOBase):
    """A stream that refuses to yield more than ``limit`` bytes (a decompressed size limit)."""

    def __init__(self, stream: BinaryIO, path: Path, limit: int):
        self._stream, self._path, self._limit, self._count = stream, path, limit, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        count = self._stream.readinto(buffer)  # type: ignore[attr-defined]
        self._count += count
        if self._count > self._limit:
            raise BarFileError(
                self._path, f"larger than the limit of {self._limit:,} bytes once decompressed (max_file_bytes)"
            )
        return count


def _first_line(data: bytes) -> str:
    return data.split(b"\n", 1)[0].decode("utf-8", errors="replace").strip().lstrip("\ufeff")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _number_problem(text: str) -> str | None:
    """Why a CSV field is not a usable number (None when it is one)."""
    if not text:
        return "empty value, expected a number"
    try:
        value = float(text)
    except ValueError:
        return f"cannot parse {text!r} as a number"
    if not np.isfinite(value):
        return f"{text!r} is not a finite number"
    return None


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


def _stream_csv(path: Path, layout: _CsvLayout, max_file_bytes: int) -> dict[str, np.ndarray]:
    wanted = [layout.ts_column, *layout.value_columns.values()]
    if layout.spread_column:
        wanted.append(layout.spread_column)
    types: dict[str, pa.DataType] = {c: pa.float64() for c in wanted[1:]}
    types[layout.ts_column] = pa.int64() if layout.binance_time else pa.string()
    parts: dict[str, list[np.ndarray]] = {}
    with open_decompressed(path, max_file_bytes) as stream:
        reader = pacsv.open_csv(
            stream,
            read_options=pacsv.ReadOptions(
                column_names=list(layout.names), skip_rows=1 if layout.header else 0, block_size=CSV_BLOCK_BYTES
            ),
            parse_options=pacsv.ParseOptions(ignore_empty_lines=True),
            convert_options=pacsv.ConvertOptions(
                column_types=types, include_columns=wanted, strings_can_be_null=False
            ),
        )
        for batch in reader:
            for key, values in _csv_columns(layout, batch).items():
                # An owned copy: the block's Arrow buffers are reused by the next block instead of
                # living on until the join.
                parts.setdefault(key, []).append(np.array(values, dtype=np.float64 if key != "ts" else np.int64))
            del batch
    if not parts or not sum(len(p) for p in parts["ts"]):
        raise BarFileError(path, "no bars after the header", location="line 2" if layout.header else "line 1")
    # One column at a time, each block's arrays released as its column is joined: the peak is the bars
    # plus one column, not twice the bars.
    return {key: _join(parts.pop(key)) for key in list(parts)}


def _join(blocks: list[np.ndarray]) -> np.ndarray:
    if len(blocks) == 1:
        return blocks[0]
    joined = np.concatenate(blocks)
    blocks.clear()
    return joined


def _csv_columns(layout: _CsvLayout, batch: pa.RecordBatch) -> dict[str, np.ndarray]:
    """One block's canonical columns; a null or non-finite number, or a bad time, needs the slow pass."""
    out: dict[str, np.ndarray] = {}
    numeric = dict(layout.value_columns)
    if layout.spread_column:
        numeric["spread_bps"] = layout.spread_column
    for canonical, column in numeric.items():
        values = batch.column(column)
        if values.null_count:
            raise _NeedsDiagnosis(f"empty value in column {column}")
        array = values.to_numpy(zero_copy_only=False).astype(np.float64, copy=False)
        if not np.isfinite(array).all():
            raise _NeedsDiagnosis(f"a value that is not a finite number in column {column}")
        out[canonical] = array
    ts_values = batch.column(layout.ts_column)
    if layout.binance_time:
        if ts_values.null_count:
            raise _NeedsDiagnosis("empty open time")
        ns, bad = _binance_time_to_ns(ts_values.to_numpy(zero_copy_only=False))
    else:
        ns, bad = _generic_time_to_ns(pd.Series(ts_values.to_pandas()))
    if bad.any():
        raise _NeedsDiagnosis(f"unparsable timestamp in column {layout.ts_column}")
    out["ts"] = ns
    return out


def _diagnose_csv(path: Path, layout: _CsvLayout) -> None:
    """Walk the file line by line and raise a BarFileError for the first problem found."""
    with open_decompressed(path) as stream:
        _diagnose_lines(path, layout, io.TextIOWrapper(stream, encoding="utf-8", errors="replace", newline=""))


def _diagnose_lines(path: Path, layout: _CsvLayout, text: io.TextIOWrapper) -> None:
    reader = csv.reader(text)
    index = {name: i for i, name in enumerate(layout.names)}
    numeric = [*layout.value_columns.values(), *([layout.spread_column] if layout.spread_column else [])]
    for row in reader:
        line = reader.line_num
        if layout.header and line == 1:
            continue
        if line == 1 and row:
            row[0] = row[0].lstrip("\ufeff")
        if not row or all(not field.strip() for field in row):
            continue
        if len(row) != len(layout.names):
            raise BarFileError(
                path, f"expected {len(layout.names)} columns, found {len(row)}", location=f"line {line}"
            )
        for column in numeric:
            problem = _number_problem(row[index[column]].strip())
            if problem:
                raise BarFileError(path, problem, location=f"line {line}", column=column)
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
    for column in numeric.values():
        kind = parquet.schema_arrow.field(column).type
        if not (pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind)):
            raise BarFileError(path, f"holds {kind} values, expected numbers", column=column)
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
    numbers = values.cast(pa.float64()).to_numpy().astype(np.float64, copy=False)
    bad = ~np.isfinite(numbers)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        original = values[row].as_py()
        problem = "empty value, expected a number" if original is None else f"{original!r} is not a finite number"
        raise BarFileError(path, problem, location=f"row group {group}, row {row}", column=column)
    return numbers


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
