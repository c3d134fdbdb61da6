"""The decision flood: a decider driven at a fixed rate by an open-loop load generator.

Request k is *scheduled* at ``start + k / rate`` whatever happened to the earlier ones, and its
latency is measured from that scheduled time to the moment its decision came back. A slow decider
therefore cannot hide its queueing (the "coordinated omission" of closed-loop generators, which wait
for an answer before sending the next request and so stop measuring exactly when the system stalls):
every request that became due while a batch was being judged waits, and that wait is in its latency.
The generator sends every due request (at most ``max_batch``) to ``decide_batch`` at once, which is
how a live order gateway drains its queue.

Latencies go into an HDR-layout histogram (``drills/histogram.py``); the resident set size of the
process is sampled every ``rss_every_s`` and its least-squares slope (MB per minute) shows a leak.
Every answer is checked against the decision contract, so a decider that answers wrongly fails the
flood instead of looking fast.
"""

from __future__ import annotations

import contextlib
import gc
import math
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import psutil

from stress_pipeline.drills.histogram import LatencyHistogram
from stress_pipeline.services import redis_client
from stress_pipeline.state.risk_decisions import RiskDecisionState, RiskStackDecider
from stress_pipeline.trading.risk.decision import (
    SIDES,
    CheckedDecider,
    Decider,
    DecisionRequest,
    as_decider,
    load_decider,
)
from stress_pipeline.trading.risk.policy import RiskPolicy
from stress_pipeline.trading.risk.stack import compile_stack

#: The decision_flood table (one row), read by the certification's latency gate (``p99_ms``).
FLOOD_COLUMNS = ("rate_per_s", "seconds", "decisions", "p50_ms", "p99_ms", "p999_ms", "max_ms",
                 "rss_slope_mb_per_min")  # fmt: skip
_SPIN_NS = 200_000  # closer to the next send than this, the generator spins instead of sleeping


@dataclass(frozen=True)
class FloodResult:
    rate_per_s: float  # scheduled
    seconds: float  # scheduled duration
    decisions: int
    elapsed_s: float  # first scheduled send to last answer
    p50_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float
    rss_slope_mb_per_min: float  # NaN with fewer than 3 samples
    rss_mb: tuple[float, ...]
    batches: int
    max_batch: int
    reasons: dict[str, int] = field(default_factory=dict)  # "" = passed unchanged
    cpu_s: float = math.nan  # CPU time of this process (generator and decider client) during the load

    @property
    def achieved_per_s(self) -> float:
        return self.decisions / self.elapsed_s if self.elapsed_s > 0 else math.nan

    @property
    def cpu_us_per_decision(self) -> float:
        """The process's CPU per decision (waiting spins included): how much of a core the load needs,
        the figure that decides the tails once other processes want the same cores."""
        return self.cpu_s / self.decisions * 1e6 if self.decisions else math.nan

    def row(self) -> dict[str, float | int]:
        return {name: getattr(self, name) for name in FLOOD_COLUMNS}

    def table(self) -> pd.DataFrame:
        return validate_flood_table(pd.DataFrame([self.row()], columns=list(FLOOD_COLUMNS)))


