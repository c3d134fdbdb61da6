"""Symbols: how a file name names one, and the per-symbol reference data in data/symbols.yaml."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

# BTCUSDT-1m-2024-01.csv.gz, BTCUSDT_1m.parquet, ETHUSDT.csv, btcusdt-5m.zip ...
_SYMBOL_RE = re.compile(r"^([A-Za-z0-9]+)(?:[-_.].*)?$")
DATA_SUFFIXES = (".csv", ".csv.gz", ".csv.zip", ".zip", ".gz", ".parquet", ".pq")


@dataclass(frozen=True)
class SymbolInfo:
    symbol: str
    spread_bps: float
    asset_class: str


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
    """Read data/symbols.yaml; a missing file yields an empty mapping (defaults apply)."""
    if not symbols_file.exists():
        return {}
    try:
        raw = yaml.safe_load(symbols_file.read_text()) or {}
    except yaml.YAMLError as exc:
        raise SymbolConfigError(f"{symbols_file}: not valid YAML: {exc}") from None
    defaults = raw.get("defaults") or {}
    out: dict[str, SymbolInfo] = {}
    for symbol, entry in (raw.get("symbols") or {}).items():
        merged = {**defaults, **(entry or {})}
        try:
            out[str(symbol).upper()] = SymbolInfo(
                symbol=str(symbol).upper(),
                spread_bps=float(merged.get("spread_bps", DEFAULT_SPREAD_BPS)),
                asset_class=str(merged.get("asset_class", "crypto")),
            )
        except (TypeError, ValueError):
            raise SymbolConfigError(f"{symbols_file}: symbols.{symbol}.spread_bps must be a number") from None
    return out


def default_spread_bps(symbols_file: Path, symbol: str) -> float:
    """The spread to assume for ``symbol`` when its data carries none."""
    info = load_symbol_info(symbols_file).get(symbol.upper())
    if info is not None:
        return info.spread_bps
    if symbols_file.exists():
        raw = yaml.safe_load(symbols_file.read_text()) or {}
        value = (raw.get("defaults") or {}).get("spread_bps")
        if value is not None:
            return float(value)
    return DEFAULT_SPREAD_BPS


DEFAULT_SPREAD_BPS = 5.0
