"""Parameter sweeps and robustness figures: a scenario swept over grids of parameters, the verdict of
each point, the region where the system fails, trade resampling, parameter sensitivity and regimes."""

from stress_pipeline.sweeps.spec import (
    LoadedSweep,
    SweepPoint,
    SweepSpec,
    SweepSpecError,
    expand_sweep,
    load_sweep,
    point_from_record,
    sweep_files,
)

__all__ = [
    "LoadedSweep",
    "SweepPoint",
    "SweepSpec",
    "SweepSpecError",
    "expand_sweep",
    "load_sweep",
    "point_from_record",
    "sweep_files",
]
