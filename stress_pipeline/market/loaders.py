"""Read market data files into the canonical bar table.

Formats are told apart by content rather than by name (:mod:`stress_pipeline.market.formats`): Binance
spot and futures klines, generic OHLCV CSV, the Yahoo, TradingView, MetaTrader and Stooq exports, and
the same columns in Parquet; times are read by :mod:`stress_pipeline.market.timestamps`, with the
per-file options of a sidecar ``<file>.yaml`` (date order, adjusted close, time zone). CSV files may be
plain, .gz or .zip (:mod:`stress_pipeline.market.files`). The symbol comes from the file name.

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

import csv
import io
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
from stress_pipeline.market.files import CSV_BLOCK_BYTES, open_decompressed
from stress_pipeline.market.formats import (
    BINANCE_COLUMNS,
    TIMESTAMP_ALIASES,
    VALUE_COLUMNS,
    CsvLayout,
    FileOptions,
    csv_layout,
    file_timezone,
    header_layout,
    read_file_options,
)
from stress_pipeline.market.schema import (
    bar_order,
    concat_bars,
    conform_bars,
    empty_bars,
    symbol_codes,
    symbol_column,
)
from stress_pipeline.market.sources import BarSources, SourceFile
from stress_pipeline.market.symbols import SymbolInfo, symbol_from_path, symbol_market
from stress_pipeline.market.timestamps import (
    AmbiguousDates,
    binance_time_to_ns,
    decide_date_order,
    epoch_to_ns,
    times_to_ns,
    year_last_order,
)
from stress_pipeline.settings import DEFAULT_MAX_FILE_BYTES

__all__ = [
    "BINANCE_COLUMNS", "CSV_BLOCK_BYTES", "TIMESTAMP_ALIASES", "LoadedBars", "load_bars", "load_bars_with_sources",
    "open_decompressed",
]  # fmt: skip
SYMBOLS_FILE_NAME = "symbols.yaml"

_HEAD_BYTES = 64 * 1024


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
    markets: dict[tuple[Path, str], SymbolInfo] = {}  # data/symbols.yaml read once per symbol, not per file
    for path in paths:
        try:
            frame, source = _read_bar_file(
                path, symbols_file=Path(symbols_file) if symbols_file else data_symbols_file(path),
                max_file_bytes=max_file_bytes, markets=markets,
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
    return _read_bar_file(Path(path), symbols_file=symbols_file, max_file_bytes=max_file_bytes, markets={})[0]


def _read_bar_file(
    path: Path, *, symbols_file: Path, max_file_bytes: int, markets: dict[tuple[Path, str], SymbolInfo]
) -> tuple[pd.DataFrame, SourceFile]:
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
    options = read_file_options(path)
    if (symbols_file, symbol) not in markets:
        markets[symbols_file, symbol] = symbol_market(symbols_file, symbol)
    market = markets[symbols_file, symbol]
    timezone = file_timezone(options, market.calendar)
    name = path.name.lower()
    parquet = name.endswith((".parquet", ".pq"))
    if parquet:
        columns, header = _read_parquet(path, options, timezone), False
    else:
        columns, header = _read_csv_with_layout(path, max_file_bytes, options, timezone)
    n = len(columns["ts"])
    spread = columns.pop("spread_bps", None)
    if spread is None:
        spread = np.full(n, market.spread_bps, dtype=np.float64)
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
class _Reading:
    """A CSV file's layout and how its values are read (date order, time zone, adjustment)."""

    layout: CsvLayout
    date_order: str | None
    timezone: str
    adjusted: bool

    def numeric(self) -> dict[str, str]:
        """Canonical name -> column of every number read."""
        out = dict(self.layout.value_columns)
        if self.layout.spread_column:
            out["spread_bps"] = self.layout.spread_column
        if self.adjusted and self.layout.adj_close_column:
            out["adj_close"] = self.layout.adj_close_column
        if self.layout.tick_volume_column:
            out["tick_volume"] = self.layout.tick_volume_column
        return out

    def time_columns(self) -> list[str]:
        return [self.layout.ts_column, *([self.layout.time_column] if self.layout.time_column else [])]


def _read_csv(path: Path, max_file_bytes: int = DEFAULT_MAX_FILE_BYTES) -> dict[str, np.ndarray]:
    """The columns of a CSV file (plain, .gz or .zip), streamed block by block."""
    return _read_csv_with_layout(path, max_file_bytes, read_file_options(path), "UTC")[0]


