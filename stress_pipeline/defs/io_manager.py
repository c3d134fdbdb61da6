"""IO manager that stores DataFrame outputs as Parquet, one file per asset partition."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pandas as pd

from stress_pipeline.parquet_store import read_parquet, write_parquet_atomic
from stress_pipeline.settings import get_settings


class ParquetIOManager(dg.ConfigurableIOManager):
    """Parquet under ``base_dir`` (default: $STRESS_HOME/storage): ``<asset>/<partition>.parquet``.

    Writes are atomic, so a failed step never replaces the last good materialisation. A step that
    materialises several partitions at once (a single-run backfill) returns ``{partition: frame}``.
    """

    base_dir: str | None = None

    def handle_output(self, context: dg.OutputContext, obj: pd.DataFrame | dict[str, pd.DataFrame] | None) -> None:
        if obj is None:
            return
        if isinstance(obj, dict):
            expected = set(context.asset_partition_keys)
            if set(obj) != expected:
                name = context.asset_key.to_user_string()
                raise ValueError(f"{name}: returned partitions {sorted(obj)}, expected {sorted(expected)}")
            for partition, frame in obj.items():
                write_parquet_atomic(frame, self._path(context.asset_key, partition))
            return
        if not isinstance(obj, pd.DataFrame):
            raise TypeError(f"{context.asset_key.to_user_string()}: expected a DataFrame, got {type(obj).__name__}")
        partition = context.partition_key if context.has_partition_key else None
        path = write_parquet_atomic(obj, self._path(context.asset_key, partition))
        context.add_output_metadata({"path": dg.MetadataValue.path(str(path))})

    def load_input(self, context: dg.InputContext) -> pd.DataFrame:
        key = context.asset_key
        if not context.has_asset_partitions:
            return self.load_partition(key, None)
        partitions = context.asset_partition_keys
        frames = [self.load_partition(key, partition) for partition in partitions]
        return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)

    def load_partition(self, key: dg.AssetKey, partition: str | None) -> pd.DataFrame:
        """Read one stored partition (or the unpartitioned output when ``partition`` is None)."""
        path = self._path(key, partition)
        if not path.exists():
            label = key.to_user_string() + (f"[{partition}]" if partition else "")
            raise FileNotFoundError(f"{label} has not been materialised yet (no file at {path})")
        return read_parquet(path)

    def _path(self, key: dg.AssetKey, partition: str | None) -> Path:
        base = Path(self.base_dir) if self.base_dir else get_settings().storage_dir
        folder = base.joinpath(*key.path)
        if partition is None:
            return folder.with_suffix(".parquet")
        if "/" in partition or "\\" in partition or partition in {"", ".", ".."}:
            raise ValueError(f"partition key {partition!r} cannot name a file")
        return folder / f"{partition}.parquet"
