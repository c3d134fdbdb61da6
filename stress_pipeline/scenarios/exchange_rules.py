"""US exchange rules on stressed bars: limit-up/limit-down bands and market-wide circuit breakers.

A scenario on US equities or equity index futures names the rules its venue enforces
(``exchange_rules: {luld_tier: 1, circuit_breaker_index: SPY}`` in its pack); :func:`apply_rules`
lays them on the bars the transform produced, so a stress is what the market would have let trade.

Limit up / limit down (``luld_tier``; Regulation NMS plan, tier 1 = S&P 500 and Russell 1000 stocks
and some ETPs: 5% bands, tier 2 = other NMS stocks over $3: 10%). The reference price is the mean
close of the bars of the previous 5 minutes (the plan's 5-minute average price), restarted at a
reopening; the bands are the reference x (1 -+ the tier's percentage). On bars:

* no trade prints outside the bands: a bar's high and low are held inside them;
* a bar that *closes* at or beyond a band has held the limit state past the plan's 15 seconds: it
  closes at the band, and a 5-minute trading pause follows (those bars stay as rows, ``halted``, every
  price at the band, no volume);
* at the reopening the bars are the stressed path's again, so a market that kept falling reopens with
  a gap, and the reference restarts from the reopening bar.

Bands are not doubled in the first 15 and last 25 minutes of the session, and prices of $3 or less
(wider bands) are out of scope: both are documented simplifications.

Market-wide circuit breakers (``circuit_breaker_index``: the scenario's symbol that stands for the
S&P 500, e.g. SPY or MES). Declines of the index from the prior session's close: level 1 (7%) and
level 2 (13%) halt trading for 15 minutes, each at most once a session and only when reached 35
minutes or more before the session's end (before 15:25 New York); level 3 (20%) halts trading for the
rest of the session. A halt stops every symbol of the scenario (it is market-wide): their bars in the
halt keep the last close, no volume, ``halted``. A session is a run of bars without a break (a step
over 1.5 intervals), so these rules need session bars (an exchange's, not a 24/7 market's).

Rows a rule changes are flagged ``stressed``; nothing is dropped. The transform's promised drop no
longer holds where a rule held the price (the bands cap the fall), so :func:`apply_rules` leaves the
``expected_drop`` of such symbols out (the invariant check measures only promises kept by the data).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numba
import numpy as np

from stress_pipeline.scenarios.arrays import BarArrays
from stress_pipeline.scenarios.result import StressResult

MINUTE_NS = 60_000_000_000
LULD_BANDS = {1: 0.05, 2: 0.10}
LULD_REFERENCE_NS = 5 * MINUTE_NS
LULD_PAUSE_NS = 5 * MINUTE_NS
#: (decline from the prior close, halt in ns; None: the rest of the session)
MWCB_LEVELS = ((0.07, 15 * MINUTE_NS), (0.13, 15 * MINUTE_NS), (0.20, None))
MWCB_LATEST_NS = 35 * MINUTE_NS  # levels 1 and 2 halt only when reached this long before the session ends
BREAK_STEPS = 1.5  # a step over this many bar intervals ends a session


class ExchangeRuleError(ValueError):
    """A rule that the scenario's bars cannot carry (no sessions, an index symbol without bars)."""


@dataclass(frozen=True)
class RuleReport:
    """What the rules did: LULD pauses per symbol and the circuit-breaker halts (level, start ns, end ns)."""

    luld_pauses: dict[str, int]
    halts: tuple[tuple[int, int, int], ...]

    def record(self) -> dict[str, object]:
        """As plain data for the asset's metadata: halts with their level, start and end (UTC) and minutes."""
        halts = [
            {"level": level, "start": _iso(start), "end": _iso(end), "minutes": round((end - start) / MINUTE_NS, 3)}
            for level, start, end in self.halts
        ]
        return {"luld_pauses": dict(self.luld_pauses), "circuit_breaker_halts": halts}


def _iso(ns: int) -> str:
    return np.datetime_as_string(np.datetime64(int(ns), "ns"), unit="s") + "Z"


def apply_rules(
    result: StressResult, rules, interval_ns: int, scenario_name: str = ""
) -> tuple[StressResult, RuleReport]:
    """``result`` with ``rules`` (an ``ExchangeRules``: ``luld_tier``, ``circuit_breaker_index``) laid on its bars."""
    bars = result.bars
    names = ("open", "high", "low", "close", "volume", "stressed", "halted")
    arrays = {name: getattr(bars, name).copy() for name in names}
    held = np.zeros(bars.rows, dtype=bool)
    halts: list[tuple[int, int, int]] = []
    if rules.circuit_breaker_index is not None:
        halts = circuit_breaker_halts(bars, rules.circuit_breaker_index, interval_ns, scenario_name)
        for _, start, end in halts:
            held |= _freeze(arrays, bars.offsets, (bars.ts >= start) & (bars.ts < end))
    pauses: dict[str, int] = {}
    if rules.luld_tier is not None:
        counts = _luld(
            bars.ts, bars.offsets, arrays["open"], arrays["high"], arrays["low"], arrays["close"], arrays["volume"],
            arrays["stressed"], arrays["halted"], held, LULD_BANDS[rules.luld_tier],
            max(1, round(LULD_REFERENCE_NS / interval_ns)), LULD_PAUSE_NS, interval_ns,
        )  # fmt: skip
        pauses = {symbol: int(n) for symbol, n in zip(bars.symbols, counts, strict=True)}
    touched = held | (arrays["close"] != bars.close) | (arrays["low"] != bars.low) | (arrays["high"] != bars.high)
    running = np.concatenate([[0], np.cumsum(touched)])
    per_symbol = running[bars.offsets[1:]] - running[bars.offsets[:-1]]
    changed = {s for s, n in zip(bars.symbols, per_symbol.tolist(), strict=True) if n}
    expected = {s: v for s, v in result.expected_drop.items() if s not in changed}
    return replace(result, bars=bars.replace(**arrays), expected_drop=expected), RuleReport(pauses, tuple(halts))


