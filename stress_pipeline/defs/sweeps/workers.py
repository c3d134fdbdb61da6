"""Celery workers for the sweep job on this machine, and a sweep run through them.

``start_workers`` starts N workers with dagster-celery's own command, each a separate process group,
listening on the configured queue; ``SweepWorkers.stop`` ends them (the groups, so Celery's pool children
go too). ``run_sweep`` launches the ``parameter_sweep`` job over a span of sweep partitions the way
``dagster job execute`` does (the run in this process, its steps on the workers), and ``step_workers``
reads from the run's events which worker ran each step.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import yaml

from stress_pipeline.defs.sweeps.celery import CelerySettings

CODE_MODULE = "stress_pipeline.definitions"
#: The metadata of the engine event a Celery worker writes as it starts a step: the steps, the worker.
STEP_KEYS_METADATA_KEY = "step_keys"
WORKER_METADATA_KEY = "Celery worker"


@dataclass
class SweepWorkers:
    """Worker processes started by :func:`start_workers` (``names``: their Celery node names)."""

    settings: CelerySettings
    names: list[str]
    processes: list[subprocess.Popen] = field(default_factory=list)
    logs: list[Path] = field(default_factory=list)

    def wait_ready(self, timeout_s: float = 120.0) -> float:
        """Wait until every worker answers a ping; the seconds it took. Fails naming the silent ones."""
        from dagster_celery.executor import CeleryExecutor
        from dagster_celery.make_app import make_app

        app = make_app(CeleryExecutor.for_cli(**self.settings.executor_config()).app_args())
        started = time.perf_counter()
        waiting = set(self.names)
        while waiting:
            for process, log in zip(self.processes, self.logs, strict=True):
                if process.poll() is not None:
                    raise RuntimeError(f"a Celery worker exited with {process.returncode}: {log.read_text()[-2000:]}")
            replies = app.control.ping(timeout=1.0) or []
            waiting -= {name.split("@")[0] for reply in replies for name in reply}
            if waiting and time.perf_counter() - started > timeout_s:
                raise TimeoutError(f"Celery workers {sorted(waiting)} did not answer within {timeout_s:.0f} s")
        return time.perf_counter() - started

    def stop(self, timeout_s: float = 20.0) -> None:
        """End every worker's process group: SIGTERM (warm shutdown), then SIGKILL."""
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        for process in self.processes:
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            with contextlib.suppress(ProcessLookupError):  # pool children left behind by a killed parent
                os.killpg(process.pid, signal.SIGKILL)

    def __enter__(self) -> SweepWorkers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def worker_config_file(settings: CelerySettings, path: Path) -> Path:
    """The ``-y`` file of ``dagster-celery worker start``: the executor's config block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({"execution": {"config": settings.executor_config()}}, sort_keys=True))
    return path


def worker_command(config_file: Path, name: str, queue: str, *, concurrency: int = 1) -> list[str]:
    """dagster-celery's worker command: one worker named ``name`` on ``queue``, ``concurrency`` processes."""
    executable = Path(sys.executable).with_name("dagster-celery")
    return [
        str(executable), "worker", "start", "-A", "dagster_celery.app", "-y", str(config_file), "-q", queue,
        "-n", name, "--", f"--concurrency={concurrency}",
    ]  # fmt: skip


def start_workers(
    count: int, settings: CelerySettings, *, env: Mapping[str, str], state_dir: Path, prefix: str = "sweep",
    concurrency: int = 1,
) -> SweepWorkers:  # fmt: skip
    """Start ``count`` workers with the environment ``env`` (STRESS_HOME, STRESS_DATA_DIR, DAGSTER_HOME...:
    the same as the process that launches runs), their config and logs in ``state_dir``."""
    if count < 1:
        raise ValueError(f"count={count}: expected at least one worker")
    config = worker_config_file(settings, state_dir / "celery.yaml")
    # dagster-celery runs `celery` from PATH: this interpreter's.
    env = {**env, "PATH": os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", os.defpath)])}
    workers = SweepWorkers(settings, [f"{prefix}-{number}" for number in range(1, count + 1)])
    try:
        for name in workers.names:
            log = state_dir / f"{name}.log"
            with log.open("w") as out:
                workers.processes.append(subprocess.Popen(
                    worker_command(config, name, settings.queue, concurrency=concurrency), env=dict(env),
                    stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                ))  # fmt: skip
            workers.logs.append(log)
    except BaseException:
        workers.stop()
        raise
    return workers


def sweep_job(job_name: str = "parameter_sweep"):
    """The sweep job as Celery workers rebuild it (by module name), loaded from the environment as it is now:
    the job's executor comes from STRESS_EXECUTOR when the definitions load."""
    if CODE_MODULE in sys.modules:
        importlib.reload(sys.modules[CODE_MODULE])
    job = dg.build_reconstructable_job(
        __name__, "definitions_job", reconstructable_args=(job_name,), reconstructor_working_directory=os.getcwd()
    )
    job.get_definition()  # load now, not on the clock of the first run
    return job


def definitions_job(job_name: str) -> dg.JobDefinition:
    """The job ``job_name`` of the code location's definitions: how a worker rebuilds a sweep job."""
    module = importlib.import_module(CODE_MODULE)
    return module.defs.resolve_job_def(job_name)


def run_sweep(
    instance: dg.DagsterInstance, job, first: str, last: str, *, points_per_step: int,
    tags: Mapping[str, str] | None = None, in_process: bool = False,
) -> tuple[bool, str]:  # fmt: skip
    """Run ``job`` (:func:`sweep_job`) over the sweep partitions ``first``..``last`` (a single run);
    (success, run id). ``in_process``: every step in this process (the job must have the default executor)."""
    from stress_pipeline.defs.runner import PARTITION_RANGE_END_TAG, PARTITION_RANGE_START_TAG, QUIET_RUN_CONFIG

    run_config: dict[str, object] = {"ops": {"sweep_results": {"ops": {"plan_sweep_batches": {"config": {
        "points_per_step": points_per_step}}}}}}  # fmt: skip
    if in_process:
        run_config["execution"] = {"config": {"in_process": {}}}
    run_config.update(QUIET_RUN_CONFIG)  # Dagster's own log lines stay in the run's events, off the console
    span = {PARTITION_RANGE_START_TAG: first, PARTITION_RANGE_END_TAG: last}
    with dg.execute_job(job, instance, run_config=run_config, tags={**span, **(tags or {})}) as result:
        return result.success, result.run_id


def step_workers(instance: dg.DagsterInstance, run_id: str) -> dict[str, str]:
    """``{step key: Celery worker name}`` of the steps a Celery worker ran in the run (from the engine event
    each worker writes as it starts a step, which names the worker)."""
    out = {}
    for record in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
        event = record.dagster_event
        metadata = event.event_specific_data.metadata if event and event.event_specific_data else {}
        if WORKER_METADATA_KEY in metadata and STEP_KEYS_METADATA_KEY in metadata:
            for step in str(metadata[STEP_KEYS_METADATA_KEY].value).split(", "):
                out[step] = str(metadata[WORKER_METADATA_KEY].value)
    return out
