"""Fault schedules in sim time: when each state-layer fault of a scenario begins and ends.

A scenario lists its faults as typed ``FaultSpec`` (one model per kind, see
:mod:`stress_pipeline.scenarios.model`), each with its window in sim time (``window_ns``, the one rule
the exchange simulator and the event log use too). The replay loop that drives the state layer works in
sim nanoseconds, so :class:`FaultPlan` turns the specs into one ordered list of begin/end actions and
hands out the ones that fell due (:meth:`FaultPlan.due`) as sim time advances. The kinds:

* ``redis_down``, ``postgres_down``: server outages; the loop begins and ends a
  :func:`~stress_pipeline.faults.servers.outage` of the target on the actions.
* ``writer_crash``: the writer dies at a named point of its write path (``params.point``, one of
  ``CRASH_POINTS``), instantaneously (an empty window); the writer asks :meth:`FaultPlan.take_crash`
  at that point, which fires once per fault, at the first write at or after ``at_s``.
* ``duplicate_fills`` (``params.rate``: probability a fill is delivered twice) and
  ``out_of_order_fills`` (``params.window``: fills are permuted within blocks of that many): delivery
  faults on the fills whose ``ts_ns`` falls in the window, applied by the pure functions
  :func:`duplicate` and :func:`shuffle_window` (or all at once by :meth:`FaultPlan.deliver`).

The exchange kinds (exchange_outage, rate_limit, latency_spike) are modelled by the exchange simulator
and left out. Randomness comes from a generator per fault seeded by (plan seed, fault index), so the
same scenario and seed always deliver the same stream, whatever else the run does.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, TypeVar, get_args

import numpy as np
from pydantic import BaseModel

from stress_pipeline.scenarios.fault_model import (
    CrashPoint,
    DuplicateFillsFault,
    FaultBase,
    FaultSpec,
    OutOfOrderFillsFault,
    WriterCrashFault,
    parse_faults,
)

OUTAGE_TARGETS = {"redis_down": "redis", "postgres_down": "postgres"}
DELIVERY_KINDS = ("duplicate_fills", "out_of_order_fills")
STATE_KINDS = ("redis_down", "postgres_down", "writer_crash", *DELIVERY_KINDS)
#: Where in its write path the writer can be made to crash.
CRASH_POINTS: tuple[str, ...] = get_args(CrashPoint)

Phase = Literal["begin", "end"]
_T = TypeVar("_T")


class _Timed(Protocol):
    ts_ns: int


_F = TypeVar("_F", bound=_Timed)


@dataclass(frozen=True)
class FaultAction:
    """The begin or end of one fault, at ``at_ns`` of sim time; ``index`` is the fault's position in
    the scenario's list (identity and tie-break), ``begin_ns``/``end_ns`` its whole window."""

    at_ns: int
    phase: Phase
    kind: str
    index: int
    begin_ns: int
    end_ns: int
    spec: FaultSpec

    @property
    def params(self) -> BaseModel:
        """The fault's typed parameters (``spec.params``)."""
        return self.spec.params

    @property
    def target(self) -> str | None:
        """``"redis"`` / ``"postgres"`` for an outage, else None."""
        return OUTAGE_TARGETS.get(self.kind)

    @property
    def crash_point(self) -> str | None:
        return self.spec.params.point if isinstance(self.spec, WriterCrashFault) else None


