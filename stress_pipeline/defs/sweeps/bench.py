"""Sweep benchmark: scenarios per minute through the ``parameter_sweep`` job, in process or on Celery workers.

``stress-pipeline bench sweep --workers 0|1|2 --partitions N [--points-per-step K] [--json]`` builds a
scratch project (the data folder's bars, policies and core_crypto pack, and one sweep spec of N seeded points over the
BTC flash crash: its depth sampled, the stop-loss and ESS trip drawn from five values each), a scratch
Dagster instance whose runs and events live in a database of their own on the PostgreSQL server of
STRESS_POSTGRES_URL (the embedded one when unset; dropped afterwards), prepares the bars, catalog and
sweep partitions, and then times:

- the sweep run over all N partitions: in this process (``--workers 0``) or through W Celery workers
  started here on the broker of STRESS_CELERY_BROKER (RabbitMQ on 127.0.0.1 by default), a queue of its own;
  its batch steps' own time, the plan and merge steps (the merge stores every partition and writes its
  materialisation), and the rest (run start, task hand-off, event writes: the scheduling overhead);
- the summary over the N points (in process);
- with ``--check`` (workers only), the same points run again in process, and how many rows differ;
- the sweep asset's page through GraphQL (``--graphql``): a dagster-webserver on the instance, the query
  the asset page makes for partition health, the partition keys and the latest materialisations.

Workers are started before the clock starts (the time they took to answer is reported) and warmed by a
run over their first points (each imports the code location and compiles the kernels once, as a long-lived
worker has), and stopped at the end.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from argparse import Namespace
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

BASE_SCENARIO = "BTC Flash Crash 2021"
PACK = "core_crypto.yaml"  # the pack that holds it
SPEC = """\
sweep: bench sweep
base: {base}
fixed:
  scenario.expect.max_stress_drawdown_pct: 0.08
sample:
  points: {points}
  seed: 0
  axes:
    scenario.parameters.drop_pct: [0.05, 0.5]
    policy.risk.stop_loss.pct: {{choices: [0.02, 0.03, 0.05, 0.08, 0.10]}}
    policy.risk.safety.trip_drawdown: {{choices: [0.05, 0.08, 0.10, 0.12, 0.15]}}
