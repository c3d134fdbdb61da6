"""Dagster wiring of the sweeps group."""

import dagster as dg

from stress_pipeline.defs.sweeps.assets import sweep_points, sweep_results, sweep_summary
from stress_pipeline.defs.sweeps.celery import sweep_executor
from stress_pipeline.defs.sweeps.steps import STEP_IO_MANAGER, sweep_step_io_manager

SWEEP_JOB = "parameter_sweep"


def sweeps_definitions() -> dg.Definitions:
    """The group's assets and the sweep job, on Celery when STRESS_EXECUTOR=celery (read as this is called,
    so that the Definitions built in a worker and in the launching process agree with their environment)."""
    job = dg.define_asset_job(
        SWEEP_JOB,
        selection=dg.AssetSelection.assets(sweep_results),
        description="Run every sweep point; a backfill over all of them is one run, its points in batches of "
        "points_per_step, one step each (on Celery workers when STRESS_EXECUTOR=celery).",
        executor_def=sweep_executor(),
    )
    return dg.Definitions(
        assets=[sweep_points, sweep_results, sweep_summary], jobs=[job],
        resources={STEP_IO_MANAGER: sweep_step_io_manager},
    )  # fmt: skip