class FaultPlan:
    """The ordered begin/end actions of a scenario's state-layer faults, and a cursor over them."""

    def __init__(self, actions: Iterable[FaultAction], *, seed: int = 0):
        self.actions = tuple(sorted(actions, key=_order))
        self.seed = int(seed)
        self._cursor = 0
        self._crashed: set[int] = set()

    @classmethod
    def from_scenario(
        cls,
        faults: Sequence[FaultBase | Mapping],
        start_ns: int,
        *,
        seed: int = 0,
        kinds: Sequence[str] = STATE_KINDS,
    ) -> FaultPlan:
        """The plan of ``faults`` (specs or mappings as in a stress pack) timed from ``start_ns`` (the
        first bar, as every fault window is). A bad fault fails here, naming it and the field."""
        actions = []
        for index, spec in enumerate(parse_faults(faults)):
            if spec.kind not in kinds:
                continue
            begin, end = spec.window_ns(start_ns)
            actions += [
                FaultAction(begin, "begin", spec.kind, index, begin, end, spec),
                FaultAction(end, "end", spec.kind, index, begin, end, spec),
            ]
        _reject_overlapping_outages(actions)
        return cls(actions, seed=seed)

    # ------------------------------------------------------------------------------------ driving

    def due(self, now_ns: int) -> list[FaultAction]:
        """The actions at or before ``now_ns`` not handed out yet, in order (each exactly once)."""
        start = self._cursor
        while self._cursor < len(self.actions) and self.actions[self._cursor].at_ns <= now_ns:
            self._cursor += 1
        return list(self.actions[start : self._cursor])

    @property
    def pending(self) -> tuple[FaultAction, ...]:
        return self.actions[self._cursor :]

    @property
    def reorder_window(self) -> int:
        """The widest out-of-order delivery window of the plan (0: fills arrive in order)."""
        windows = [a.spec.params.window for a in self.actions if isinstance(a.spec, OutOfOrderFillsFault)]
        return max(windows, default=0)

    def reset(self) -> None:
        """Start over: every action is due again and every crash armed again (a replay from scratch)."""
        self._cursor = 0
        self._crashed.clear()

    def active(self, kind: str, now_ns: int) -> list[FaultAction]:
        """The begin actions of the faults of ``kind`` whose window [begin, end) holds ``now_ns``."""
        return [a for a in self.actions if a.phase == "begin" and a.kind == kind and a.begin_ns <= now_ns < a.end_ns]

    def take_crash(self, point: str, now_ns: int) -> FaultAction | None:
        """The writer_crash fault at ``point`` due at ``now_ns`` and not taken yet (then it is taken),
        else None. The writer calls this at ``point`` on every write and crashes when it gets one."""
        if point not in CRASH_POINTS:
            raise ValueError(f"unknown crash point {point!r}; expected one of {', '.join(CRASH_POINTS)}")
        for action in self.actions:
            if (
                action.phase == "begin"
                and action.crash_point == point
                and action.at_ns <= now_ns
                and action.index not in self._crashed
            ):
                self._crashed.add(action.index)
                return action
        return None

    # ------------------------------------------------------------------------------------ delivery

    def rng(self, action: FaultAction) -> np.random.Generator:
        """A fresh generator for one fault, the same for the same plan seed and fault."""
        return np.random.default_rng([self.seed, action.index])

    def deliver(self, fills: Sequence[_F]) -> list[_F]:
        """``fills`` (in exchange order) as the writer receives them under the delivery faults: each
        fault applies to the span of fills whose ``ts_ns`` lies in its window, in the plan's order."""
        out = list(fills)
        for action in self.actions:
            if action.phase != "begin" or action.kind not in DELIVERY_KINDS:
                continue
            inside = [i for i, fill in enumerate(out) if action.begin_ns <= fill.ts_ns < action.end_ns]
            if not inside:
                continue
            lo, hi = inside[0], inside[-1] + 1
            rng = self.rng(action)
            if isinstance(action.spec, DuplicateFillsFault):
                out[lo:hi] = duplicate(out[lo:hi], action.spec.params.rate, rng)
            elif isinstance(action.spec, OutOfOrderFillsFault):
                out[lo:hi] = shuffle_window(out[lo:hi], action.spec.params.window, rng)
        return out


def duplicate(fills: Sequence[_T], rate: float, rng: np.random.Generator) -> list[_T]:
    """Every fill, each followed by an identical copy with probability ``rate`` (a redelivery: same
    fill id, so the same idempotency key)."""
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"rate must be in [0, 1], got {rate!r}")
    items = list(fills)
    twice = rng.random(len(items)) < rate
    out: list[_T] = []
    for item, again in zip(items, twice, strict=True):
        out.append(item)
        if again:
            out.append(item)
    return out


def shuffle_window(fills: Sequence[_T], window: int, rng: np.random.Generator) -> list[_T]:
    """Every fill, permuted within consecutive blocks of ``window``: none moves by ``window`` or more."""
    if int(window) != window or window < 1:
        raise ValueError(f"window must be an integer >= 1, got {window!r}")
    items = list(fills)
    out: list[_T] = []
    for start in range(0, len(items), int(window)):
        block = items[start : start + int(window)]
        out.extend(block[i] for i in rng.permutation(len(block)))
    return out


# ------------------------------------------------------------------------------------------- helpers


def _order(action: FaultAction) -> tuple[int, int, int, int]:
    """By time; at equal times the faults that end come first (windows are [begin, end)), except that
    a zero-length fault begins before it ends."""
    ends_first = action.phase == "end" and action.end_ns > action.begin_ns
    return action.at_ns, 0 if ends_first else 1, action.index, 0 if action.phase == "begin" else 1


def _where(spec: FaultSpec) -> str:
    return f"fault {spec.kind} at {spec.at_s} s"


def _reject_overlapping_outages(actions: list[FaultAction]) -> None:
    """Two outages of one server at once would end it twice; refuse the plan instead."""
    for kind in OUTAGE_TARGETS:
        begins = sorted((a for a in actions if a.kind == kind and a.phase == "begin"), key=lambda a: a.begin_ns)
        for previous, following in itertools.pairwise(begins):
            if following.begin_ns < previous.end_ns:
                raise ValueError(f"{_where(following.spec)}: overlaps the previous {kind} fault")


__all__ = [
    "CRASH_POINTS",
    "DELIVERY_KINDS",
    "OUTAGE_TARGETS",
    "STATE_KINDS",
    "FaultAction",
    "FaultPlan",
    "duplicate",
    "shuffle_window",
]