"""
PAGE_QUERY = """
query ($key: AssetKeyInput!) {
  assetNodeOrError(assetKey: $key) {
    ... on AssetNode {
      partitionKeysByDimension { name partitionKeys }
      partitionStats { numMaterialized numPartitions numFailed }
      assetPartitionStatuses {
        __typename ... on DefaultPartitionStatuses { materializedPartitions failedPartitions }
      }
    }
  }
  assetOrError(assetKey: $key) {
    ... on Asset { assetMaterializations(limit: 100) { partition timestamp runId } }
  }
}
"""


@dataclass
class SweepBench:
    workers: int
    partitions: int
    points_per_step: int
    steps: int
    run_s: float
    steps_s: float
    plan_s: float
    merge_s: float
    overhead_s: float
    scenarios_per_minute: float
    summary_s: float
    worker_start_s: float
    failed_points: int
    cores: int
    page_s: float | None = None
    page_bytes: int | None = None
    rows_differing_in_process: int | None = None  # with --check: points whose row differs from an in-process run

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def main(args: Namespace) -> int:
    result = run_sweep_bench(
        args.settings, workers=args.workers, partitions=args.partitions, points_per_step=args.points_per_step,
        graphql=args.graphql, check=args.check,
    )  # fmt: skip
    print(json.dumps(result.as_dict(), indent=2) if args.json else format_sweep_bench(result))
    return 0


def run_sweep_bench(settings, *, workers: int, partitions: int, points_per_step: int | None = None,
                    graphql: bool = False, check: bool = False) -> SweepBench:  # fmt: skip
    """The bench: see the module docstring. ``points_per_step`` None: the job's default."""
    if workers < 0 or partitions < 1:
        raise ValueError(f"workers={workers}, partitions={partitions}: expected workers >= 0 and partitions >= 1")
    from stress_pipeline.services import resolve_service_urls
    from stress_pipeline.sweeps.batches import DEFAULT_POINTS_PER_STEP

    per_step = points_per_step or DEFAULT_POINTS_PER_STEP
    server = resolve_service_urls(settings).postgres_url
    root = Path(tempfile.mkdtemp(prefix="stress-sweep-bench-"))
    try:
        data = _project(settings.data_dir, root / "data", partitions)
        with _scratch_database(server) as dagster_url:
            env = _environment(root, data, dagster_url, workers)
            saved = {name: os.environ.get(name) for name in env}
            os.environ.update(env)  # the definitions, the instance and the workers read it
            try:
                return _measure(root, workers, partitions, per_step, graphql, check)
            finally:
                for name, value in saved.items():
                    if value is None:
                        os.environ.pop(name, None)
                    else:
                        os.environ[name] = value
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _measure(root: Path, workers: int, partitions: int, per_step: int, graphql: bool, check: bool) -> SweepBench:
    import dagster as dg

    from stress_pipeline.defs import build_definitions
    from stress_pipeline.defs.partitions import SWEEP_POINTS_PARTITIONS_NAME, SYMBOLS_PARTITIONS_NAME
    from stress_pipeline.defs.runner import Runner, register_symbols, resolve_selection
    from stress_pipeline.defs.sweeps.celery import celery_settings
    from stress_pipeline.defs.sweeps.workers import run_sweep, start_workers, sweep_job
    from stress_pipeline.parquet_store import read_parquet
    from stress_pipeline.settings import get_settings

    settings = get_settings()
    defs = build_definitions()
    with dg.DagsterInstance.get() as instance:
        symbols = register_symbols(instance, settings)
        runner = Runner(defs, instance)
        prepared = runner.run(
            resolve_selection(defs, "key:market_bars or key:scenario_catalog or key:sweep_points"),
            partitions={SYMBOLS_PARTITIONS_NAME: symbols},
        )
        failed = [f"{s.asset}[{s.partition}]: {s.error}" for s in prepared.steps if s.status != "materialized"]
        if failed:
            raise RuntimeError(f"sweep bench: preparing failed: {failed}")
        keys = list(instance.get_dynamic_partitions(SWEEP_POINTS_PARTITIONS_NAME))
        if len(keys) != partitions:
            points = next((s.metadata for s in prepared.steps if s.asset == "sweep_points"), {})
            raise RuntimeError(f"sweep bench: {len(keys)} sweep partitions, expected {partitions} ({points})")
        worker_start = 0.0
        job = sweep_job()
        if workers == 0:
            started = time.perf_counter()
            ok, run_id = run_sweep(instance, job, keys[0], keys[-1], points_per_step=per_step, in_process=True)
            run_s = time.perf_counter() - started
        else:
            with start_workers(workers, celery_settings(), env=os.environ, state_dir=root / "workers") as pool:
                worker_start = pool.wait_ready()
                # Warm-up, off the clock: each worker imports the code location and compiles the kernels once.
                warm, _ = run_sweep(instance, job, keys[0], keys[min(workers, len(keys)) - 1], points_per_step=1)
                if not warm:
                    raise RuntimeError("sweep bench: the warm-up run failed")
                started = time.perf_counter()
                ok, run_id = run_sweep(instance, job, keys[0], keys[-1], points_per_step=per_step)
                run_s = time.perf_counter() - started
        if not ok:
            raise RuntimeError(f"sweep bench: the sweep run {run_id} failed")
        seconds = _step_seconds(instance, run_id)
        batches = [v for step, v in seconds.items() if ".run_sweep_batch" in step]
        steps, steps_s = len(batches), sum(batches)
        plan_s = sum(v for step, v in seconds.items() if step.endswith(".plan_sweep_batches"))
        merge_s = sum(v for step, v in seconds.items() if step.endswith(".merge_sweep_batches"))
        started = time.perf_counter()
        summary = runner.run(resolve_selection(defs, "key:sweep_summary"))
        summary_s = time.perf_counter() - started
        if [step.status for step in summary.steps] != ["materialized"]:
            raise RuntimeError(f"sweep bench: the summary failed: {[step.error for step in summary.steps]}")
        table = read_parquet(settings.paths.asset_file(["sweep_summary"], None))
        differing = None
        if check and workers:
            differing = _differing_from_in_process(runner, defs, settings.paths, keys)
        page_s = page_bytes = None
        if graphql:
            page_s, page_bytes = _page_load(root, partitions)
    overhead = run_s - steps_s / max(workers, 1) - plan_s - merge_s
    return SweepBench(
        workers=workers, partitions=partitions, points_per_step=per_step, steps=steps, run_s=run_s, steps_s=steps_s,
        plan_s=plan_s, merge_s=merge_s, overhead_s=overhead, scenarios_per_minute=60.0 * partitions / run_s,
        summary_s=summary_s,
        worker_start_s=worker_start, failed_points=int((table["outcome"] == "fail").sum()), cores=os.cpu_count() or 0,
        page_s=page_s, page_bytes=page_bytes, rows_differing_in_process=differing,
    )  # fmt: skip


def _differing_from_in_process(runner, defs, paths, keys: list[str]) -> int:
    """How many points' rows differ between the run just made and the same points run again in process."""
    from stress_pipeline.defs.runner import resolve_selection
    from stress_pipeline.parquet_store import read_parquet

    def stored(key: str):
        return read_parquet(paths.asset_file(["sweep_results"], key))

    distributed = {key: stored(key) for key in keys}
    local = runner.run(resolve_selection(defs, "key:sweep_results"))
    if any(step.status != "materialized" for step in local.steps):
        raise RuntimeError("sweep bench: the in-process run for --check failed")
    return sum(not distributed[key].equals(stored(key)) for key in keys)


