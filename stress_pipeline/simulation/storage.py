"""A simulation result on disk: one file holding the record, the curves, the fills, the trades and
the event log, written whole or not at all.

The file is a ZIP archive (stored, not compressed again) of one Parquet file per table plus
``result.json`` (kind, scenario name, metrics, details). Tables among the details (the paper run's
positions) are stored as Parquet too, dataclasses as their fields, so nothing is reduced to a string.
It is written to a temporary file beside the target and renamed into place, so a reader sees the
previous result or the new one, never a mix.
"""

from __future__ import annotations

import dataclasses
import io
import json
import zipfile
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from stress_pipeline.parquet_store import atomic_file
from stress_pipeline.simulation.result import SimResult

TABLES = ("trades", "fills", "equity", "events")
META = "result.json"


class ResultFileError(ValueError):
    """A result file that is not a complete simulation result."""


def write_result(result: SimResult, path: Path) -> Path:
    """Write ``result`` to ``path`` atomically (temporary file, fsync, rename)."""
    with atomic_file(path) as handle, zipfile.ZipFile(handle, "w", compression=zipfile.ZIP_STORED) as archive:
        for name in TABLES:
            table = getattr(result, name)
            if table is not None:
                frame = table.reset_index() if name == "equity" else table
                archive.writestr(f"{name}.parquet", _parquet(frame))
        details, detail_tables = {}, {}
        for key, value in result.details.items():
            if isinstance(value, pd.DataFrame):
                detail_tables[key] = list(value.index.names) if _named_index(value) else []
                frame = value.reset_index() if detail_tables[key] else value
                archive.writestr(f"details/{key}.parquet", _parquet(frame))
            else:
                details[key] = _plain(value)
        meta = {
            "kind": result.kind,
            "scenario_name": result.scenario_name,
            "metrics": result.metrics,
            "details": details,
            "detail_tables": detail_tables,
        }
        archive.writestr(META, json.dumps(meta, default=_json_default))
    return path


def read_result(path: Path) -> SimResult:
    """The result stored at ``path`` by :func:`write_result`."""
    if not path.is_file():
        raise FileNotFoundError(f"no simulation result at {path}")
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            if META not in names:
                raise ResultFileError(f"{path}: not a simulation result (no {META})")
            meta = json.loads(archive.read(META))
            tables = {
                name: _read_parquet(archive, f"{name}.parquet") if f"{name}.parquet" in names else None
                for name in TABLES
            }  # fmt: skip
            details = dict(meta.get("details") or {})
            for key, index in (meta.get("detail_tables") or {}).items():
                frame = _read_parquet(archive, f"details/{key}.parquet")
                details[key] = frame.set_index(index) if index else frame
    except zipfile.BadZipFile:
        raise ResultFileError(f"{path}: not a simulation result (not a ZIP archive)") from None
    equity = tables["equity"]
    if equity is not None and "ts" in equity.columns:
        equity = equity.set_index("ts")
    return SimResult(
        kind=meta["kind"],
        scenario_name=meta["scenario_name"],
        trades=_frame(tables["trades"]),
        fills=_frame(tables["fills"]),
        equity=_frame(equity),
        metrics=meta["metrics"],
        events=tables["events"],
        details=details,
    )


def _parquet(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), buffer, compression="zstd")
    return buffer.getvalue()


def _read_parquet(archive: zipfile.ZipFile, name: str) -> pd.DataFrame:
    return pq.read_table(io.BytesIO(archive.read(name))).to_pandas()


def _named_index(frame: pd.DataFrame) -> bool:
    return any(name is not None for name in frame.index.names)


def _plain(value: object) -> object:
    """``value`` as JSON data: dataclasses as their fields, tuples as lists."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _plain(dataclasses.asdict(value))
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _frame(frame: pd.DataFrame | None) -> pd.DataFrame:
    return frame if frame is not None else pd.DataFrame()


def _json_default(value: object) -> object:
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return str(value)
