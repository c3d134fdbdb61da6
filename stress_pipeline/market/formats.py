"""Which export a bar file is, told from its content: the columns that hold time, prices and volume.

Headers are matched case-insensitively, with MetaTrader's angle brackets (``<DATE>``) and spaces
(``Adj Close``) normalised, so one table of aliases covers the exports people have:

| export | header (or first line) |
| --- | --- |
| Binance spot klines | no header, 12 numeric columns |
| Binance futures klines | ``open_time, ..., close_time, ...`` |
| generic OHLCV | ``timestamp`` / ``ts`` / ``open_time``, open, high, low, close, volume [, spread_bps] |
| Yahoo-style daily | ``Date, Open, High, Low, Close, Adj Close, Volume`` |
| TradingView | ``time, open, high, low, close, Volume`` (unix seconds or ISO 8601), extra columns ignored |
| MetaTrader 5 | ``<DATE>\\t<TIME>\\t<OPEN>\\t<HIGH>\\t<LOW>\\t<CLOSE>\\t<TICKVOL>\\t<VOL>\\t<SPREAD>``: |
|  | ``<VOL>``, or ``<TICKVOL>`` where ``<VOL>`` is zero throughout (forex); ``<SPREAD>`` (points) unused |
| MetaTrader 4 history | no header: ``2024.01.02,09:30,open,high,low,close,volume`` |
| Stooq | ``Date,Open,High,Low,Close,Volume`` or ``<TICKER>,<PER>,<DATE>,<TIME>,<OPEN>,...,<VOL>,<OPENINT>`` |

Fields are separated by commas, tabs or semicolons (whichever the first line uses). Per-file options
come from a sidecar ``<file>.yaml`` next to the file (see :class:`FileOptions`).
"""

from __future__ import annotations

import functools
import re
import zoneinfo
from dataclasses import dataclass
from pathlib import Path

import yaml

from stress_pipeline.market.calendars import is_continuous
from stress_pipeline.market.errors import BarFileError
from stress_pipeline.market.timestamps import DATE_ORDERS

BINANCE_COLUMNS = (
    "open_time", "open", "high", "low", "close", "volume", "close_time",
    "quote_volume", "count", "taker_buy_volume", "taker_buy_quote_volume", "ignore",
)  # fmt: skip
MT4_COLUMNS = ("date", "time", "open", "high", "low", "close", "volume")
TIMESTAMP_ALIASES = ("timestamp", "ts", "open_time", "datetime", "date_time", "time", "date")
"""Columns that hold the whole bar time, in order of preference (``date`` + ``time`` together are
read as one date and one clock column)."""
VALUE_COLUMNS = ("open", "high", "low", "close", "volume")
VALUE_ALIASES = {"volume": ("volume", "vol", "tickvol", "tick_volume")}
TICK_VOLUME_ALIASES = ("tickvol", "tick_volume")
ADJ_CLOSE_ALIASES = ("adj_close", "adjclose", "adjusted_close")
SIDECAR_KEYS = ("date_order", "adjusted", "timezone")
_MT4_FIRST = re.compile(r"^\d{4}\.\d{2}\.\d{2}$")


@dataclass(frozen=True)
class FileOptions:
    """What a file's sidecar (``<file>.yaml``, e.g. ``SPX.csv.yaml``) says about it.

    - ``date_order``: ``ymd``, ``dmy`` or ``mdy`` for dates like ``1/4/1999``; unset, it is read from
      the data (a field over 12 decides), and a file where every date reads both ways is an error;
    - ``adjusted``: when true, prices are scaled by ``Adj Close / Close`` (the close becomes the
      adjusted close); the file must have an ``Adj Close`` column. Default false: ``Adj Close`` is ignored;
    - ``timezone``: IANA name of the wall-clock time of times of day written without an offset (e.g.
      ``America/New_York``). Default: :func:`file_timezone`.
    """

    date_order: str | None = None
    adjusted: bool = False
    timezone: str | None = None


def sidecar_path(path: Path) -> Path:
    return path.with_name(path.name + ".yaml")


def read_file_options(path: Path) -> FileOptions:
    """The sidecar of ``path``, validated; defaults when there is none. Errors name the sidecar and key."""
    sidecar = sidecar_path(path)
    if not sidecar.is_file():
        return FileOptions()
    try:
        raw = yaml.safe_load(sidecar.read_text())
    except yaml.YAMLError as exc:
        raise BarFileError(sidecar, f"not valid YAML: {exc}") from None
    if raw is None:
        return FileOptions()
    if not isinstance(raw, dict):
        raise BarFileError(sidecar, f"expected a mapping of {', '.join(SIDECAR_KEYS)}, found {type(raw).__name__}")
    unknown = sorted(str(k) for k in raw if k not in SIDECAR_KEYS)
    if unknown:
        expected = ", ".join(SIDECAR_KEYS)
        raise BarFileError(sidecar, f"unknown key, expected one of {expected}", column=", ".join(unknown))
    order = raw.get("date_order")
    if order is not None and order not in DATE_ORDERS:
        raise BarFileError(sidecar, f"{order!r} is not one of {', '.join(DATE_ORDERS)}", column="date_order")
    adjusted = raw.get("adjusted", False)
    if not isinstance(adjusted, bool):
        raise BarFileError(sidecar, f"{adjusted!r} is not true or false", column="adjusted")
    timezone = raw.get("timezone")
    if timezone is not None:
        check_timezone(sidecar, timezone, "timezone")
    return FileOptions(date_order=order, adjusted=adjusted, timezone=timezone)


