"""Timing helpers shared by the benchmarks: best-of-N wall time, the figure least disturbed by noise."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Measurement:
    name: str
    seconds: float  # best of `repeat`
    median_seconds: float
    repeat: int
    items: int | None = None  # rows, bars, fills ... processed per call
    unit: str = "rows"

    @property
    def items_per_second(self) -> float | None:
        return None if not self.items else self.items / self.seconds

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "name": self.name,
            "best_s": round(self.seconds, 6),
            "median_s": round(self.median_seconds, 6),
            "repeat": self.repeat,
        }
        if self.items:
            out[self.unit] = self.items
            out[f"{self.unit}_per_s"] = round(self.items_per_second or 0.0)
        return out


def measure(name: str, fn: Callable[[], object], *, repeat: int = 5, items: int | None = None, unit: str = "rows"):
    """Call ``fn`` once to warm up, then ``repeat`` times; keep the best and the median."""
    fn()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    times.sort()
    return Measurement(name, times[0], times[len(times) // 2], repeat, items, unit)


def format_measurements(measurements: list[Measurement]) -> str:
    lines = [f"{'benchmark':<44} {'best':>10} {'median':>10} {'throughput':>22}"]
    for m in measurements:
        rate = f"{m.items_per_second:,.0f} {m.unit}/s" if m.items else ""
        lines.append(f"{m.name:<44} {_ms(m.seconds):>10} {_ms(m.median_seconds):>10} {rate:>22}")
    return "\n".join(lines)


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms" if seconds < 10 else f"{seconds:.1f} s"