def _step_seconds(instance, run_id: str) -> dict[str, float]:
    """Each step's seconds in the run, start to success."""
    import dagster as dg

    starts, out = {}, {}
    kinds = {dg.DagsterEventType.STEP_START, dg.DagsterEventType.STEP_SUCCESS}
    for record in instance.all_logs(run_id, of_type=kinds):
        step = record.dagster_event.step_key or ""
        if record.dagster_event.event_type == dg.DagsterEventType.STEP_START:
            starts[step] = record.timestamp
        elif step in starts:
            out[step] = record.timestamp - starts[step]
    return out


def _page_load(root: Path, partitions: int) -> tuple[float, int]:
    """Seconds (best of three after a warm-up) and bytes of the sweep asset page's GraphQL query, on a
    dagster-webserver over the instance."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    webserver = Path(sys.executable).with_name("dagster-webserver")
    with (root / "webserver.log").open("w") as log:
        process = subprocess.Popen(
            [str(webserver), "-m", "stress_pipeline.definitions", "-h", "127.0.0.1", "-p", str(port)],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                _, raw = _query(port)
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    log_tail = (root / "webserver.log").read_text()[-2000:]
                    raise RuntimeError(f"dagster-webserver did not answer: {log_tail}") from None
                time.sleep(1.0)
        answer = json.loads(raw)
        node = (answer.get("data") or {}).get("assetNodeOrError") or {}
        if "errors" in answer or "partitionKeysByDimension" not in node:
            raise RuntimeError(f"sweep bench: GraphQL answered {str(answer)[:500]}")
        listed = len(node["partitionKeysByDimension"][0]["partitionKeys"])
        if listed != partitions:
            raise RuntimeError(f"sweep bench: the asset page lists {listed} partitions, expected {partitions}")
        return min(_query(port)[0] for _ in range(3)), len(raw)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(30)


def _query(port: int) -> tuple[float, bytes]:
    body = json.dumps({"query": PAGE_QUERY, "variables": {"key": {"path": ["sweep_results"]}}}).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}/graphql", data=body,
                                     headers={"Content-Type": "application/json"})  # fmt: skip
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=120) as response:
        raw = response.read()
    return time.perf_counter() - started, raw


def _project(source: Path, data: Path, partitions: int) -> Path:
    (data / "sweeps").mkdir(parents=True)
    (data / "stress_packs").mkdir()
    for name in ("bars", "policies"):
        shutil.copytree(source / name, data / name)
    shutil.copy(source / "symbols.yaml", data / "symbols.yaml")
    shutil.copy(source / "stress_packs" / PACK, data / "stress_packs" / PACK)
    (data / "sweeps" / "bench.yaml").write_text(SPEC.format(base=BASE_SCENARIO, points=partitions))
    return data


def _environment(root: Path, data: Path, dagster_url: str, workers: int) -> dict[str, str]:
    home = root / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(
        f"storage:\n  postgres:\n    postgres_url: {dagster_url}\ntelemetry:\n  enabled: false\n"
    )
    return {
        "DAGSTER_HOME": str(home), "STRESS_HOME": str(root / "shared"), "STRESS_DATA_DIR": str(data),
        "STRESS_EXECUTOR": "celery" if workers else "default",
        "STRESS_CELERY_QUEUE": f"stress-bench-{uuid.uuid4().hex[:8]}",
    }  # fmt: skip


@contextmanager
def _scratch_database(server_url: str) -> Iterator[str]:
    """A database of its own on ``server_url`` for Dagster's storage (psycopg2 URL), dropped afterwards."""
    import sqlalchemy as sa

    server = sa.make_url(server_url).set(drivername="postgresql+psycopg")
    name = f"stress_bench_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield server.set(drivername="postgresql+psycopg2", database=name).render_as_string(hide_password=False)
    finally:
        with engine.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()


def format_sweep_bench(result: SweepBench) -> str:
    where = "in process" if result.workers == 0 else f"on {result.workers} Celery worker(s)"
    lines = [
        f"sweep of {result.partitions} points {where}, {result.cores} cores, {result.points_per_step} points per step:",
        f"  run            {result.run_s:8.1f} s   {result.scenarios_per_minute:8.0f} scenarios/min "
        f"({result.steps} batch steps, {result.steps_s:.1f} s in them)",
        f"  plan / merge   {result.plan_s:8.1f} s / {result.merge_s:.1f} s (the merge stores every partition and its "
        "materialisation)",
        f"  overhead       {result.overhead_s:8.1f} s   (run start, task hand-off, events: the rest of the run)",
        f"  summary        {result.summary_s:8.1f} s   ({result.failed_points} points fail)",
    ]
    if result.workers:
        lines.append(f"  workers ready  {result.worker_start_s:8.1f} s   (before the clock)")
    if result.rows_differing_in_process is not None:
        lines.append(f"  check          {result.rows_differing_in_process} of {result.partitions} points differ "
                     "from the same sweep run in process")  # fmt: skip
    if result.page_s is not None:
        lines.append(f"  asset page     {result.page_s:8.2f} s   GraphQL, {result.page_bytes / 1e3:.0f} kB")
    return "\n".join(lines)