def _read_csv_with_layout(
    path: Path, max_file_bytes: int, options: FileOptions, timezone: str
) -> tuple[dict[str, np.ndarray], bool]:
    with open_decompressed(path) as stream:
        head = stream.read(_HEAD_BYTES)
    if not head.strip():
        raise BarFileError(path, "the file is empty: no bars", location="line 1")
    layout = csv_layout(path, head)
    if options.adjusted and layout.adj_close_column is None:
        raise BarFileError(
            path, "the sidecar says adjusted: true but the file has no Adj Close column", location="line 1"
        )
    order = options.date_order
    if order is None and not layout.binance_time:
        blocks = _column_blocks(path, layout, layout.ts_column, max_file_bytes, head)
        order = _date_order_from_data(path, layout.label(layout.ts_column), blocks)
    reading = _Reading(layout, order, timezone, options.adjusted)
    try:
        return _stream_csv(path, reading, max_file_bytes), layout.header
    except (pa.ArrowInvalid, _NeedsDiagnosis) as exc:
        _diagnose_csv(path, reading)
        raise BarFileError(path, f"cannot be parsed: {exc}") from None


def _date_order_from_data(path: Path, label: str, blocks: Iterator[pd.Series]) -> str | None:
    """Day/month order of year-last dates (``1/4/1999``): a field over 12 decides. The first block
    usually does; only when its dates all read both ways are the others read (the date column alone,
    streamed). None when the first block has no year-last date (ISO, ``2024.01.02``, epoch times)."""
    firsts, seconds = 0, 0
    for block, dates in enumerate(blocks):
        first, second = year_last_order(dates)
        if block == 0 and first == second == 0:
            return None
        firsts, seconds = max(firsts, first), max(seconds, second)
        if firsts > 12 or seconds > 12:
            break
    try:
        return decide_date_order(firsts, seconds)
    except AmbiguousDates as exc:
        raise BarFileError(
            path, f"{exc}: set date_order (dmy or mdy) in the sidecar {path.name}.yaml", column=label
        ) from None


def _column_blocks(path: Path, layout: CsvLayout, column: str, max_file_bytes: int, head: bytes) -> Iterator[pd.Series]:
    """One text column of a CSV file, block by block: the head's complete lines first, then the whole file."""
    lines = head.split(b"\n")
    sample = b"\n".join(lines[:-1] if len(lines) > 1 else lines)
    yield from _text_blocks(io.BytesIO(sample), layout, column)
    with open_decompressed(path, max_file_bytes) as stream:
        yield from _text_blocks(stream, layout, column)


def _text_blocks(stream: BinaryIO, layout: CsvLayout, column: str) -> Iterator[pd.Series]:
    try:
        reader = _csv_reader(stream, layout, {column: pa.string()})
        for batch in reader:
            yield pd.Series(batch.column(column).to_pandas())
    except pa.ArrowInvalid:
        return  # a malformed line: the full read names it


def _csv_reader(stream: BinaryIO, layout: CsvLayout, types: dict[str, pa.DataType]) -> pacsv.CSVStreamingReader:
    return pacsv.open_csv(
        stream,
        read_options=pacsv.ReadOptions(
            column_names=list(layout.names), skip_rows=1 if layout.header else 0, block_size=CSV_BLOCK_BYTES
        ),
        parse_options=pacsv.ParseOptions(delimiter=layout.delimiter, ignore_empty_lines=True),
        convert_options=pacsv.ConvertOptions(
            column_types=types, include_columns=list(types), strings_can_be_null=False
        ),
    )


class _NeedsDiagnosis(Exception):
    """The fast path found a problem it cannot place; the line-by-line pass will."""


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


def _stream_csv(path: Path, reading: _Reading, max_file_bytes: int) -> dict[str, np.ndarray]:
    layout = reading.layout
    types: dict[str, pa.DataType] = {c: pa.string() for c in reading.time_columns()}
    if layout.binance_time:
        types[layout.ts_column] = pa.int64()
    types.update({c: pa.float64() for c in reading.numeric().values()})
    parts: dict[str, list[np.ndarray]] = {}
    with open_decompressed(path, max_file_bytes) as stream:
        for batch in _csv_reader(stream, layout, types):
            for key, values in _csv_columns(reading, batch).items():
                # An owned copy: the block's Arrow buffers are reused by the next block instead of
                # living on until the join.
                parts.setdefault(key, []).append(np.array(values, dtype=np.float64 if key != "ts" else np.int64))
            del batch
    if not parts or not sum(len(p) for p in parts["ts"]):
        raise BarFileError(path, "no bars after the header", location="line 2" if layout.header else "line 1")
    # One column at a time, each block's arrays released as its column is joined: the peak is the bars
    # plus one column, not twice the bars.
    return _volume_or_ticks({key: _join(parts.pop(key)) for key in list(parts)})


