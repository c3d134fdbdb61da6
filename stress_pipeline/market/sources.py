"""Where each loaded bar came from: its file and its line (CSV) or row (Parquet).

The loader numbers the records of every file it reads and keeps, for each row of the bars it
returns, that number through the concatenation, the sort and the removal of identical duplicates.
A quality failure can then name the file and line of each offending row, so an operator fixes the
data where it is. Line numbers are found only when asked for (a failure), by one pass over the file:
the fast path of the loader never counts lines.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from stress_pipeline.market.quality import QualityReport

ROWS_NAMED_PER_CHECK = 5
"""Offending rows named per failed check in a quality failure message (the count is always given)."""


@dataclass(frozen=True)
class SourceFile:
    """One file read by the loader: its path, its format and whether a header line precedes the bars."""

    path: Path
    parquet: bool
    header: bool


@dataclass(frozen=True)
class BarSources:
    """The source of each row of a loaded frame.

    ``records[i]`` numbers row ``i`` among the records of every file, in the order the files were
    read: file ``k`` holds the numbers ``offsets[k]`` to ``offsets[k + 1] - 1``, in its own order.
    """

    files: tuple[SourceFile, ...]
    offsets: np.ndarray  # int64, len(files) + 1
    records: np.ndarray  # int64, one per row of the frame

    def locations(self, rows: Sequence[int]) -> list[str]:
        """``"<file>: line N"`` (CSV, 1-based, counting the header) or ``"<file>: row group G, row R"``
        (Parquet) for each of ``rows`` (positions in the frame), in the order given."""
        wanted = self.records[np.asarray(rows, dtype=np.int64)] if len(rows) else np.empty(0, dtype=np.int64)
        owner = np.searchsorted(self.offsets, wanted, side="right") - 1
        found: dict[int, str] = {}
        for index in np.unique(owner):
            source = self.files[int(index)]
            local = sorted({int(r) for r in wanted[owner == index] - self.offsets[index]})
            where = _parquet_rows(source.path, local) if source.parquet else _csv_lines(source, local)
            for record, text in where.items():
                found[int(self.offsets[index]) + record] = f"{source.path}: {text}"
        return [found[int(r)] for r in wanted]


def quality_failure_message(symbol: str, report: QualityReport, sources: BarSources) -> str:
    """One message for a failed quality report: each failed check, its count, and the file and line
    of its first offending rows (up to :data:`ROWS_NAMED_PER_CHECK`)."""
    lines = [f"{symbol}: bar quality failed, nothing was written (the last good bars stay):"]
    for outcome in report.failures:
        rows = _positions(outcome.unexpected_rows)[:ROWS_NAMED_PER_CHECK]
        lines.append(f"  {outcome.name}: {outcome.unexpected_count} row(s), {outcome.details}")
        lines.extend(f"    {where}" for where in sources.locations(rows))
    return "\n".join(lines)


def _positions(rows: pd.DataFrame) -> list[int]:
    """Row positions of a sample taken from a frame with a RangeIndex from 0 (as the loader returns)."""
    return [int(i) for i in rows.index]


def _csv_lines(source: SourceFile, records: list[int]) -> dict[int, str]:
    """Line numbers of records (0-based, blank lines and the header not counted) of a CSV file."""
    from stress_pipeline.market.loaders import open_decompressed  # the loader's one way to open a file

    wanted = set(records)
    last = max(records, default=-1)
    out: dict[int, str] = {}
    with open_decompressed(source.path) as stream:
        text = io.TextIOWrapper(stream, encoding="utf-8", errors="replace", newline="")
        record = -1
        # Bar files hold no quoted newlines (the loader refuses a row split over lines), so a line is a record.
        for line_number, line in enumerate(text, start=1):
            if line_number == 1 and source.header:
                continue
            if not line.strip("\r\n"):
                continue
            record += 1
            if record in wanted:
                out[record] = f"line {line_number}"
            if record >= last:
                break
    return {r: out.get(r, f"record {r + 1}") for r in records}


def _parquet_rows(path: Path, records: list[int]) -> dict[int, str]:
    metadata = pq.ParquetFile(path).metadata
    sizes = [metadata.row_group(g).num_rows for g in range(metadata.num_row_groups)]
    starts = np.concatenate([[0], np.cumsum(sizes)])
    out = {}
    for record in records:
        group = int(np.searchsorted(starts, record, side="right") - 1)
        out[record] = f"row group {group}, row {record - int(starts[group])}"
    return out
