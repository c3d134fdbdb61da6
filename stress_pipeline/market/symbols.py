"""Symbols: how a file name names one, and each symbol's market in data/symbols.yaml.

data/symbols.yaml holds ``defaults`` and ``symbols``; each symbol's entry overrides the defaults,
which override :class:`SymbolMarket`'s own: spread_bps, asset_class, currency, tick_size,
contract_multiplier and calendar (``24/7`` or an ``exchange_calendars`` code such as XNYS or CMES).
A symbol the file does not list gets the defaults: 24/7 crypto unless the file says otherwise. An
unknown key, a bad value or an unknown calendar is a :class:`SymbolConfigError` naming the file, the
symbol and the field.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from stress_pipeline.market.calendars import CONTINUOUS, check_calendar
from stress_pipeline.paths import file_stamp

# BTCUSDT-1m-2024-01.csv.gz, BTCUSDT_1m.parquet, ETHUSDT.csv, btcusdt-5m.zip ...
_SYMBOL_RE = re.compile(r"^([A-Za-z0-9]+)(?:[-_.].*)?$")
DATA_SUFFIXES = (".csv", ".csv.gz", ".csv.zip", ".zip", ".gz", ".parquet", ".pq")





class SymbolMarket(BaseModel):
    """One symbol's market in data/symbols.yaml. Every field has a default, so a symbol with no
    entry (or an entry naming only its spread) is 24/7 crypto quoted in USDT."""

    model_config = ConfigDict(extra="forbid")

    spread_bps: float = Field(default=5.0, ge=0, allow_inf_nan=False)  # when the data carries no spread
    asset_class: Literal["crypto", "equity", "etf", "index", "future", "fx"] = "crypto"
    currency: str = Field(default="USDT", min_length=1)
    tick_size: float = Field(default=0.01, gt=0, allow_inf_nan=False)  # smallest price step
    contract_multiplier: float = Field(default=1.0, gt=0, allow_inf_nan=False)  # value of one point per contract
    calendar: str = CONTINUOUS  # an exchange_calendars code (XNYS, CMES, ...) or 24/7

    @field_validator("calendar")
    @classmethod
    def _known_calendar(cls, value: str) -> str:
        return check_calendar(value)


@dataclass(frozen=True)
class SymbolInfo:
    """A symbol and its market (the fields of :class:`SymbolMarket`)."""

    symbol: str
    spread_bps: float
    asset_class: str
    currency: str = "USDT"
    tick_size: float = 0.01
    contract_multiplier: float = 1.0
    calendar: str = CONTINUOUS


class SymbolConfigError(ValueError):
    """data/symbols.yaml cannot be read."""


def is_data_file(path: Path) -> bool:
    """True for files the market loader reads (by suffix); hidden and partial files are ignored."""
    name = path.name.lower()
    return (
        path.is_file()
        and not name.startswith((".", "~"))
        and not name.endswith((".tmp", ".part"))
        and name.endswith(DATA_SUFFIXES)
    )


def symbol_from_path(path: str | Path) -> str:
    """The symbol a market data file holds, from its name: the leading run of letters and digits."""
    name = Path(path).name
    match = _SYMBOL_RE.match(name)
    if not match:
        raise ValueError(f"{path}: cannot tell the symbol from the file name (expected e.g. BTCUSDT-1m-2024-01.csv.gz)")
    return match.group(1).upper()


def discover_symbol_files(bars_dir: Path) -> dict[str, list[Path]]:
    """Map each symbol found under ``bars_dir`` (recursively) to its data files, sorted by name.

    A data file whose name yields no symbol is left out, so it cannot stop the others from being
    ingested; :func:`unnamed_data_files` lists it, for the caller to report.
    """
    found: dict[str, list[Path]] = {}
    if not bars_dir.is_dir():
        return found
    for path in sorted(bars_dir.rglob("*")):
        if is_data_file(path) and _SYMBOL_RE.match(path.name):
            found.setdefault(symbol_from_path(path), []).append(path)
    return found


def unnamed_data_files(bars_dir: Path) -> list[Path]:
    """The data files under ``bars_dir`` whose name yields no symbol (skipped by discovery)."""
    if not bars_dir.is_dir():
        return []
    return [path for path in sorted(bars_dir.rglob("*")) if is_data_file(path) and not _SYMBOL_RE.match(path.name)]


def file_fingerprint(files: list[Path]) -> str:
    """Changes when a file of the symbol is added, removed, rewritten or touched."""
    digest = hashlib.sha256()
    for path in sorted(files):
        stat = path.stat()
        digest.update(f"{path.name}:{stat.st_size}:{stat.st_mtime_ns};".encode())
    return digest.hexdigest()[:16]


def load_symbol_info(symbols_file: Path) -> dict[str, SymbolInfo]:
    """Read data/symbols.yaml: each listed symbol's market, its entry over ``defaults`` over
    :class:`SymbolMarket`'s own defaults. A missing file yields an empty mapping (defaults apply)."""
    return dict(_parsed(Path(symbols_file))[1])


