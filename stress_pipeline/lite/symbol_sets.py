"""Named symbol sets (``data/symbol_sets.yaml``): which symbols of the live book the lite stress shocks.

The file holds one mapping, ``symbol_sets``, from a set's name to a non-empty list of distinct symbol
names. A bad file is refused whole with a :class:`SymbolSetError` naming the file, the set and the
entry; an unknown set name is refused naming the sets the file defines.
"""

from __future__ import annotations

from pathlib import Path

import yaml

FILE_NAME = "symbol_sets.yaml"


class SymbolSetError(ValueError):
    """The symbol sets file is missing or malformed, or names no such set."""


def symbol_sets_path(data_dir: Path) -> Path:
    return Path(data_dir) / FILE_NAME


def load_symbol_sets(path: Path) -> dict[str, tuple[str, ...]]:
    """Every set of ``path``, validated."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise SymbolSetError(f"{path}: no symbol sets file (expected `symbol_sets: {{name: [SYMBOL, ...]}}`)") from None
    except yaml.YAMLError as err:
        raise SymbolSetError(f"{path}: not valid YAML: {err}") from err
    sets = raw.get("symbol_sets") if isinstance(raw, dict) else None
    if not isinstance(sets, dict) or not sets:
        raise SymbolSetError(f"{path}: expected a non-empty mapping `symbol_sets: {{name: [SYMBOL, ...]}}`")
    return {str(name): _symbols(path, str(name), symbols) for name, symbols in sets.items()}


def symbol_set(path: Path, name: str) -> tuple[str, ...]:
    """The symbols of set ``name`` in ``path``, in the file's order."""
    sets = load_symbol_sets(path)
    if name not in sets:
        raise SymbolSetError(f"{path}: unknown symbol set {name!r}; the file defines {', '.join(sorted(sets))}")
    return sets[name]


def _symbols(path: Path, name: str, symbols: object) -> tuple[str, ...]:
    if not isinstance(symbols, list) or not symbols:
        raise SymbolSetError(f"{path}: symbol set {name!r}: expected a non-empty list of symbols, got {symbols!r}")
    for i, symbol in enumerate(symbols):
        if not isinstance(symbol, str) or not symbol.strip() or symbol != symbol.strip():
            raise SymbolSetError(f"{path}: symbol set {name!r}, entry {i + 1}: expected a symbol name, got {symbol!r}")
    seen: set[str] = set()
    for i, symbol in enumerate(symbols):
        if symbol in seen:
            raise SymbolSetError(f"{path}: symbol set {name!r}, entry {i + 1}: {symbol} is listed twice")
        seen.add(symbol)
    return tuple(symbols)
