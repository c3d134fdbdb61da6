"""IO managers: asset outputs stored under $STRESS_HOME/storage, one file per asset partition.

- ``ParquetIOManager``: DataFrames as Parquet (bars, catalogs, reports).
- ``SimResultIOManager``: simulation results (record, curves, fills, trades, events) as one file.

Paths come from :mod:`stress_pipeline.paths`. Writes are atomic, so a failed step never replaces the
last good materialisation. A step over several partitions (a single-run backfill) returns
``{partition: value}``; a downstream step receives a partitioned input as a read-only mapping
``{partition: value}`` that reads each partition when it is first asked for, and names the asset
and partition when one was never materialised.

What a process has read is kept (:class:`ReadCache`, up to ``READ_CACHE_BYTES``) until it writes that
file, and while the file is the same one (inode, size, modification time: another process replacing
it): the five steps reading one scenario's stressed bars decode the file once, each gets its own copy.
"""

from __future__ import annotations

import copy
import dataclasses
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd

from stress_pipeline.parquet_store import read_parquet, write_parquet_atomic
from stress_pipeline.paths import StoragePaths, file_stamp
from stress_pipeline.simulation.result import SimResult
from stress_pipeline.simulation.storage import read_result, write_result


class NotMaterialisedError(FileNotFoundError):
    """An asset partition that has no stored value yet."""


class PartitionValues(Mapping[str, Any]):
    """``{partition: value}`` of one upstream asset, read lazily and kept once read."""

    def __init__(self, asset: str, keys: Sequence[str], read: Callable[[str], Any]):
        self.asset = asset
        self._keys = list(keys)
        self._read = read
        self._cache: dict[str, Any] = {}

    def __getitem__(self, key: str) -> Any:
        if key not in self._keys:
            raise KeyError(f"{self.asset}: partition {key!r} is not an input of this step")
        if key not in self._cache:
            self._cache[key] = self._read(key)
        return self._cache[key]

    def __contains__(self, key: object) -> bool:
        return key in self._keys

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def only(self) -> Any:
        """The value of the single partition of this input."""
        if len(self._keys) != 1:
            raise ValueError(f"{self.asset}: expected one partition, got {len(self._keys)}")
        return self[self._keys[0]]


READ_CACHE_BYTES = 512 * 1024**2


