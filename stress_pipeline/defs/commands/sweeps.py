"""``stress-pipeline workers [--count N]``: N Celery workers of the sweep job on this machine, until Ctrl-C.

Each worker is dagster-celery's own worker command (one process group, ``--concurrency`` pool processes)
on the broker and queue of STRESS_CELERY_BROKER / STRESS_CELERY_QUEUE, with this process's environment
(STRESS_HOME, STRESS_DATA_DIR and DAGSTER_HOME, by the CLI's rule, must be those of the process that
launches the runs);
their logs go to $STRESS_HOME/workers/. ``make workers N=2`` calls it.
"""

from __future__ import annotations

import argparse
import os
import time


def register(commands: argparse._SubParsersAction) -> None:
    workers = commands.add_parser("workers", help="Celery workers for the sweep job on this machine, until Ctrl-C")
    workers.add_argument("--count", type=int, default=2, help="worker processes (default: 2)")
    workers.add_argument("--concurrency", type=int, default=1, help="pool processes per worker (default: 1)")
    workers.add_argument("--prefix", default="sweep", help="worker names: PREFIX-1@host, ... (default: sweep)")
    workers.set_defaults(handler=_workers, settings=True)


def _workers(args: argparse.Namespace) -> int:
    from stress_pipeline.cli import dagster_home
    from stress_pipeline.defs.sweeps.celery import CelerySettings, celery_settings
    from stress_pipeline.defs.sweeps.workers import start_workers

    env = {**os.environ, "STRESS_EXECUTOR": "celery", "DAGSTER_HOME": str(dagster_home())}
    celery = celery_settings(env) or CelerySettings()
    state = args.settings.home / "workers"
    pool = start_workers(args.count, celery, env=env, state_dir=state, prefix=args.prefix,
                         concurrency=args.concurrency)  # fmt: skip
    try:
        seconds = pool.wait_ready()
        print(f"{args.count} worker(s) {', '.join(pool.names)} on {celery.broker} queue {celery.queue!r} answered in "
              f"{seconds:.1f}s; logs in {state}. Ctrl-C stops them.")  # fmt: skip
        while all(process.poll() is None for process in pool.processes):
            time.sleep(1.0)
        print("a worker exited: stopping the others")
        return 1
    finally:
        pool.stop()