def file_timezone(options: FileOptions, calendar: str) -> str:
    """The zone of a file's times of day written without an offset: the sidecar's ``timezone``, else
    the zone of the symbol's exchange ``calendar`` (data/symbols.yaml; XNYS: America/New_York, CMES:
    America/Chicago), else UTC (a 24/7 market)."""
    if options.timezone:
        return options.timezone
    return "UTC" if is_continuous(calendar) else _calendar_zone(calendar)


@functools.lru_cache(maxsize=16)
def _calendar_zone(code: str) -> str:
    import exchange_calendars  # imported when a calendar is used: it costs half a second

    return str(exchange_calendars.get_calendar(code).tz)


def check_timezone(source: Path, name: object, field: str) -> str:
    """``name`` if it is an IANA time zone, else a :class:`BarFileError` naming ``source`` and ``field``."""
    try:
        zoneinfo.ZoneInfo(str(name))
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise BarFileError(source, f"{name!r} is not a known time zone (e.g. America/New_York)", column=field) from None
    return str(name)


@dataclass(frozen=True)
class CsvLayout:
    """Which columns of a CSV file hold what."""

    names: tuple[str, ...]  # normalised, unique column names used for parsing
    labels: tuple[str, ...]  # the same columns as the file writes them (for messages)
    header: bool
    delimiter: str
    ts_column: str  # the time column, or the date column when a separate clock column exists
    time_column: str | None  # the clock column beside a date column
    binance_time: bool  # open time as epoch ms/us integers
    value_columns: dict[str, str]  # canonical name -> column name
    spread_column: str | None
    adj_close_column: str | None
    tick_volume_column: str | None = None  # MetaTrader's tick volume, used where real volume is all zero

    def label(self, name: str) -> str:
        return self.labels[self.names.index(name)]


def first_line(data: bytes) -> str:
    return data.split(b"\n", 1)[0].decode("utf-8", errors="replace").strip().lstrip("\ufeff")


def is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def delimiter_of(line: str) -> str:
    if "\t" in line:
        return "\t"
    if ";" in line and "," not in line:
        return ";"
    return ","


def normalise(name: str) -> str:
    """``<TICKVOL>`` -> ``tickvol``, ``Adj Close`` -> ``adj_close``."""
    name = name.strip().strip('"').strip()
    if name.startswith("<") and name.endswith(">"):
        name = name[1:-1]
    return re.sub(r"[\s\-]+", "_", name.strip().lower())


def csv_layout(path: Path, data: bytes) -> CsvLayout:
    """The layout of a CSV file from its first bytes; a :class:`BarFileError` naming line 1 when
    the header lacks a column the bars need."""
    first = first_line(data)
    delimiter = delimiter_of(first)
    fields = [f.strip() for f in first.split(delimiter)]
    if _MT4_FIRST.match(fields[0]) and len(fields) == len(MT4_COLUMNS):
        return _headerless(MT4_COLUMNS, delimiter, ts="date", time="time", binance=False)
    if is_number(fields[0]):
        return _headerless(BINANCE_COLUMNS, delimiter, ts="open_time", time=None, binance=True)
    return header_layout(path, fields, delimiter)


def header_layout(path: Path, labels: list[str], delimiter: str = ",") -> CsvLayout:
    """The layout of a file with a header (CSV) or named columns (Parquet)."""
    names = _unique([normalise(f) for f in labels])
    present = set(names)
    time_column = None
    if "date" in present and "time" in present:
        ts_column, time_column = "date", "time"
    else:
        ts_column = next((alias for alias in TIMESTAMP_ALIASES if alias in present), None)
    if ts_column is None:
        raise BarFileError(
            path, f"no time column in the header (expected one of {', '.join(TIMESTAMP_ALIASES)}, or date and time)",
            location="line 1",
        )
    value_columns = {c: next((a for a in VALUE_ALIASES.get(c, (c,)) if a in present), "") for c in VALUE_COLUMNS}
    missing = [c for c, found in value_columns.items() if not found]
    if missing:
        raise BarFileError(path, "missing from the header", location="line 1", column=", ".join(missing))
    for name in (*value_columns.values(), ts_column):
        if f"{name}__2" in present:
            raise BarFileError(path, f"the header repeats the column {name}", location="line 1", column=name)
    return CsvLayout(
        names=tuple(names),
        labels=tuple(labels),
        header=True,
        delimiter=delimiter,
        ts_column=ts_column,
        time_column=time_column,
        binance_time=ts_column == "open_time" and "close_time" in present,
        value_columns=value_columns,
        spread_column="spread_bps" if "spread_bps" in present else None,
        adj_close_column=next((a for a in ADJ_CLOSE_ALIASES if a in present), None),
        tick_volume_column=next(
            (a for a in TICK_VOLUME_ALIASES if a in present and value_columns["volume"] == "vol"), None
        ),
    )


def _headerless(columns: tuple[str, ...], delimiter: str, *, ts: str, time: str | None, binance: bool) -> CsvLayout:
    return CsvLayout(
        names=columns,
        labels=columns,
        header=False,
        delimiter=delimiter,
        ts_column=ts,
        time_column=time,
        binance_time=binance,
        value_columns={c: c for c in VALUE_COLUMNS},
        spread_column=None,
        adj_close_column=None,
    )


def _unique(names: list[str]) -> list[str]:
    """Repeated names (TradingView writes ``Plot`` several times) made unique: ``plot``, ``plot__2``."""
    seen: dict[str, int] = {}
    out = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        out.append(name if seen[name] == 1 else f"{name}__{seen[name]}")
    return out
