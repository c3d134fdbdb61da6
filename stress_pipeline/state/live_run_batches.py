"""Which writes of a live replay can go together: consecutive bars' fills merged into one write.

The replay (:mod:`stress_pipeline.state.live_run`) releases fills bar by bar; a busy paper run has a
fill or two per bar, and each write is a ledger transaction (committed to disk) and a few Redis calls,
so writing every bar on its own spends nearly all the replay's time in round trips and commits.
:func:`coalesce_writes` merges consecutive bars' writes into one, at the sim time of the newest (as a
live consumer batching what it received), as long as nothing the replay does depends on when they are
written:

* no fault action (an outage beginning or ending, a writer crash, a delivery fault's window) falls
  between them, so every action still fires between the same fills;
* the first write of the replay, and the first write after an action, go alone, at their own sim
  time, so the write that finds a server down, the write that crashes the writer and the first write
  after a recovery happen exactly when they did bar by bar (the health changes and outage records
  keep their times);
* no write inside a planned outage window is merged (the writer is degraded then: each write is an
  attempt it buffers, with its heartbeats);
* a merged write holds at most ``limit`` fills.

The fills come out in the same order, each exactly once; only the number of writes (and so of the
coalesced marks, one per write while both servers answer) changes.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import TypeVar

from stress_pipeline.faults.plan import FaultAction

_T = TypeVar("_T")


def coalesce_writes(
    writes: Iterable[tuple[int, Sequence[_T]]], actions: Sequence[FaultAction], limit: int
) -> Iterator[tuple[int, list[_T]]]:
    """``writes`` (sim time, fills), in non-decreasing time, merged as the module docstring says."""
    if limit < 1:
        raise ValueError(f"limit must be at least 1 fill per write, got {limit}")
    times = sorted({action.at_ns for action in actions})
    outages = [(a.begin_ns, a.end_ns) for a in actions if a.phase == "begin" and a.target is not None]
    cursor = 0  # the first action time not reached yet
    group: list[_T] = []
    group_ns = 0
    group_alone = False
    last_ns: int | None = None
    for now_ns, fills in writes:
        if last_ns is not None and now_ns < last_ns:
            raise ValueError(f"writes out of time order: {now_ns} after {last_ns}")
        fired = last_ns is None  # the first write goes alone: the health timeline starts at it
        last_ns = now_ns
        while cursor < len(times) and times[cursor] <= now_ns:  # actions in (previous write, this one]
            cursor += 1
            fired = True
        alone = fired or any(begin <= now_ns < end for begin, end in outages)
        if group and (alone or group_alone or len(group) + len(fills) > limit):
            yield group_ns, group
            group = []
        if not group:
            group_alone = alone
        group.extend(fills)  # a list of our own: a yielded one is never touched again
        group_ns = now_ns
    if group:
        yield group_ns, group


__all__ = ["coalesce_writes"]