def symbol_market(symbols_file: Path, symbol: str) -> SymbolInfo:
    """The market of ``symbol``: its entry in ``symbols_file``, else the file's ``defaults``, else 24/7
    crypto (:class:`SymbolMarket`'s defaults). Every entry of the file is validated, so a bad entry
    fails whichever symbol is asked for."""
    path = Path(symbols_file)
    defaults, listed = _parsed(path)
    name = symbol.upper()
    if name in listed:
        return listed[name]
    return _symbol_info(path, name, defaults)


def _parsed(path: Path) -> tuple[dict[str, Any], dict[str, SymbolInfo]]:
    """The file's ``defaults`` and its listed symbols' markets, kept while its stamp (``paths.file_stamp``)
    stays the same (a run asks for the markets of its symbols hundreds of times); an edited file is read
    again, a bad one fails each time."""
    try:
        stamp: tuple[object, ...] = (str(path.resolve()), *file_stamp(path))
    except FileNotFoundError:
        stamp = (str(path), None, None)
    with _CACHE_LOCK:
        cached = _PARSED.get(stamp)
    if cached is None:
        defaults, entries = _read_symbols_file(path)
        info = {symbol: _symbol_info(path, symbol, {**defaults, **entry}) for symbol, entry in entries.items()}
        cached = (defaults, info)
        with _CACHE_LOCK:
            if len(_PARSED) >= 32:
                _PARSED.clear()
            _PARSED[stamp] = cached
    return cached


_PARSED: dict[tuple[object, ...], tuple[dict[str, Any], dict[str, SymbolInfo]]] = {}
_CACHE_LOCK = threading.Lock()


def default_spread_bps(symbols_file: Path, symbol: str) -> float:
    """The spread to assume for ``symbol`` when its data carries none."""
    return symbol_market(symbols_file, symbol).spread_bps


def _read_symbols_file(symbols_file: Path) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    if not symbols_file.exists():
        return {}, {}
    try:
        raw = yaml.safe_load(symbols_file.read_text()) or {}
    except yaml.YAMLError as exc:
        raise SymbolConfigError(f"{symbols_file}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        kind = type(raw).__name__
        raise SymbolConfigError(f"{symbols_file}: expected a mapping with 'defaults' and 'symbols', got {kind}")
    unknown = sorted(set(raw) - {"defaults", "symbols"})
    if unknown:
        raise SymbolConfigError(f"{symbols_file}: unknown top-level key(s) {unknown} (expected defaults, symbols)")
    defaults = raw.get("defaults") or {}
    symbols = raw.get("symbols") or {}
    if not isinstance(defaults, dict):
        raise SymbolConfigError(f"{symbols_file}: defaults must be a mapping, got {type(defaults).__name__}")
    if not isinstance(symbols, dict):
        raise SymbolConfigError(f"{symbols_file}: symbols must be a mapping, got {type(symbols).__name__}")
    if defaults:
        _symbol_info(symbols_file, "defaults", defaults)  # a bad default names itself, not a symbol
    entries: dict[str, dict[str, Any]] = {}
    for symbol, entry in symbols.items():
        if entry is not None and not isinstance(entry, dict):
            raise SymbolConfigError(f"{symbols_file}: symbols.{symbol} must be a mapping, got {type(entry).__name__}")
        name = str(symbol).upper()
        if name in entries:
            raise SymbolConfigError(f"{symbols_file}: symbols.{symbol} is listed twice (symbols are case-insensitive)")
        entries[name] = dict(entry or {})
    return dict(defaults), entries


def _symbol_info(symbols_file: Path, symbol: str, fields: dict[str, Any]) -> SymbolInfo:
    where = "defaults" if symbol == "defaults" else f"symbols.{symbol}"
    try:
        market = SymbolMarket.model_validate(fields)
    except ValidationError as exc:
        problems = "; ".join(
            f"{where}.{'.'.join(str(p) for p in err['loc']) or '?'}: {err['msg']} (got {err.get('input')!r})"
            for err in exc.errors()
        )
        raise SymbolConfigError(f"{symbols_file}: {problems}") from None
    return SymbolInfo(symbol=symbol, **market.model_dump())


DEFAULT_SPREAD_BPS = 5.0


def shared_calendar(symbols_file: Path, symbols: Iterable[str]) -> str | None:
    """The calendar every one of ``symbols`` trades on (data/symbols.yaml), or None when they do not
    share one or none is given (a crypto book and an equity together: annualisation is then inferred)."""
    calendars = {symbol_market(symbols_file, symbol).calendar for symbol in symbols}
    return calendars.pop() if len(calendars) == 1 else None
