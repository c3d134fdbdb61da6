"""Scenario faults as time windows the exchange simulator can look up.

A scenario's ``faults`` (typed ``FaultSpec``s, one model per kind) become arrays of their [start, end)
windows in nanoseconds (``FaultSpec.window_ns``, the one window rule). The exchange models three kinds:

* ``exchange_outage``: orders arriving in the window are rejected (EXCHANGE_OUTAGE) and working
  orders do not fill in bars that overlap it.
* ``rate_limit``: both request limits are multiplied by ``params.limit_mult`` (default 0: every
  request is refused until the window ends).
* ``latency_spike``: latency is multiplied by ``params.mult`` (default 10).

* ``postgres_down``: the ledger is away; the router opens or grows no position in the window
  (reduce only, reason LEDGER_DOWN) when the policy's ``risk.block_openings_when_ledger_down`` holds.
* ``kill_switch``: the KILL_SWITCH is on; the router sends no new order in the window (reason
  KILL_SWITCH), reducing ones included, and routes its targets again once it is off.

The other kinds (Redis, writer crashes, duplicate fills ...) belong to the state layer; the paper run
logs their start and end but its fills do not change.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import NamedTuple

import numpy as np
from numba import njit

from stress_pipeline.scenarios.fault_model import FaultBase, FaultSpec, LatencySpikeFault, RateLimitFault, parse_faults

MODELLED = ("exchange_outage", "rate_limit", "latency_spike", "postgres_down", "kill_switch")


class FaultWindows(NamedTuple):
    """[start, end) windows in ns, one C-contiguous (n, 2) int64 array per modelled kind, plus their
    float64 multipliers: a NamedTuple of arrays, so compiled code takes it as it is."""

    outage: np.ndarray
    rate_limit: np.ndarray
    rate_limit_mult: np.ndarray
    latency: np.ndarray
    latency_mult: np.ndarray
    ledger_down: np.ndarray
    kill_switch: np.ndarray


def as_fault_specs(faults: Iterable[FaultBase | Mapping]) -> tuple[FaultSpec, ...]:
    """Validate ``faults`` (specs or plain mappings, as in a stress pack) into typed ``FaultSpec``s."""
    return parse_faults(faults)


def fault_windows(
    faults: Iterable[FaultSpec], start_ns: int, *, outages: bool = True, rate_limits: bool = True,
    latency: bool = True, ledger: bool = True, kill_switch: bool = True,
) -> FaultWindows:
    """The windows of the modelled faults, relative to ``start_ns`` (the first bar); a switched-off
    realism source gets no windows."""
    rows: dict[str, list[tuple[int, int, float]]] = {kind: [] for kind in MODELLED}
    enabled = {"exchange_outage": outages, "rate_limit": rate_limits, "latency_spike": latency, "postgres_down": ledger,
               "kill_switch": kill_switch}  # fmt: skip
    for fault in faults:
        if fault.kind not in rows or not enabled[fault.kind]:
            continue
        begin, end = fault.window_ns(start_ns)
        if isinstance(fault, RateLimitFault):
            mult = fault.params.limit_mult
        elif isinstance(fault, LatencySpikeFault):
            mult = fault.params.mult
        else:
            mult = 1.0
        rows[fault.kind].append((begin, end, mult))
    out = {kind: _windows(rows[kind]) for kind in MODELLED}
    return FaultWindows(
        outage=out["exchange_outage"][0],
        rate_limit=out["rate_limit"][0],
        rate_limit_mult=out["rate_limit"][1],
        latency=out["latency_spike"][0],
        latency_mult=out["latency_spike"][1],
        ledger_down=out["postgres_down"][0],
        kill_switch=out["kill_switch"][0],
    )


@njit(cache=True)
def window_mult(windows: np.ndarray, mults: np.ndarray, t_ns: int) -> float:
    """The product of the multipliers of the windows holding ``t_ns`` (1 when none does)."""
    out = 1.0
    for i in range(windows.shape[0]):
        if windows[i, 0] <= t_ns < windows[i, 1]:
            out *= mults[i]
    return out


@njit(cache=True)
def in_window(windows: np.ndarray, t_ns: int) -> bool:
    for i in range(windows.shape[0]):  # noqa: SIM110 - numba compiles no generator expressions here
        if windows[i, 0] <= t_ns < windows[i, 1]:
            return True
    return False


@njit(cache=True)
def overlaps(windows: np.ndarray, begin_ns: int, end_ns: int) -> bool:
    """Whether any window meets the span (begin, end]."""
    for i in range(windows.shape[0]):  # noqa: SIM110 - numba compiles no generator expressions here
        if windows[i, 0] <= end_ns and windows[i, 1] > begin_ns:
            return True
    return False


def _windows(rows: list[tuple[int, int, float]]) -> tuple[np.ndarray, np.ndarray]:
    spans = np.ascontiguousarray(np.array([(b, e) for b, e, _ in rows], dtype=np.int64).reshape(-1, 2))
    mults = np.ascontiguousarray(np.array([m for _, _, m in rows], dtype=np.float64))
    return spans, mults
