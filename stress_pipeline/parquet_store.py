"""Parquet files written whole or not at all.

Asset outputs are written to a temporary file beside the target and moved into place with an atomic
rename, so a failed or interrupted write leaves the last good file untouched.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq


def write_parquet_atomic(data: pd.DataFrame | pa.Table, path: Path) -> Path:
    """Write ``data`` to ``path`` atomically (temporary file, fsync, rename)."""
    table = data if isinstance(data, pa.Table) else pa.Table.from_pandas(data, preserve_index=False)
    with atomic_file(path) as handle:
        pq.write_table(table, handle, compression="zstd")
    return path


@contextmanager
def atomic_file(path: Path) -> Iterator[BinaryIO]:
    """A binary file that replaces ``path`` only once the block completes: written to a temporary
    file beside it, fsynced and renamed; on any error the temporary file is removed and ``path``
    keeps what it held."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def read_parquet(path: Path) -> pd.DataFrame:
    """Read a Parquet file written by :func:`write_parquet_atomic`."""
    return pq.read_table(path).to_pandas()