def validate_flood_table(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` itself when it has the decision_flood shape; else a ValueError naming the column and row."""
    missing = [c for c in FLOOD_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"decision_flood: missing column(s) {', '.join(missing)}")
    if len(table) != 1:
        raise ValueError(f"decision_flood: expected one row, got {len(table)}")
    for column in FLOOD_COLUMNS:
        value = table[column].iloc[0]
        if column == "rss_slope_mb_per_min":
            if not isinstance(value, (int, float, np.number)):
                raise ValueError(f"decision_flood: column {column}, row 0: not a number ({value!r})")
            continue
        if not isinstance(value, (int, float, np.number)) or not np.isfinite(value) or value < 0:
            raise ValueError(f"decision_flood: column {column}, row 0: expected a finite number >= 0, got {value!r}")
    return table


def flood_requests(n: int, *, symbols: int = 20, seed: int = 0) -> tuple[np.ndarray, ...]:
    """(symbol index, side index, qty, price) arrays of ``n`` requests: random symbols and sides, sizes
    of 0.1..2% of a 100,000 account at prices that random-walk around each symbol's level."""
    rng = np.random.default_rng(seed)
    sym = rng.integers(0, symbols, n)
    side = rng.integers(0, 2, n)
    level = 10.0 ** rng.uniform(0, 4, symbols)
    walk = np.exp(np.cumsum(rng.normal(0, 1e-4, n)))
    price = np.round(level[sym] * walk, 6)
    qty = np.round(rng.uniform(100.0, 2_000.0, n) / price, 8)
    return sym, side, np.maximum(qty, 1e-8), price


#: Requests given rather than generated: (symbol names, then per request the symbol index, side index,
#: quantity and price), as :func:`replay_requests` builds them from a replay's bars.
FloodRequests = tuple[list[str], np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def run_flood(
    decider: Decider | object, *, rate: float, seconds: float | None, symbols: int = 20, seed: int = 0,
    max_batch: int = 512, rss_every_s: float = 0.5, clock: Callable[[], int] = time.perf_counter_ns,
    wall_ns: Callable[[], int] = time.time_ns, requests: FloodRequests | None = None,
) -> FloodResult:  # fmt: skip
    """Send ``rate * seconds`` requests at ``rate`` per second to ``decider``; see the module docstring.
    ``requests``: send these instead (``seconds`` is then their count / ``rate``)."""
    if not (rate > 0 and math.isfinite(rate)):
        raise ValueError(f"rate must be a positive number of decisions per second, got {rate!r}")
    if requests is None and not (seconds is not None and seconds > 0 and math.isfinite(seconds)):
        raise ValueError(f"seconds must be positive, got {seconds!r}")
    if max_batch < 1:
        raise ValueError(f"max_batch must be at least 1, got {max_batch}")
    checked = decider if isinstance(decider, CheckedDecider) else as_decider(decider)
    if requests is None:
        n = max(round(rate * seconds), 1)
        sym, side, qty, price = flood_requests(n, symbols=symbols, seed=seed)
        names = [f"S{i:03d}" for i in range(symbols)]
    else:
        names, sym, side, qty, price = requests
        n = len(sym)
        if not n:
            raise ValueError("no request to send: the replay holds no tradable bar")
        seconds = n / rate
    latency = np.empty(n, dtype=np.int64)
    reasons: Counter[str] = Counter()
    process = psutil.Process()
    rss_t: list[float] = []
    rss_mb: list[float] = []
    gc.collect()
    gc.freeze()  # what exists now is never scanned again: a full collection during the load stays short
    try:
        cpu0 = time.process_time()
        start = clock() + 5_000_000  # first send 5 ms from now
        wall0 = wall_ns() + 5_000_000
        scheduled = start + (np.arange(n, dtype=np.float64) * (1e9 / rate)).astype(np.int64)
        next_rss = start
        i = batches = biggest = 0
        sent_ns = scheduled - start + wall0
        while i < n:
            now = clock()
            if now < scheduled[i]:
                wait = scheduled[i] - now
                if wait > _SPIN_NS:
                    time.sleep((wait - _SPIN_NS) / 1e9)
                continue
            j = min(int(np.searchsorted(scheduled, now, side="right")), i + max_batch)
            # slices as lists, then one map: per request this costs a fraction of indexing numpy scalars
            batch = list(map(DecisionRequest, [names[s] for s in sym[i:j].tolist()],
                             [SIDES[s] for s in side[i:j].tolist()], qty[i:j].tolist(), price[i:j].tolist(),
                             sent_ns[i:j].tolist(), range(i, j)))  # fmt: skip
            answers = checked.decide_batch(batch)
            done = clock()
            latency[i:j] = done - scheduled[i:j]
            reasons.update([answer.reason for answer in answers])
            batches += 1
            biggest = max(biggest, j - i)
            i = j
            if done >= next_rss:
                rss_t.append((done - start) / 60e9)
                rss_mb.append(process.memory_info().rss / 2**20)
                next_rss = done + int(rss_every_s * 1e9)
        end = clock()
        cpu_s = time.process_time() - cpu0
    finally:
        gc.unfreeze()
    histogram = LatencyHistogram()
    histogram.record(latency)
    slope = float(np.polyfit(rss_t, rss_mb, 1)[0]) if len(rss_t) >= 3 else math.nan
    return FloodResult(
        rate_per_s=float(rate), seconds=float(seconds), decisions=n, elapsed_s=(end - start) / 1e9,
        p50_ms=histogram.percentile(50) / 1e6, p99_ms=histogram.percentile(99) / 1e6,
        p999_ms=histogram.percentile(99.9) / 1e6, max_ms=histogram.max / 1e6, rss_slope_mb_per_min=slope,
        rss_mb=tuple(rss_mb), batches=batches, max_batch=biggest, reasons=dict(reasons), cpu_s=cpu_s,
    )  # fmt: skip


def run_redis_flood(
    redis_url: str, *, rate: float, seconds: float, policy: RiskPolicy | None = None, decider: str = "",
    equity: float = 100_000.0, seed: int = 0, namespace: str = "stress-flood",
) -> FloodResult:  # fmt: skip
    """The flood against the system under test: the risk stack with its state in Redis at ``redis_url``
    (a fresh run, removed afterwards), or the user's decider at import path ``decider``."""
    if decider:
        return run_flood(load_decider(decider), rate=rate, seconds=seconds, seed=seed)
    with risk_stack_in_redis(redis_url, "flood", policy=policy, equity=equity, namespace=namespace) as stack:
        return run_flood(stack, rate=rate, seconds=seconds, seed=seed)


@contextlib.contextmanager
def risk_stack_in_redis(
    redis_url: str, prefix: str, *, policy: RiskPolicy | None, equity: float, namespace: str
) -> Iterator[RiskStackDecider]:
    """The risk stack with its state in a fresh run ``<prefix>-<id>`` in Redis at ``redis_url``, compiled
    and funded with ``equity``; the run's keys are removed afterwards."""
    client = redis_client(redis_url)
    state = RiskDecisionState(client, f"{prefix}-{uuid.uuid4().hex[:12]}", namespace=namespace)
    try:
        compile_stack()
        state.init(equity)
        yield RiskStackDecider(state, policy)
    finally:
        state.close()
        state.clear()
        client.close()


def replay_requests(bars: pd.DataFrame, *, equity: float = 100_000.0, allocation: float = 0.01) -> FloodRequests:
    """The orders a system would ask the risk stack about while a replay runs: at every tradable bar of
    every symbol (``bars``: canonical, possibly stressed; halted, corrupted or unpriced rows left out),
    in time order, one order of ``allocation`` x ``equity`` at the close, selling into a falling bar
    and buying a rising one."""
    frame = bars.sort_values(["ts", "symbol"], kind="stable")
    close = frame["close"].to_numpy(dtype=np.float64)
    keep = np.isfinite(close) & (close > 0)
    for flag in ("halted", "corrupted"):
        if flag in frame.columns:
            keep &= ~frame[flag].to_numpy(dtype=bool)
    codes, names = pd.factorize(frame["symbol"].astype(str).to_numpy()[keep])
    close = close[keep]
    falling = close < frame["open"].to_numpy(dtype=np.float64)[keep]
    side = np.where(falling, SIDES.index("SELL"), SIDES.index("BUY")).astype(np.int64)
    qty = np.round(equity * allocation / close, 8)
    return [str(n) for n in names], codes.astype(np.int64), side, np.maximum(qty, 1e-8), close


def run_replay_flood(
    redis_url: str, bars: pd.DataFrame, *, rate: float = 1_000.0, policy: RiskPolicy | None = None,
    equity: float = 100_000.0, namespace: str = "stress-flood",
) -> FloodResult:  # fmt: skip
    """The decision path's latency while a replay runs: :func:`replay_requests` of ``bars`` sent open-loop
    at ``rate`` per second to the risk stack with its state in Redis at ``redis_url`` (a fresh run, removed
    afterwards)."""
    requests = replay_requests(bars, equity=equity)
    with risk_stack_in_redis(redis_url, "replay", policy=policy, equity=equity, namespace=namespace) as stack:
        return run_flood(stack, rate=rate, seconds=None, requests=requests)