class ReadCache:
    """Values read from files, by path, while the file is the same one (inode, size, modification time),
    the least recently used dropped first past ``max_bytes``; every get returns a copy, so no reader
    sees another's changes."""

    def __init__(self, max_bytes: int = READ_CACHE_BYTES):
        self.max_bytes = max_bytes
        self._values: OrderedDict[Path, tuple[tuple[int, int, int], Any, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def forget(self, path: Path) -> None:
        """Drop what is kept for ``path`` (this process is writing it)."""
        with self._lock:
            held = self._values.pop(path, None)
            if held is not None:
                self._bytes -= held[2]

    def load(self, path: Path, read: Callable[[Path], Any]) -> Any:
        stamp = file_stamp(path)
        with self._lock:
            held = self._values.get(path)
            if held is not None and held[0] == stamp:
                self._values.move_to_end(path)
                self.hits += 1
                return _copy(held[1])
        value = read(path)
        size = _nbytes(value)
        with self._lock:
            self.misses += 1
            if path in self._values:
                self._bytes -= self._values.pop(path)[2]
            if size <= self.max_bytes:
                self._values[path] = (stamp, value, size)
                self._bytes += size
                while self._bytes > self.max_bytes:
                    self._bytes -= self._values.popitem(last=False)[1][2]
        return _copy(value)


def _nbytes(value: Any) -> int:
    if isinstance(value, pd.DataFrame):
        return int(value.memory_usage(index=True, deep=False).sum())
    if isinstance(value, SimResult):
        frames = (value.trades, value.fills, value.equity, value.events, *value.details.values())
        return sum(_nbytes(frame) for frame in frames if isinstance(frame, pd.DataFrame)) + 1024
    return 1024


def _copy(value: Any) -> Any:
    if isinstance(value, pd.DataFrame):
        return value.copy()
    if isinstance(value, SimResult):
        return dataclasses.replace(
            value, trades=value.trades.copy(), fills=value.fills.copy(), equity=value.equity.copy(),
            events=None if value.events is None else value.events.copy(), metrics=dict(value.metrics),
            details={key: _copy(item) if isinstance(item, pd.DataFrame) else copy.deepcopy(item)
                     for key, item in value.details.items()},
        )  # fmt: skip
    return value


_READ_CACHE = ReadCache()


class _PartitionedFileIOManager(dg.IOManager):
    def __init__(self, paths: StoragePaths):
        self.paths = paths

    def _write(self, value: Any, path: Path) -> None:
        raise NotImplementedError

    def _read(self, path: Path) -> Any:
        raise NotImplementedError

    def _check(self, context: dg.OutputContext, value: Any) -> None:
        raise NotImplementedError

    def _path(self, key: dg.AssetKey, partition: str | None) -> Path:
        raise NotImplementedError

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        if obj is None:
            return
        name = context.asset_key.to_user_string()
        if isinstance(obj, dict):
            expected = set(context.asset_partition_keys) if context.has_asset_partitions else set()
            if set(obj) != expected:
                raise ValueError(f"{name}: returned partitions {sorted(obj)}, expected {sorted(expected)}")
            for value in obj.values():
                self._check(context, value)
            for partition, value in obj.items():
                _READ_CACHE.forget(self._path(context.asset_key, partition))
                self._write(value, self._path(context.asset_key, partition))
            return
        self._check(context, obj)
        partition = context.partition_key if context.has_partition_key else None
        path = self._path(context.asset_key, partition)
        _READ_CACHE.forget(path)
        self._write(obj, path)
        context.add_output_metadata({"path": dg.MetadataValue.path(str(path))})

    def load_input(self, context: dg.InputContext) -> Any:
        key = context.asset_key
        if not context.has_asset_partitions:
            return self.load_partition(key, None)
        return PartitionValues(
            key.to_user_string(), context.asset_partition_keys, lambda partition: self.load_partition(key, partition)
        )

    def load_partition(self, key: dg.AssetKey, partition: str | None) -> Any:
        """The stored value of one partition (or of the unpartitioned asset when ``partition`` is None)."""
        path = self._path(key, partition)
        if not path.exists():
            label = key.to_user_string() + (f"[{partition}]" if partition else "")
            raise NotMaterialisedError(f"{label} has not been materialised yet (no file at {path})")
        return _READ_CACHE.load(path, self._read)


class ParquetIOManager(_PartitionedFileIOManager):
    """DataFrames as Parquet: ``storage/<asset>/<partition>.parquet``."""

    def _write(self, value: pd.DataFrame, path: Path) -> None:
        write_parquet_atomic(value, path)

    def _read(self, path: Path) -> pd.DataFrame:
        return read_parquet(path)

    def _check(self, context: dg.OutputContext, value: Any) -> None:
        if not isinstance(value, pd.DataFrame):
            raise TypeError(f"{context.asset_key.to_user_string()}: expected a DataFrame, got {type(value).__name__}")

    def _path(self, key: dg.AssetKey, partition: str | None) -> Path:
        return self.paths.asset_file(key.path, partition)


class SimResultIOManager(_PartitionedFileIOManager):
    """Simulation results: ``storage/<asset>/<partition>.simresult`` (see simulation/storage.py)."""

    def _write(self, value: SimResult, path: Path) -> None:
        write_result(value, path)

    def _read(self, path: Path) -> SimResult:
        return read_result(path)

    def _check(self, context: dg.OutputContext, value: Any) -> None:
        if not isinstance(value, SimResult):
            raise TypeError(f"{context.asset_key.to_user_string()}: expected a SimResult, got {type(value).__name__}")

    def _path(self, key: dg.AssetKey, partition: str | None) -> Path:
        return self.paths.result_file(key.path, partition)


@dg.io_manager(required_resource_keys={"stress"}, description="DataFrames as Parquet under $STRESS_HOME/storage")
def parquet_io_manager(init_context: dg.InitResourceContext) -> ParquetIOManager:
    return ParquetIOManager(init_context.resources.stress.settings().paths)


@dg.io_manager(required_resource_keys={"stress"}, description="Simulation results under $STRESS_HOME/storage")
def result_io_manager(init_context: dg.InitResourceContext) -> SimResultIOManager:
    return SimResultIOManager(init_context.resources.stress.settings().paths)
