"""Data corruption: the bad data a market feed really delivers, planted where the quality suite must see it.

A trading system has to survive bad input, and the pipeline's data-quality suite
(:func:`stress_pipeline.market.quality.validate_bars`) has to stop it. This stress plants each kind of
bad data at known rows, flags them ``corrupted`` (and ``stressed``), and is built so that the suite
reports every one of them; the tests hold it to that.

Within the window ``[start, start + duration_bars)`` of each symbol, ``round(corruption_pct *
duration_bars)`` rows (at least one; Python's ``round``) are corrupted, split over the listed types as
evenly as possible (the seed picks which types get one more), at positions drawn from the seed
independently per symbol. No two corruptions touch the same or adjacent rows, so none masks another:
each keeps a clean row on either side.

=============  ===============================================================  ===========================
type           what the feed delivers (the corrupted row)                       the check that reports it
=============  ===============================================================  ===========================
nan            one price (open, high, low or close, by the seed) is NaN         ``not_null:<price>``
spike          a bad tick: one price x or / a factor of 5 to 20 (log-uniform)   ``no_price_spikes``
duplicate      the row is sent twice: an identical copy follows it (the copy    ``ts_unique``,
               is the corrupted row)                                            ``ts_strictly_increasing``
stale          the feed publishes the previous bar again under this bar's       ``no_frozen_bars``
               timestamp: open, high, low, close and volume are the previous
               row's (spread and flags are its own)
out_of_order   the row arrives after the next one (the two swap places); the    ``ts_strictly_increasing``
               late row is the corrupted one
gap            1 to 5 consecutive bars are lost; the first row after the gap    ``gap_ratio``
               is flagged
=============  ===============================================================  ===========================

``gap_ratio`` only fails when the gap ratio exceeds ``max_gap_ratio``: validate stressed bars with
``max_gap_ratio=gap_ratio(base["ts"])``, the ratio of the bars the stress was applied to, so that any
bar removed fails it. A stale row is reported only while the previous bar traded (volume > 0): a
repeated bar without volume is indistinguishable from a quiet minute (never the case in generated bars).

Duplicates add rows and gaps remove them: the result has new ``offsets``. It is built with index arrays
(a permutation for the swaps, ``np.repeat`` with counts 2 for duplicates and 0 for lost bars) and one
gather per array, never by editing rows one at a time. Rows that only move (the row an out-of-order bar
jumps over) or are copied (a duplicate's original) keep their values and flags.

The result gives, per symbol, ``windows`` (the first and last corrupted row) and ``pre_shock_ns`` (the bar
before the window); no ``expected_drop``. A window too short for the requested number of separated
corruptions raises :class:`CorruptionPlanError`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stress_pipeline.scenarios.arrays import PRICE_FIELDS, BarArrays, array_field_names
from stress_pipeline.scenarios.result import StressResult
from stress_pipeline.scenarios.transforms import register
from stress_pipeline.scenarios.transforms.path_factor import ragged_rows
from stress_pipeline.scenarios.windows import WindowError, resolve_starts

__all__ = [
    "CORRUPTION_TYPES",
    "MAX_GAP_BARS",
    "SPIKE_FACTOR_RANGE",
    "CorruptionPlan",
    "CorruptionPlanError",
    "corruption_count",
    "data_corruption",
    "plan_corruption",
]

CORRUPTION_TYPES = ("nan", "spike", "duplicate", "stale", "out_of_order", "gap")
NAN, SPIKE, DUPLICATE, STALE, OUT_OF_ORDER, GAP = range(len(CORRUPTION_TYPES))
SPIKE_FACTOR_RANGE = (5.0, 20.0)
"""A bad tick multiplies or divides one price by a factor in this range: |log| >= 1.61, far beyond the
quality suite's spike threshold (1.0), so it is caught wherever the clean prices are."""
MAX_GAP_BARS = 5
_STREAM = 0xDA7A  # keys the corruption stream apart from the window draw of the same seed


class CorruptionPlanError(WindowError):
    """The window cannot hold the requested corruptions with a clean row between any two."""


@dataclass(frozen=True)
class CorruptionPlan:
    """Where each symbol's corruptions go: ``(n_symbols, count)`` matrices, one column per corruption.

    ``rows`` are offsets from the window start of the first row a corruption touches: the corrupted row
    itself, the row that is duplicated, the late row of an out-of-order pair, the first lost bar of a gap
    (whose flagged row is ``rows + gap_bars``). ``price_field`` indexes ``PRICE_FIELDS`` (nan, spike);
    ``factor`` is the spike multiplier; ``gap_bars`` the bars lost (0 but for gaps).
    """

    kinds: np.ndarray  # int8 codes into CORRUPTION_TYPES
    rows: np.ndarray  # int64
    price_field: np.ndarray  # int8
    factor: np.ndarray  # float64
    gap_bars: np.ndarray  # int64


