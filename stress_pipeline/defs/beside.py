"""Other processes of the CLI's runner: for assets that mostly wait on real time, and for the other core.

The drills hold outages for seconds and the alert-delivery scenarios wait out retries: the CLI's
:class:`~stress_pipeline.defs.runner.Runner` runs the assets tagged ``stress_pipeline/beside`` in spawned
processes on the same Dagster instance (one for each set of them that does not read from another) while
it computes the rest, and runs what reads from them once those have finished. A large partitioned group
is split: a helper process runs half of its partitions while this one runs the other half. Every
process's runs are ordinary Dagster runs (the UI shows them as usual).
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import threading
import time
import traceback
from collections.abc import Callable, Mapping, Sequence

import dagster as dg

# The asset tag: the asset mostly waits on real time, so the CLI runs it in a process of its own.
BESIDE_TAG = "stress_pipeline/beside"
BESIDE = {BESIDE_TAG: "true"}
# The asset tag of a latency measurement: the other processes start only after it has run.
QUIET_TAG = "stress_pipeline/quiet"
QUIET = {QUIET_TAG: "true"}


def ordered_groups(graph, groups, beside: set[dg.AssetKey], wait: Callable[[], object]):
    """(index, group) in dependency order, a group reading from ``beside`` keys as late as that order
    allows: it and the groups after it that read from it wait, while the others run; ``wait()`` is
    called once, when nothing else can run."""
    group_of = {key: i for i, (keys, _) in enumerate(groups) for key in keys}
    needs = []
    for i, (keys, _) in enumerate(groups):
        parents = {parent for key in keys for parent in graph.get(key).parent_keys}
        needs.append(({group_of[p] for p in parents if p in group_of} - {i}, any(p in beside for p in parents)))
    done: set[int] = set()
    pending, waited = list(range(len(groups))), False
    while pending:
        ready = [i for i in pending if needs[i][0] <= done and (waited or not needs[i][1])]
        if not ready:
            if waited:
                raise RuntimeError("the asset groups depend on each other in a cycle")
            wait()
            waited = True
            continue
        pending.remove(ready[0])
        done.add(ready[0])
        yield ready[0], groups[ready[0]]


class RunnerProcess:
    """A Runner in a spawned process on the same instance, running one selection at a time
    (:meth:`submit`, then :meth:`wait`), its reports relayed to this process's callbacks by a thread.

    :meth:`spawn` starts the process: it imports the project and builds its Definitions with ``factory``,
    then waits, idle, to be opened on an instance (:meth:`start`), so a caller can spawn it before its
    own imports and have it ready when needed. Its progress lines are numbered as the caller says
    (``offset``, ``total``) and end with ``suffix``; its group jobs are ``<job_prefix>_<n>``."""

    def __init__(self, factory: Callable[[], dg.Definitions], verbose: bool):
        self._factory, self._verbose = factory, verbose
        self._suffix = ""
        self._offset, self.total = 0, 0
        self._summary = None
        self._error: str | None = None
        self._done = threading.Event()
        self._busy = False
        self.wall_seconds = 0.0  # of the selections it ran, summed
        self.spawned = self.started = self._finished = False

    @property
    def busy(self) -> bool:
        return self._busy

    @property
    def pid(self) -> int | None:
        return self._process.pid if self.spawned else None

    @property
    def alive(self) -> bool:
        return self.spawned and self._process.is_alive()

    def spawn(self) -> RunnerProcess:
        if not self.spawned:
            context = multiprocessing.get_context("spawn")
            self._tasks, self._queue, self._ready = context.Queue(), context.Queue(), context.Event()
            self._process = context.Process(
                target=_serve, args=(self._factory, self._verbose, self._tasks, self._queue, self._ready),
                name="stress-runner", daemon=True,
            )  # fmt: skip
            self._process.start()
            self.spawned = True
        return self

    def wait_ready(self, timeout: float) -> bool:
        """Wait (at most ``timeout`` s) until a spawned process has loaded the project and sits idle;
        False at once if it died meanwhile (its error is reported when it is used)."""
        deadline = time.monotonic() + timeout
        while self.spawned and not self._ready.wait(0.05):
            if not self._process.is_alive() or time.monotonic() >= deadline:
                return False
        return True

    def start(
        self, instance: dg.DagsterInstance, *, job_prefix: str, suffix: str, on_run, on_step, on_run_done
    ) -> None:
        """Open it on ``instance`` (spawning it first if need be) and relay its reports to the callbacks."""
        self.spawn()
        self.started, self._suffix = True, suffix
        self._tasks.put((instance.get_ref(), job_prefix))
        self._thread = threading.Thread(
            target=self._relay, args=(on_run, on_step, on_run_done), name="stress-runner-relay", daemon=True
        )
        self._thread.start()

    def submit(
        self, keys: Sequence[dg.AssetKey], partitions: Mapping[str, Sequence[str]] | None, *, offset: int, total: int,
        exclude_checks: Sequence[dg.AssetCheckKey] = (),
    ) -> None:  # fmt: skip
        """Run ``keys`` (with their checks but ``exclude_checks``) for ``partitions`` over there."""
        if self._busy:
            raise RuntimeError("the runner process is still running its last selection")
        self._offset, self.total, self._busy = offset, total, True
        self._summary, self._started = None, time.perf_counter()
        if self._error is None:  # a process that already failed stays failed: wait() raises at once
            self._done.clear()
        self._tasks.put((
            [key.to_user_string() for key in keys], {name: list(values) for name, values in (partitions or {}).items()},
            [(check.asset_key.to_user_string(), check.name) for check in exclude_checks],
        ))  # fmt: skip

    def _relay(self, on_run, on_step, on_run_done) -> None:
        while True:
            try:
                kind, payload = self._queue.get(timeout=1.0)
            except queue.Empty:
                if not self._process.is_alive():
                    self._error = self._error or f"it exited with code {self._process.exitcode} before reporting"
                    self._done.set()
                    return
                continue
            if kind == "run" and on_run:
                number, _total, label, partitions = payload
                on_run(self._offset + number, self.total, f"{label} ({self._suffix})", partitions)
            elif kind == "step" and on_step:
                on_step(payload)
            elif kind == "done" and on_run_done:
                on_run_done(*payload)
            elif kind == "summary":
                self._summary = payload
                self.wall_seconds += time.perf_counter() - self._started
                self._done.set()
            elif kind == "error":
                self._error = payload
                self._done.set()
                return

    def wait(self):
        """The summary of the selection submitted last, once it has run; a RuntimeError with the
        process's traceback when it failed."""
        self._done.wait()
        self._busy = False
        if self._summary is None:
            raise RuntimeError(f"the process running {self._suffix} failed: {self._error}")
        return self._summary

    def finish(self) -> None:
        """Tell the process it has nothing more to run: it ends on its own (at once, see ``_serve``)."""
        if self.spawned and not self._finished:
            self._finished = True
            self._tasks.put(None)

    def close(self) -> None:
        """Let the process end (it has nothing more to run, or was never used) and wait for it."""
        self.finish()
        if self.spawned:
            self._process.join(timeout=30)
            if self._process.is_alive():
                self._process.kill()


