"""The certification's optional inputs: an upstream table, or None while it has not been materialised
(for a partitioned upstream, the partitions that were).

The monitoring, drills and verdicts assets may not have run when the day is certified; their gates are
then "no input" (not a pass) and say so, instead of the certification failing to load its inputs.
"""

import dagster as dg

from stress_pipeline.defs.io_manager import NotMaterialisedError, ParquetIOManager
from stress_pipeline.paths import StoragePaths

OPTIONAL_TABLE_INPUT = "optional_table_input"


class OptionalTableInput(dg.InputManager):
    """Reads a Parquet asset the way ``parquet_io_manager`` stored it. Unpartitioned: the table, None if
    never stored. Partitioned (all partitions mapped): ``{partition: table}`` of the stored partitions
    only, so the reader tells what has not run by what is absent."""

    def __init__(self, paths: StoragePaths):
        self._tables = ParquetIOManager(paths)

    def load_input(self, context: dg.InputContext):
        name = context.asset_key.to_user_string()
        if context.has_asset_partitions:
            stored = {}
            for partition in context.asset_partition_keys:
                try:
                    stored[partition] = self._tables.load_partition(context.asset_key, partition)
                except NotMaterialisedError:
                    continue
            missing = len(context.asset_partition_keys) - len(stored)
            if missing:
                context.log.info(f"{name}: {missing} partition(s) never materialised, left out")
            return stored
        try:
            return self._tables.load_partition(context.asset_key, None)
        except NotMaterialisedError:
            context.log.info(f"{name} has not been materialised: its readers get no input")
            return None


@dg.input_manager(
    required_resource_keys={"stress"},
    description="an upstream table (None while not materialised) or its stored partitions",
)
def optional_table_input(init_context: dg.InitResourceContext) -> OptionalTableInput:
    return OptionalTableInput(init_context.resources.stress.settings().paths)
