"""The certification's optional inputs: an upstream table, or None while it has not been materialised.

The monitoring, drills and verdicts assets may not have run when the day is certified; their gates are
then "no input" (not a pass) and say so, instead of the certification failing to load its inputs.
"""

import dagster as dg

from stress_pipeline.defs.io_manager import NotMaterialisedError, ParquetIOManager
from stress_pipeline.paths import StoragePaths

OPTIONAL_TABLE_INPUT = "optional_table_input"


class OptionalTableInput(dg.InputManager):
    """Reads an unpartitioned Parquet asset the way ``parquet_io_manager`` stored it; None if never stored."""

    def __init__(self, paths: StoragePaths):
        self._tables = ParquetIOManager(paths)

    def load_input(self, context: dg.InputContext):
        try:
            return self._tables.load_partition(context.asset_key, None)
        except NotMaterialisedError:
            context.log.info(f"{context.asset_key.to_user_string()} has not been materialised: its gates get no input")
            return None


@dg.input_manager(required_resource_keys={"stress"}, description="an upstream table, or None while not materialised")
def optional_table_input(init_context: dg.InitResourceContext) -> OptionalTableInput:
    return OptionalTableInput(init_context.resources.stress.settings().paths)