def _volume_or_ticks(columns: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """MetaTrader's real volume, or its tick volume where the real one is zero throughout (forex)."""
    ticks = columns.pop("tick_volume", None)
    if ticks is not None and not columns["volume"].any():
        columns["volume"] = ticks
    return columns


def _join(blocks: list[np.ndarray]) -> np.ndarray:
    if len(blocks) == 1:
        return blocks[0]
    joined = np.concatenate(blocks)
    blocks.clear()
    return joined


def _csv_columns(reading: _Reading, batch: pa.RecordBatch) -> dict[str, np.ndarray]:
    """One block's canonical columns; a null or non-finite number, or a bad time, needs the slow pass."""
    layout = reading.layout
    out: dict[str, np.ndarray] = {}
    for canonical, column in reading.numeric().items():
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
        ns, bad = binance_time_to_ns(ts_values.to_numpy(zero_copy_only=False))
    else:
        clock = pd.Series(batch.column(layout.time_column).to_pandas()) if layout.time_column else None
        ns, bad = times_to_ns(
            pd.Series(ts_values.to_pandas()), clock, date_order=reading.date_order, timezone=reading.timezone
        )
    if bad.any():
        raise _NeedsDiagnosis(f"unparsable timestamp in column {layout.ts_column}")
    out["ts"] = ns
    if "adj_close" in out and not (out["close"] > 0).all():
        raise _NeedsDiagnosis("a close of zero or less cannot be adjusted")
    return _adjusted(out)


def _adjusted(columns: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Prices scaled by adjusted close / close when an adjusted close was read (the close becomes it)."""
    adj_close = columns.pop("adj_close", None)
    if adj_close is not None:
        factor = adj_close / columns["close"]
        for price in ("open", "high", "low"):
            columns[price] = columns[price] * factor
        columns["close"] = adj_close
    return columns


def _diagnose_csv(path: Path, reading: _Reading) -> None:
    """Walk the file line by line and raise a BarFileError for the first problem found."""
    with open_decompressed(path) as stream:
        _diagnose_lines(path, reading, io.TextIOWrapper(stream, encoding="utf-8", errors="replace", newline=""))


def _diagnose_lines(path: Path, reading: _Reading, text: io.TextIOWrapper) -> None:
    layout = reading.layout
    reader = csv.reader(text, delimiter=layout.delimiter)
    index = {name: i for i, name in enumerate(layout.names)}
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
        for column in reading.numeric().values():
            problem = _number_problem(row[index[column]].strip())
            if problem:
                raise BarFileError(path, problem, location=f"line {line}", column=layout.label(column))
        if reading.adjusted and float(row[index[layout.value_columns["close"]]]) <= 0:
            raise BarFileError(
                path, "a close of zero or less cannot be adjusted", location=f"line {line}",
                column=layout.label(layout.value_columns["close"]),
            )
        _diagnose_time(path, reading, line, [row[index[c]].strip() for c in reading.time_columns()])


def _diagnose_time(path: Path, reading: _Reading, line: int, raw: list[str]) -> None:
    layout = reading.layout
    where = f"line {line}"
    if layout.binance_time:
        if not (raw[0].isdigit() and not binance_time_to_ns(np.array([int(raw[0])]))[1][0]):
            raise BarFileError(
                path, f"cannot parse {raw[0]!r} as an epoch time in milliseconds or microseconds",
                location=where, column=layout.label(layout.ts_column),
            )
        return
    order, zone = reading.date_order, reading.timezone
    expected = "a timestamp (ISO 8601 or epoch s/ms/us/ns)" if layout.time_column is None else "a date"
    if order in ("dmy", "mdy"):
        expected += f", day and month in the order {order}"
    if not raw[0] or times_to_ns(pd.Series([raw[0]]), date_order=order, timezone="UTC")[1][0]:
        raise BarFileError(path, f"cannot parse {raw[0]!r} as {expected}", location=where,
                           column=layout.label(layout.ts_column))
    clock = pd.Series([raw[1]]) if layout.time_column else None
    if times_to_ns(pd.Series([raw[0]]), clock, date_order=order, timezone="UTC")[1][0]:
        assert layout.time_column is not None
        raise BarFileError(path, f"cannot parse {raw[1]!r} as a time of day (HH:MM[:SS] or HHMMSS)",
                           location=where, column=layout.label(layout.time_column))
    if times_to_ns(pd.Series([raw[0]]), clock, date_order=order, timezone=zone)[1][0]:
        shown = " ".join(raw)
        raise BarFileError(path, f"{shown!r} does not exist or is ambiguous in {zone} (a clock change)",
                           location=where, column=layout.label(layout.time_column or layout.ts_column))


# ------------------------------------------------------------------------------------------ Parquet


def _read_parquet(path: Path, options: FileOptions | None = None, timezone: str = "UTC") -> dict[str, np.ndarray]:
    options = options or FileOptions()
    try:
        parquet = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types for a corrupt file
        raise BarFileError(path, f"not a readable Parquet file: {exc}") from None
    try:
        layout = header_layout(path, list(parquet.schema_arrow.names))
    except BarFileError as exc:  # the same columns as a CSV header, named without a line
        problem = exc.problem.replace(" in the header", "").replace("missing from the header", "missing column")
        raise BarFileError(path, problem, column=exc.column) from None
    if options.adjusted and layout.adj_close_column is None:
        raise BarFileError(path, "the sidecar says adjusted: true but the file has no Adj Close column")
    date_order = options.date_order
    ts_type = parquet.schema_arrow.field(layout.label(layout.ts_column)).type
    if date_order is None and (pa.types.is_string(ts_type) or pa.types.is_large_string(ts_type)):
        column = layout.label(layout.ts_column)
        blocks = (pd.Series(parquet.read_row_group(g, columns=[column]).column(column).to_pandas())
                  for g in range(parquet.num_row_groups))  # fmt: skip
        date_order = _date_order_from_data(path, column, blocks)
    reading = _Reading(layout, date_order, timezone, options.adjusted)
    numeric = {c: layout.label(n) for c, n in reading.numeric().items()}
    for column in numeric.values():
        kind = parquet.schema_arrow.field(column).type
        if not (pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind)):
            raise BarFileError(path, f"holds {kind} values, expected numbers", column=column)
    if parquet.metadata.num_rows == 0:
        raise BarFileError(path, "the file holds no rows", location="row group 0")
    time_columns = [layout.label(c) for c in reading.time_columns()]
    parts: list[dict[str, np.ndarray]] = []
    for group in range(parquet.num_row_groups):
        try:
            table = parquet.read_row_group(group, columns=[*time_columns, *numeric.values()])
        except Exception as exc:
            raise BarFileError(path, f"cannot be read: {exc}", location=f"row group {group}") from None
        part: dict[str, np.ndarray] = {}
        for canonical, column in numeric.items():
            part[canonical] = _parquet_numeric(path, group, column, table.column(column))
        part["ts"] = _parquet_time(path, group, [table.column(c) for c in time_columns], time_columns, reading)
        parts.append(_adjusted(part))
    return _volume_or_ticks({key: np.concatenate([p[key] for p in parts]) for key in parts[0]})


def _parquet_numeric(path: Path, group: int, column: str, values: pa.ChunkedArray) -> np.ndarray:
    numbers = values.cast(pa.float64()).to_numpy().astype(np.float64, copy=False)
    bad = ~np.isfinite(numbers)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        original = values[row].as_py()
        problem = "empty value, expected a number" if original is None else f"{original!r} is not a finite number"
        raise BarFileError(path, problem, location=f"row group {group}, row {row}", column=column)
    return numbers


def _parquet_time(
    path: Path, group: int, values: list[pa.ChunkedArray], columns: list[str], reading: _Reading
) -> np.ndarray:
    first = values[0]
    if len(values) == 1 and (pa.types.is_timestamp(first.type) or pa.types.is_date(first.type)):
        series = pd.Series(first.cast(pa.timestamp("ns", first.type.tz if pa.types.is_timestamp(first.type) else None))
                           .to_pandas())
        if series.dt.tz is None:  # a date labels a trading day: midnight UTC (see market/timestamps.py)
            zone = "UTC" if pa.types.is_date(first.type) else reading.timezone
            series = series.dt.tz_localize(zone, ambiguous="NaT", nonexistent="NaT")
        ns = series.dt.tz_convert("UTC").astype("datetime64[ns, UTC]").array.asi8
        bad = series.isna().to_numpy()
    elif len(values) == 1 and (pa.types.is_integer(first.type) or pa.types.is_floating(first.type)):
        ns, bad = epoch_to_ns(pd.Series(first.to_pandas()))
    else:
        text = [pd.Series(v.cast(pa.string()).to_pandas()) for v in values]
        ns, bad = times_to_ns(text[0], text[1] if len(text) > 1 else None,
                              date_order=reading.date_order, timezone=reading.timezone)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        shown = " ".join(str(v[row].as_py()) for v in values)
        raise BarFileError(
            path, f"cannot parse {shown!r} as a time in {reading.timezone}"
            + ("" if reading.date_order else " (year-last dates need date_order in the sidecar)"),
            location=f"row group {group}, row {row}", column=columns[0],
        )
    return ns
