"""The Dagster layer: partitions, assets, checks, sensors, jobs and resources, and nothing else.

Each asset group lives in its own subpackage with a ``defs`` object; :func:`build_definitions`
merges them and binds the shared resources.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import dagster as dg


def build_definitions() -> dg.Definitions:
    """The project's one Definitions object (the asset modules load here, on first call: importing a
    command module of this package, as `stress-pipeline --help` does, stays fast)."""
    import dagster as dg

    from stress_pipeline.defs.automation import defs as automation_defs
    from stress_pipeline.defs.certification import defs as certification_defs
    from stress_pipeline.defs.drills import defs as drills_defs
    from stress_pipeline.defs.integrity import defs as integrity_defs
    from stress_pipeline.defs.lite import defs as lite_defs
    from stress_pipeline.defs.market import defs as market_defs
    from stress_pipeline.defs.monitoring import defs as monitoring_defs
    from stress_pipeline.defs.resources import default_resources
    from stress_pipeline.defs.scenarios import defs as scenarios_defs
    from stress_pipeline.defs.simulations import defs as simulations_defs
    from stress_pipeline.defs.sweeps import sweeps_definitions
    from stress_pipeline.defs.verdicts import defs as verdicts_defs

    return dg.Definitions.merge(
        market_defs, scenarios_defs, simulations_defs, integrity_defs, drills_defs, verdicts_defs,
        certification_defs, monitoring_defs, lite_defs, automation_defs, sweeps_definitions(),
        dg.Definitions(resources=default_resources()),
    )