def _serve(factory, verbose: bool, tasks, reports, ready) -> None:
    """The other process: build the Definitions, wait to be opened on an instance, then run each
    selection ``tasks`` hands over, reporting through ``reports``, until it hands over None."""
    code = 0
    try:
        from stress_pipeline.defs.runner import Runner

        defs = factory()
        ready.set()
        opened = tasks.get()
        if opened is not None:
            ref, job_prefix = opened
            with dg.DagsterInstance.from_ref(ref) as instance:
                runner = Runner(
                    defs, instance, verbose=verbose, job_prefix=job_prefix,
                    on_run=lambda *args: reports.put(("run", args)), on_step=lambda step: reports.put(("step", step)),
                    on_run_done=lambda outcomes, verdicts: reports.put(("done", (outcomes, verdicts))),
                )  # fmt: skip
                while (task := tasks.get()) is not None:
                    keys, partitions, excluded = task
                    summary = runner.run(
                        [dg.AssetKey.from_user_string(key) for key in keys], partitions=partitions or None,
                        exclude_checks=[dg.AssetCheckKey(dg.AssetKey.from_user_string(a), n) for a, n in excluded],
                    )  # fmt: skip
                    reports.put(("summary", summary))
    except BaseException:  # the parent raises it with this traceback
        reports.put(("error", traceback.format_exc()))
        code = 1
    # Leave at once once the reports are sent: the parent has what it needs, and tearing the interpreter
    # down (numba, pandas, Dagster) took 1.5 s the parent would wait for.
    reports.close()
    reports.join_thread()
    os._exit(code)
