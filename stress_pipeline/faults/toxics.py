"""The toxics of the fault proxy, Toxiproxy's names and meanings, per direction of a connection.

``upstream`` is client to server, ``downstream`` server to client. :class:`Toxics` is the immutable set
in force on one direction; :class:`~stress_pipeline.faults.proxy.FaultProxy` replaces it whole when a
toxic is set or removed, and the links of :mod:`~stress_pipeline.faults.proxy_links` read it per chunk.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

UPSTREAM = "upstream"
DOWNSTREAM = "downstream"
DIRECTIONS = (UPSTREAM, DOWNSTREAM)
TOXICS = ("latency", "timeout", "reset_peer", "bandwidth", "slicer")

Stream = Literal["upstream", "downstream", "both"]

#: The bandwidth toxic writes at most this many seconds' worth of data at once (Toxiproxy: 100 ms).
BANDWIDTH_SLICE_S = 0.1


@dataclass(frozen=True)
class Slicer:
    average_bytes: int
    variation: int
    delay_us: float


@dataclass(frozen=True)
class Toxics:
    """The toxics of one direction. ``*_since`` are ``time.monotonic()`` stamps of when a timer toxic
    was installed: its timer runs from there, or from the connection's accept if that is later."""

    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    timeout_ms: float | None = None
    timeout_since: float = 0.0
    reset_after_ms: float | None = None
    reset_since: float = 0.0
    bandwidth_kb_per_s: float | None = None
    slicer: Slicer | None = None

    def delay_s(self, jitter_draw: float) -> float:
        """Latency of a chunk whose jitter draw (in [-1, 1]) is ``jitter_draw``."""
        return max(0.0, self.latency_ms + jitter_draw * self.jitter_ms) / 1000.0


#: The fields that switch each toxic off.
REMOVED = {
    "latency": {"latency_ms": 0.0, "jitter_ms": 0.0},
    "timeout": {"timeout_ms": None},
    "reset_peer": {"reset_after_ms": None},
    "bandwidth": {"bandwidth_kb_per_s": None},
    "slicer": {"slicer": None},
}


def directions(stream: str) -> tuple[str, ...]:
    """The directions ``stream`` names (``both``: the two)."""
    if stream == "both":
        return DIRECTIONS
    return (check_direction(stream),)


def check_direction(direction: str) -> str:
    if direction not in DIRECTIONS:
        raise ValueError(f"stream must be 'upstream', 'downstream' or 'both', got {direction!r}")
    return direction


def non_negative(**values: float) -> None:
    for name, value in values.items():
        if not value >= 0:
            raise ValueError(f"{name} must be >= 0, got {value!r}")


__all__ = [
    "BANDWIDTH_SLICE_S",
    "DIRECTIONS",
    "DOWNSTREAM",
    "REMOVED",
    "TOXICS",
    "UPSTREAM",
    "Slicer",
    "Stream",
    "Toxics",
    "check_direction",
    "directions",
    "non_negative",
]
