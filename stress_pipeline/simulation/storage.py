"""A simulation result on disk: one file holding the record, the curves, the fills, the trades and
the event log, written whole or not at all.

The file is a ZIP archive (stored, not compressed again) of one Parquet file per table plus
``result.json`` (kind, scenario name, metrics, details). It is written to a temporary file beside
the target and renamed into place, so a reader sees the previous result or the new one, never a mix.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
import zipfile
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from stress_pipeline.simulation.result import SimResult

TABLES = ("trades", "fills", "equity", "events")
META = "result.json"


class ResultFileError(ValueError):
    """A result file that is not a complete simulation result."""


def write_result(result: SimResult, path: Path) -> Path:
    """Write ``result`` to ``path`` atomically (temporary file, fsync, rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            with zipfile.ZipFile(handle, "w", compression=zipfile.ZIP_STORED) as archive:
                for name in TABLES:
                    table = getattr(result, name)
                    if table is None:
                        continue
                    frame = table.reset_index() if name == "equity" else table
                    buffer = io.BytesIO()
                    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), buffer, compression="zstd")
                    archive.writestr(f"{name}.parquet", buffer.getvalue())
                meta = {
                    "kind": result.kind,
                    "scenario_name": result.scenario_name,
                    "metrics": result.metrics,
                    "details": result.details,
                }
                archive.writestr(META, json.dumps(meta, default=_json_default))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
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
                name: pq.read_table(io.BytesIO(archive.read(f"{name}.parquet"))).to_pandas()
                if f"{name}.parquet" in names else None
                for name in TABLES
            }  # fmt: skip
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
        details=meta.get("details") or {},
    )


def _frame(frame: pd.DataFrame | None) -> pd.DataFrame:
    return frame if frame is not None else pd.DataFrame()


def _json_default(value: object) -> object:
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return str(value)
