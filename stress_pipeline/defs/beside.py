"""Assets that mostly wait on real time, run in a second process beside the others.

The drills hold outages for seconds and the alert-delivery scenarios wait out retries: the CLI's
:class:`~stress_pipeline.defs.runner.Runner` runs the assets tagged ``stress_pipeline/beside`` in a spawned
process on the same Dagster instance while it computes the rest, and runs what reads from them once that
process has finished. Both processes' runs are ordinary Dagster runs (the UI shows them as usual).
"""

from __future__ import annotations

import multiprocessing
import queue
import threading
import time
import traceback
from collections.abc import Callable, Mapping, Sequence

import dagster as dg

# The asset tag: the asset mostly waits on real time, so the CLI runs it in a second process.
BESIDE_TAG = "stress_pipeline/beside"
BESIDE = {BESIDE_TAG: "true"}
# The asset tag of a latency measurement: the second process starts only after it has run.
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


class BesideProcess:
    """The beside-tagged assets of a selection, run by a Runner in a second process (spawned: it builds
    its Definitions with ``factory`` and opens the same instance), its reports relayed to this process's
    callbacks by a thread. Its groups are numbered after this process's (``offset``)."""

    def __init__(
        self, factory: Callable[[], dg.Definitions], instance: dg.DagsterInstance, keys: list[dg.AssetKey],
        partitions: Mapping[str, Sequence[str]] | None, verbose: bool, *, offset: int, total: int,
    ):
        self.total, self._offset = total, offset
        self._args = (factory, instance.get_ref(), [key.to_user_string() for key in keys],
                      dict(partitions or {}), verbose)  # fmt: skip
        self._summary = None
        self._error: str | None = None
        self.wall_seconds = 0.0
        self.started = False

    def start(self, on_run, on_step, on_run_done) -> None:
        self.started, self._started = True, time.perf_counter()
        context = multiprocessing.get_context("spawn")
        self._queue = context.Queue()
        self._process = context.Process(target=_run_beside, args=(*self._args, self._queue), name="stress-beside")
        self._process.start()
        self._thread = threading.Thread(
            target=self._relay, args=(on_run, on_step, on_run_done), name="stress-beside-relay", daemon=True
        )
        self._thread.start()

    def _relay(self, on_run, on_step, on_run_done) -> None:
        while True:
            try:
                kind, payload = self._queue.get(timeout=1.0)
            except queue.Empty:
                if not self._process.is_alive():
                    self._error = f"it exited with code {self._process.exitcode} before reporting"
                    return
                continue
            if kind == "run" and on_run:
                number, _total, label, partitions = payload
                on_run(self._offset + number, self.total, f"{label} (beside the others)", partitions)
            elif kind == "step" and on_step:
                on_step(payload)
            elif kind == "done" and on_run_done:
                on_run_done(*payload)
            elif kind == "summary":
                self._summary, self.wall_seconds = payload, time.perf_counter() - self._started
                return
            elif kind == "error":
                self._error = payload
                return

    def wait(self):
        """Its summary, once it has finished; a RuntimeError with its traceback when it failed."""
        self._thread.join()
        self._process.join()
        if self._summary is None:
            raise RuntimeError(f"the process running the beside-tagged assets failed: {self._error}")
        return self._summary


def _run_beside(factory, ref, keys: list[str], partitions, verbose: bool, reports) -> None:
    """The second process: run ``keys`` on the instance of ``ref`` and report through ``reports``."""
    from stress_pipeline.defs.runner import Runner

    try:
        with dg.DagsterInstance.from_ref(ref) as instance:
            runner = Runner(
                factory(), instance, verbose=verbose, job_prefix="stress_pipeline_beside_run",
                on_run=lambda *args: reports.put(("run", args)), on_step=lambda step: reports.put(("step", step)),
                on_run_done=lambda outcomes, verdicts: reports.put(("done", (outcomes, verdicts))),
            )  # fmt: skip
            summary = runner.run([dg.AssetKey.from_user_string(key) for key in keys], partitions=partitions or None)
        reports.put(("summary", summary))
    except BaseException:  # the parent raises it with this traceback
        reports.put(("error", traceback.format_exc()))
