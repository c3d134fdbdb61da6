"""A latency histogram in the HDR layout: exact for small values, a fixed relative error above.

Values are non-negative integers (nanoseconds). With ``sub_bits`` = k there are S = 2^k buckets of
width 1 for the values below S; above, each power-of-two range [2^e, 2^(e+1)) is cut into S/2 buckets
of width 2^(e-k+1). A bucket's width is at most 2/S of its lower bound, so with the default k = 8 any
reported value is within 0.79% of a recorded one (HdrHistogram's "2 significant digits"). Recording is
vectorised (``record`` takes an array); memory is a few thousand counters whatever the count.

A percentile is reported as the highest value of its bucket (HdrHistogram's "highest equivalent
value"): never below the true percentile, at most one bucket width above it. ``max`` is exact.
"""

from __future__ import annotations

import numpy as np


class LatencyHistogram:
    def __init__(self, highest: int = 2**40, sub_bits: int = 8) -> None:
        if not 1 <= sub_bits <= 16:
            raise ValueError(f"sub_bits must be within 1..16, got {sub_bits}")
        if highest < 2**sub_bits:
            raise ValueError(f"highest must be at least 2**sub_bits = {2**sub_bits}, got {highest}")
        self.sub_bits = sub_bits
        self.highest = int(highest)
        self._sub = 1 << sub_bits
        self.counts = np.zeros(int(self._index(np.array([self.highest]))[0]) + 1, dtype=np.int64)
        self.count = 0
        self.max = 0
        self.min = -1

    def _index(self, values: np.ndarray) -> np.ndarray:
        v = values.astype(np.int64)
        k, sub = self.sub_bits, self._sub
        _, exp = np.frexp(np.maximum(v, 1).astype(np.float64))
        e = exp.astype(np.int64) - 1  # floor(log2 v), exact for v < 2**53
        shift = np.maximum(e - k + 1, 0)
        top = sub + (e - k) * (sub // 2) + ((v >> shift) - sub // 2)
        return np.where(v < sub, v, top)

    def record(self, values: np.ndarray | list[int] | int) -> None:
        """Record one value or an array of them; negative or above ``highest`` values are errors."""
        v = np.atleast_1d(np.asarray(values))
        if v.size == 0:
            return
        if not np.issubdtype(v.dtype, np.integer):
            raise TypeError(f"latencies must be integers (ns), got {v.dtype}")
        lo, hi = int(v.min()), int(v.max())
        if lo < 0 or hi > self.highest:
            raise ValueError(f"latency out of range 0..{self.highest} ns: min {lo}, max {hi}")
        self.counts += np.bincount(self._index(v), minlength=self.counts.size)
        self.count += int(v.size)
        self.max = max(self.max, hi)
        self.min = lo if self.min < 0 else min(self.min, lo)

    def merge(self, other: LatencyHistogram) -> None:
        if (other.sub_bits, other.highest) != (self.sub_bits, self.highest):
            raise ValueError("histograms of different layouts cannot be merged")
        self.counts += other.counts
        self.count += other.count
        self.max = max(self.max, other.max)
        if other.min >= 0:
            self.min = other.min if self.min < 0 else min(self.min, other.min)

    def bucket_high(self, index: np.ndarray) -> np.ndarray:
        """The highest value each bucket holds."""
        i = np.asarray(index, dtype=np.int64)
        k, sub = self.sub_bits, self._sub
        e = (i - sub) // (sub // 2) + k
        shift = e - k + 1
        low = ((i - sub) % (sub // 2) + sub // 2) << np.maximum(shift, 0)
        return np.where(i < sub, i, low + (1 << np.maximum(shift, 0)) - 1)

    def percentile(self, q: float) -> int:
        """The value at or below which ``q`` percent of the recorded values lie (0 with none recorded)."""
        if not 0.0 <= q <= 100.0:
            raise ValueError(f"percentile must be within 0..100, got {q}")
        if self.count == 0:
            return 0
        rank = max(int(np.ceil(q / 100.0 * self.count)), 1)
        index = int(np.searchsorted(np.cumsum(self.counts), rank))
        return int(min(self.bucket_high(np.array([index]))[0], self.max))