def circuit_breaker_halts(
    bars: BarArrays, index: str, interval_ns: int, scenario_name: str = ""
) -> list[tuple[int, int, int]]:
    """The market-wide halts (level, start ns, end ns) the index symbol's bars trigger (module doc)."""
    if index not in bars.symbols:
        raise ExchangeRuleError(
            f"scenario '{scenario_name}': circuit_breaker_index {index} has no bars in the scenario"
        )
    i = bars.symbols.index(index)
    lo, hi = int(bars.offsets[i]), int(bars.offsets[i + 1])
    ts, low, close = bars.ts[lo:hi], bars.low[lo:hi], bars.close[lo:hi]
    breaks = np.flatnonzero(np.diff(ts) > BREAK_STEPS * interval_ns) + 1
    if not len(breaks):
        raise ExchangeRuleError(
            f"scenario '{scenario_name}': circuit breakers need session bars (a prior close), but the bars of {index} "
            "hold no break: a 24/7 market has no circuit breaker"
        )
    starts = np.concatenate([[0], breaks])
    ends = np.concatenate([breaks, [len(ts)]])
    halts: list[tuple[int, int, int]] = []
    for s, e in zip(starts[1:].tolist(), ends[1:].tolist(), strict=True):  # one loop step per session
        prior = close[s - 1]
        decline = 1.0 - np.minimum.accumulate(low[s:e]) / prior
        close_ns = int(ts[e - 1]) + interval_ns
        after = -1
        for level, (threshold, length) in enumerate(MWCB_LEVELS, start=1):
            hit = np.flatnonzero((decline >= threshold) & (np.arange(s, e) > after))
            if not len(hit):
                break
            k = s + int(hit[0])
            begin = int(ts[k]) + interval_ns  # the halt starts after the bar that reached the level
            if length is not None and close_ns - int(ts[k]) < MWCB_LATEST_NS:
                continue  # levels 1 and 2 do not halt late in the session
            end = close_ns if length is None else min(begin + length, close_ns)
            if end > begin:
                halts.append((level, begin, end))
                after = int(np.searchsorted(ts, end, side="left")) - 1
    return halts


def _freeze(arrays: dict[str, np.ndarray], offsets: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Hold the bars in ``mask`` at the last close before them (per symbol), volume 0, ``halted``."""
    rows = np.flatnonzero(mask)
    if not len(rows):
        return mask
    segment = np.searchsorted(offsets, rows, side="right") - 1
    first = rows == offsets[segment]
    if first.any():
        raise ExchangeRuleError("a circuit-breaker halt starts at a symbol's first bar: no close to hold")
    # The last unmasked row at or before each masked row.
    unmasked = np.where(~mask, np.arange(len(mask)), -1)
    last = np.maximum.accumulate(unmasked)[rows]
    level = arrays["close"][last]
    for name in ("open", "high", "low", "close"):
        arrays[name][rows] = level
    arrays["volume"][rows] = 0.0
    arrays["halted"][rows] = True
    arrays["stressed"][rows] = True
    return mask


@numba.njit(cache=True)
def _luld(ts, offsets, o, h, lo, c, v, stressed, halted, held, band, ref_bars, pause_ns, interval_ns):
    """Lay the LULD bands and pauses on every segment in place; the pauses per segment."""
    n_seg = len(offsets) - 1
    pauses = np.zeros(n_seg, dtype=np.int64)
    for s in range(n_seg):
        start, end = offsets[s], offsets[s + 1]
        paused_until = np.int64(-1)
        pause_level = 0.0
        window_start = start  # first row of the reference window (restarts at a reopening)
        for i in range(start, end):
            if i > start and ts[i] - ts[i - 1] > 1.5 * interval_ns:
                window_start = i  # a new session: the bands start from its opening price
            if held[i]:
                window_start = i + 1
                continue
            if ts[i] < paused_until:
                o[i] = pause_level
                h[i] = pause_level
                lo[i] = pause_level
                c[i] = pause_level
                v[i] = 0.0
                halted[i] = True
                stressed[i] = True
                window_start = i + 1
                continue
            first = max(window_start, i - ref_bars)
            if i == window_start:
                ref = o[i]
            else:
                total = 0.0
                for k in range(first, i):
                    total += c[k]
                ref = total / (i - first)
            lower = ref * (1.0 - band)
            upper = ref * (1.0 + band)
            if lo[i] < lower:
                lo[i] = lower
                stressed[i] = True
            if h[i] > upper:
                h[i] = upper
                stressed[i] = True
            if o[i] < lower or o[i] > upper:
                o[i] = min(max(o[i], lower), upper)
                stressed[i] = True
            if c[i] <= lower or c[i] >= upper:
                c[i] = lower if c[i] <= lower else upper
                lo[i] = min(lo[i], c[i])
                h[i] = max(h[i], c[i])
                stressed[i] = True
                pauses[s] += 1
                paused_until = ts[i] + interval_ns + pause_ns  # from the end of this bar, 5 minutes
                pause_level = c[i]
    return pauses