@register("data_corruption")
def data_corruption(scenario, bars: BarArrays, segments: np.ndarray) -> StressResult:
    """Corrupt ``round(corruption_pct * duration_bars)`` separated rows of each symbol's window."""
    p = scenario.parameters
    starts = resolve_starts(scenario, bars, segments, p.duration_bars)
    plan = plan_corruption(p.corruption_types, p.corruption_pct, p.duration_bars, len(segments), scenario.seed)
    rows = starts[:, None] + plan.rows
    layout = _layout(bars, plan, rows)
    if layout is None:
        arrays = bars.copy_arrays(*PRICE_FIELDS, "volume", "stressed", "corrupted")
        marked = _corrupt_values(arrays, bars, plan, rows, lambda r: r)
        out = bars.replace(**arrays)
    else:
        arrays = {name: values[layout.source] for name, values in _fields(bars).items()}
        out = BarArrays(symbols=bars.symbols, offsets=layout.offsets, **arrays)
        marked = _corrupt_values(arrays, bars, plan, rows, layout.position.__getitem__)
        marked = np.concatenate([marked, layout.copies])
        arrays["corrupted"][layout.copies] = True
        arrays["stressed"][layout.copies] = True
    return StressResult(
        bars=out,
        windows=_windows(out, marked, segments),
        pre_shock_ns={bars.symbols[s]: int(t) for s, t in zip(segments, bars.ts[starts - 1], strict=True)},
    )


def corruption_count(corruption_pct: float, duration_bars: int) -> int:
    """How many rows of each symbol's window are corrupted: ``round(pct * bars)``, at least one."""
    return max(1, round(corruption_pct * duration_bars))


