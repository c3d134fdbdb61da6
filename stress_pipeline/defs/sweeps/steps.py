"""Values passed between the steps of one sweep run (the batches of keys and each batch's rows).

They are pickled under $STRESS_HOME/steps/<run>/<step>/<output>: on a Celery run the next step
may run on another worker, so these files must live on storage every worker mounts, as the assets' own
files do. They are small (a list of keys, a few rows per point).
"""

from __future__ import annotations

import os
import pickle
import tempfile
from pathlib import Path
from typing import Any

import dagster as dg

STEP_IO_MANAGER = "sweep_step_io_manager"


class StepPickleIOManager(dg.IOManager):
    """One pickle file per step output, named by run, step, output and mapping key."""

    def __init__(self, root: Path):
        self.root = root

    def _path(self, context: dg.OutputContext) -> Path:
        return self.root.joinpath(*context.get_identifier())

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        path = self._path(context)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        with os.fdopen(fd, "wb") as handle:
            pickle.dump(obj, handle, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)

    def load_input(self, context: dg.InputContext) -> Any:
        path = self._path(context.upstream_output)
        if not path.exists():
            raise FileNotFoundError(f"step output {path} is missing: is {self.root} shared by every worker?")
        with path.open("rb") as handle:
            return pickle.load(handle)


@dg.io_manager(required_resource_keys={"stress"}, description="Sweep step outputs under $STRESS_HOME/steps")
def sweep_step_io_manager(init_context: dg.InitResourceContext) -> StepPickleIOManager:
    return StepPickleIOManager(init_context.resources.stress.settings().paths.step_outputs)
