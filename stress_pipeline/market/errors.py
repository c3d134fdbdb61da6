"""The one error a bad market data file produces: it names the file, where in it, and the column."""

from __future__ import annotations

from pathlib import Path


class BarFileError(ValueError):
    """A market data file cannot be turned into canonical bars.

    ``location`` is ``"line N"`` for CSV files (1-based, counting a header line) and
    ``"row group G, row R"`` for Parquet files; ``column`` is the column name as the file has it
    (or its position for headerless Binance files).
    """

    def __init__(self, path: str | Path, problem: str, *, location: str | None = None, column: str | None = None):
        self.path = str(path)
        self.location = location
        self.column = column
        self.problem = problem
        where = ", ".join(part for part in (location, f"column {column}" if column else None) if part)
        super().__init__(f"{self.path}: {where}: {problem}" if where else f"{self.path}: {problem}")