def plan_corruption(
    types: tuple[str, ...], corruption_pct: float, duration_bars: int, n_symbols: int, seed: int
) -> CorruptionPlan:
    """Draw the kinds, positions and details of every corruption, for all symbols at once.

    Each symbol gets the same number of each kind (``count // len(types)``, plus one for
    ``count % len(types)`` kinds chosen by the seed), in its own random order and at its own positions.
    A corruption occupies one row, two for an out-of-order pair, and the lost bars plus the flagged row
    for a gap (1 to 5 lost bars; the last gaps are shortened when the window is tight); one clean row
    separates any two. The free rows are spread uniformly (a Dirichlet split, floored) before, between
    and after the corruptions.
    """
    rng = np.random.default_rng([seed, _STREAM])
    count = corruption_count(corruption_pct, duration_bars)
    codes = np.array([CORRUPTION_TYPES.index(t) for t in types], dtype=np.int8)
    per_type = np.full(len(codes), count // len(codes))
    per_type[rng.permutation(len(codes))[: count % len(codes)]] += 1
    kinds = rng.permuted(np.tile(np.repeat(codes, per_type), (n_symbols, 1)), axis=1)
    price_field = rng.integers(0, len(PRICE_FIELDS), size=kinds.shape).astype(np.int8)
    low, high = np.log(SPIKE_FACTOR_RANGE)
    factor = np.exp(rng.uniform(low, high, size=kinds.shape))
    factor = np.where(rng.random(kinds.shape) < 0.5, factor, 1.0 / factor)
    gap_bars = rng.integers(1, MAX_GAP_BARS + 1, size=kinds.shape)
    spacing = rng.exponential(size=(n_symbols, count + 1))

    is_gap = kinds == GAP
    needed = count + int(np.count_nonzero(kinds[0] == OUT_OF_ORDER)) + int(np.count_nonzero(kinds[0] == GAP))
    needed += count - 1
    slack = duration_bars - needed
    if slack < 0:
        raise CorruptionPlanError(
            f"{count} corruptions of {', '.join(types)} need {needed} bars with a clean bar between any two, "
            f"but duration_bars is {duration_bars}: lower corruption_pct or lengthen duration_bars"
        )
    # Lost bars beyond the first of each gap, cut where they would not fit.
    extra = np.where(is_gap, gap_bars - 1, 0)
    extra = np.diff(np.minimum(np.cumsum(extra, axis=1), slack), axis=1, prepend=0)
    gap_bars = np.where(is_gap, 1 + extra, 0)
    free = slack - extra.sum(axis=1)

    width = 1 + (kinds == OUT_OF_ORDER) + gap_bars
    share = np.cumsum(spacing, axis=1)
    before = np.floor(share[:, :count] / share[:, -1:] * free[:, None]).astype(np.int64)
    before = np.minimum(before, free[:, None])
    taken = np.cumsum(width + 1, axis=1) - (width + 1)
    return CorruptionPlan(
        kinds=kinds, rows=before + taken, price_field=price_field, factor=factor, gap_bars=gap_bars.astype(np.int64)
    )


@dataclass(frozen=True)
class _Layout:
    """The rows of the result: ``source`` row of each, where each source row landed, the copies."""

    source: np.ndarray  # result row -> row of the input bars
    position: np.ndarray  # input row -> its (first) result row; meaningless for lost bars
    copies: np.ndarray  # result rows that are duplicate copies
    offsets: np.ndarray


def _layout(bars: BarArrays, plan: CorruptionPlan, rows: np.ndarray) -> _Layout | None:
    """Swaps, copies and losses as index arrays; ``None`` when no row moves (nan, spike, stale only)."""
    late = rows[plan.kinds == OUT_OF_ORDER]
    copied = rows[plan.kinds == DUPLICATE]
    gaps = plan.kinds == GAP
    if not (late.size or copied.size or gaps.any()):
        return None
    order = np.arange(bars.rows, dtype=np.int64)
    order[late], order[late + 1] = late + 1, late  # a product of disjoint swaps: its own inverse
    counts = np.ones(bars.rows, dtype=np.int64)
    counts[copied] = 2
    counts[ragged_rows(rows[gaps], plan.gap_bars[gaps])] = 0
    ordered_counts = counts[order]
    source = np.repeat(order, ordered_counts)
    ends = np.cumsum(ordered_counts)
    position = (ends - ordered_counts)[order]
    ends_by_row = np.concatenate([[0], np.cumsum(counts)])
    return _Layout(
        source=source,
        position=position,
        copies=position[copied] + 1,
        offsets=ends_by_row[bars.offsets].astype(np.int64),
    )


def _fields(bars: BarArrays) -> dict[str, np.ndarray]:
    return {name: getattr(bars, name) for name in array_field_names() if getattr(bars, name) is not None}


def _corrupt_values(
    arrays: dict[str, np.ndarray], bars: BarArrays, plan: CorruptionPlan, rows: np.ndarray, place
) -> np.ndarray:
    """Write the NaNs, bad ticks and stale bars into ``arrays``; flag them, the late out-of-order rows
    and the rows after gaps; return the flagged rows of the result.

    ``rows`` are rows of the input bars and ``place`` maps them to rows of the result (the identity when
    no row moved). Values are read from the input bars: a stale bar's previous row is clean there.
    """
    flagged = []
    for kind in (NAN, SPIKE):
        where = plan.kinds == kind
        source, fields, factor = rows[where], plan.price_field[where], plan.factor[where]
        for f, name in enumerate(PRICE_FIELDS):
            chosen = fields == f
            values = np.nan if kind == NAN else getattr(bars, name)[source[chosen]] * factor[chosen]
            arrays[name][place(source[chosen])] = values
        flagged.append(source)
    stale = rows[plan.kinds == STALE]
    for name in (*PRICE_FIELDS, "volume"):
        arrays[name][place(stale)] = getattr(bars, name)[stale - 1]
    gaps = plan.kinds == GAP
    flagged += [stale, rows[plan.kinds == OUT_OF_ORDER], rows[gaps] + plan.gap_bars[gaps]]
    marked = place(np.concatenate(flagged))
    arrays["corrupted"][marked] = True
    arrays["stressed"][marked] = True
    return marked


def _windows(bars: BarArrays, marked: np.ndarray, segments: np.ndarray) -> dict[str, tuple[int, int]]:
    """Per symbol, the timestamps of its first and last corrupted row (in row order)."""
    positions = np.sort(marked)
    segment = np.searchsorted(bars.offsets, positions, side="right") - 1
    _, first = np.unique(segment, return_index=True)
    last = np.searchsorted(segment, segment[first], side="right") - 1
    firsts = bars.ts[positions[first]].tolist()
    lasts = bars.ts[positions[last]].tolist()
    by_segment = dict(zip(segment[first].tolist(), zip(firsts, lasts, strict=True), strict=True))
    return {bars.symbols[s]: by_segment[int(s)] for s in segments if int(s) in by_segment}
