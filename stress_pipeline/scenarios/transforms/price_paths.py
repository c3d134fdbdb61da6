"""Price-path stresses: flash crashes, short shocks, volatility spikes, cascades, halts and documented episodes.

Every type moves prices through a multiplicative factor path on the base bars (see :mod:`path_factor`):
bars stay consistent, the path is continuous, and what follows the window keeps its base returns from the
level the stress leaves (a factor of 1 after a full recovery, a persistent shift otherwise). Where a type
promises a drop, the depth is solved per symbol so that the realised drop is the promised one to rounding
(:mod:`path_depth`); when the base bars already fall that far inside the window, ``flash_crash``,
``correlation_cascade``, ``mixed_custom`` and ``episode_replica`` raise :class:`InfeasibleStressError` (a
:class:`WindowError`) instead of breaking the promise (``flash_crash_lite`` does not: see below).

What each result says (``StressResult``): ``windows`` spans the stress path itself (a level shift that
persists moves and flags the later bars too, but they are not part of the window), ``pre_shock_ns`` is
the bar before the window, and ``expected_drop`` the promised drop by ``drop_measure``:

* ``flash_crash``: ``drop_pct`` from the pre-shock close to the lowest low of the window.
* ``flash_crash_lite``: ``-price_shock_pct`` for a down-shock; nothing for an up-spike (its highest high is
  exactly ``P0 * (1 + shock)`` instead). At long bar intervals a base bar may already trade below the shock's
  level (a daily low 5% under the previous close against a 3% shock): the shock cannot change that, so for
  that symbol the promise is the larger drop the bars show, and the transform does not fail.
* ``correlation_cascade``: ``drop_pct`` for the leader, ``drop_pct * correlation`` for each follower.
* ``trading_halt``: ``-gap_pct`` by ``gap_open`` (1 - reopening open / last close before the halt).
* ``opening_gap``: ``-gap_pct`` by ``gap_open`` (1 - the session's open / the prior session's close).
* ``episode_replica``: the target per symbol by its measure (``high_to_low``, or ``pre_close_to_low`` for
  ``prior_close_to_low``, the same measure under the name the results use).
* ``mixed_custom``: ``flash_crash_drop_pct`` when set.

``mixed_custom`` applies its parts on one window, in this order:

1. volatility (``volatility_multiplier`` over ``duration_bars``), as ``volatility_spike``;
2. the flash crash (``flash_crash_drop_pct``: a fall over ``duration_bars`` and a linear recovery over
   ``recovery_bars``), laid on the volatile bars, so its drop stays exact; prices only, no volume or spread
   multiplier of its own;
3. liquidity (``liquidity_drop_pct`` over ``duration_bars``): volume x (1 - drop), spread x
   (1 - drop) ** -0.5, the relation of ``liquidity_drop`` with its default elasticity;
4. spread (``spread_mult`` over ``duration_bars``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from stress_pipeline.scenarios.arrays import PRICE_FIELDS, BarArrays
from stress_pipeline.scenarios.model import LiquidityDropParams
from stress_pipeline.scenarios.result import StressResult
from stress_pipeline.scenarios.transforms import register
from stress_pipeline.scenarios.transforms.path_depth import InfeasibleStressError, solve_depth
from stress_pipeline.scenarios.transforms.path_factor import (
    copy_prices,
    ragged_rows,
    scale_prices,
    shift_tail,
    window_rows,
)
from stress_pipeline.scenarios.transforms.path_shapes import (
    crash_activity,
    crash_shape,
    episode_shape,
    open_boundaries,
    shock_decay,
)
from stress_pipeline.scenarios.transforms.volume_spread import scale_volume_spread
from stress_pipeline.scenarios.windows import WindowError, bar_interval_ns, resolve_starts

__all__ = [
    "InfeasibleStressError",
    "correlation_cascade",
    "episode_replica",
    "flash_crash",
    "flash_crash_lite",
    "lay_crash",
    "lay_volatility",
    "mixed_custom",
    "opening_gap",
    "trading_halt",
    "volatility_spike",
]

LIQUIDITY_SPREAD_ELASTICITY = LiquidityDropParams.model_fields["spread_elasticity"].default
_NS_PER_SECOND = 1_000_000_000


@register("flash_crash")
def flash_crash(scenario, bars: BarArrays, segments: np.ndarray) -> StressResult:
    """A fall of exactly ``drop_pct`` over ``duration_bars``, then a recovery; volume and spread swell."""
    p = scenario.parameters
    shape = crash_shape(p.duration_bars, p.recovery_bars, p.recovery)
    starts = resolve_starts(scenario, bars, segments, len(shape))
    arrays = copy_prices(bars, "volume", "spread_bps")
    drops = np.full(len(segments), p.drop_pct)
    lay_crash(arrays, scenario, bars, segments, starts, drops, shape)
    rows = window_rows(starts, len(shape))
    scale_volume_spread(
        arrays,
        rows,
        crash_activity(p.duration_bars, len(shape), p.recovery_bars, p.volume_mult),
        crash_activity(p.duration_bars, len(shape), p.recovery_bars, p.spread_mult),
    )
    return _result(bars.replace(**arrays), bars, segments, rows, drops)


@register("flash_crash_lite")
def flash_crash_lite(scenario, bars: BarArrays, segments: np.ndarray) -> StressResult:
    """An instantaneous shock to ``P0 * (1 + price_shock_pct)`` that fades over ``duration_sec``, any bar size.

    The shock hits at the open of the window's first bar. Bars overlapping ``[start, start + duration)``
    are altered: the path of the fading shock, taken at bar boundaries, scales opens and closes; the
    shock's extreme (``P0 * (1 + shock)``, reached at the hit) sets the first bar's low (high for an
    up-spike). A shock shorter than a bar therefore shows in the first bar's low only. The fading path is
    scaled down (never up) only as far as needed for no base extreme times the path to pass the shock's, so
    the realised drop (rise) is exactly the shock, unless a base bar already passes it on its own (see the
    module docstring).
    """
    p = scenario.parameters
    shock = float(p.price_shock_pct)
    interval = bar_interval_ns(bars)
    duration_ns = round(p.duration_sec * _NS_PER_SECOND)
    width = max(1, -(-duration_ns // interval))
    starts = resolve_starts(scenario, bars, segments, width)
    rows = window_rows(starts, width)
    decay_close = shock_decay(bars.ts[rows] + interval - bars.ts[starts][:, None], duration_ns, p.recovery_type)
    decay_open = open_boundaries(decay_close)
    level = bars.close[starts - 1] * (1.0 + shock)
    extremes = bars.low[rows] if shock < 0 else bars.high[rows]
    scale, crossed = _shock_scale(level, extremes, np.maximum(decay_open, decay_close), shock)
    side, pick = ("low", np.minimum) if shock < 0 else ("high", np.maximum)
    if width > 1:
        arrays = copy_prices(bars, "spread_bps")
        amplitude = shock * scale[:, None]
        scale_prices(arrays, rows, 1.0 + amplitude * decay_open, 1.0 + amplitude * decay_close)
    else:  # a shock within one bar moves only that bar's extreme: copy only what changes
        arrays = bars.copy_arrays(side, "stressed", "spread_bps")
    arrays[side][starts] = pick(arrays[side][starts], level)
    arrays["stressed"][starts] = True
    scale_volume_spread(arrays, rows, 1.0, p.spread_mult)
    expected = None
    if shock < 0:
        shown = 1.0 - arrays["low"][rows].min(axis=1) / bars.close[starts - 1]
        expected = np.where(crossed, shown, -shock)
    return _result(bars.replace(**arrays), bars, segments, rows, expected)


@register("volatility_spike")
def volatility_spike(scenario, bars: BarArrays, segments: np.ndarray) -> StressResult:
    """Log returns scaled by ``multiplier`` around their mean over ``duration_bars``; no drop promised."""
    p = scenario.parameters
    starts = resolve_starts(scenario, bars, segments, p.duration_bars)
    arrays = copy_prices(bars)
    lay_volatility(arrays, bars.offsets, segments, starts, p.multiplier, p.duration_bars)
    return _result(bars.replace(**arrays), bars, segments, window_rows(starts, p.duration_bars), None)


@register("mixed_custom")
def mixed_custom(scenario, bars: BarArrays, segments: np.ndarray) -> StressResult:
    """Volatility, then crash, then liquidity, then spread on one window (see the module docstring)."""
    p = scenario.parameters
    shape = None if p.flash_crash_drop_pct is None else crash_shape(p.duration_bars, p.recovery_bars, "linear")
    width = p.duration_bars if shape is None else len(shape)
    starts = resolve_starts(scenario, bars, segments, width)
    arrays = copy_prices(bars, "volume", "spread_bps")
    if p.volatility_multiplier is not None:
        lay_volatility(arrays, bars.offsets, segments, starts, p.volatility_multiplier, p.duration_bars)
    drops = None
    if shape is not None:
        drops = np.full(len(segments), p.flash_crash_drop_pct)
        lay_crash(arrays, scenario, bars, segments, starts, drops, shape)
    core = window_rows(starts, p.duration_bars)
    if p.liquidity_drop_pct is not None:
        kept = 1.0 - p.liquidity_drop_pct
        scale_volume_spread(arrays, core, kept, kept**-LIQUIDITY_SPREAD_ELASTICITY)
    if p.spread_mult is not None:
        scale_volume_spread(arrays, core, 1.0, p.spread_mult)
    return _result(bars.replace(**arrays), bars, segments, window_rows(starts, width), drops)


@register("correlation_cascade")
def correlation_cascade(scenario, bars: BarArrays, segments: np.ndarray) -> StressResult:
    """The first symbol crashes by ``drop_pct``; follower k by ``drop_pct * correlation``, its lag later.

    All symbols share the leader's window start time; a follower's crash starts ``lag`` bars after it (an
    int lag: follower k at ``k * lag``; a tuple: one lag per follower), with a linear recovery. Prices
    only: a cascade has no volume or spread parameters.
    """
    p = scenario.parameters
    shape = crash_shape(p.duration_bars, p.recovery_bars, "linear")
    n = len(segments)
    followers = np.arange(n, dtype=np.int64)
    lags = followers * p.lag_bars if isinstance(p.lag_bars, int) else np.array((0, *p.lag_bars), dtype=np.int64)
    leader = resolve_starts(scenario, bars, segments[:1], int(lags.max()) + len(shape))[0]
    starts = _rows_at(bars, segments, np.full(n, bars.ts[leader])) + lags
    _require_fit(scenario, bars, segments, starts, len(shape))
    drops = np.where(followers == 0, p.drop_pct, p.drop_pct * p.correlation)
    arrays = copy_prices(bars)
    lay_crash(arrays, scenario, bars, segments, starts, drops, shape)
    return _result(bars.replace(**arrays), bars, segments, window_rows(starts, len(shape)), drops)


@register("trading_halt")
def trading_halt(scenario, bars: BarArrays, segments: np.ndarray) -> StressResult:
    """No trading for ``halt_minutes``, then a reopening exactly ``gap_pct`` away from the last close.

    Bars starting in ``[start, start + halt)`` stay as rows, flagged ``halted``: every price at the last
    pre-halt close ``P0``, volume 0, spread unchanged. The first bar after the halt opens at
    ``P0 * (1 + gap_pct)``: it and every later bar are multiplied by ``P0 * (1 + gap_pct) / open``, a level
    shift that persists. The window spans the halt and the reopening bar.
    """
    p = scenario.parameters
    halt_ns = round(p.halt_minutes * 60 * _NS_PER_SECOND)
    span = max(1, -(-halt_ns // bar_interval_ns(bars))) + 1
    starts = resolve_starts(scenario, bars, segments, span)
    resume = _rows_at(bars, segments, bars.ts[starts] + halt_ns)
    _require_fit(scenario, bars, segments, resume, 1)
    counts = resume - starts
    halted = ragged_rows(starts, counts)
    last_close = bars.close[starts - 1]
    arrays = copy_prices(bars, "volume", "halted")
    frozen = np.repeat(last_close, counts)
    for name in PRICE_FIELDS:
        arrays[name][halted] = frozen
    arrays["volume"][halted] = 0.0
    arrays["halted"][halted] = True
    arrays["stressed"][halted] = True
    reopen = last_close * (1.0 + p.gap_pct)
    shift_tail(arrays, bars.offsets, segments, resume, reopen / bars.open[resume])
    arrays["open"][resume] = reopen  # exact, whatever the rounding of the shift
    arrays["high"][resume] = np.maximum(arrays["high"][resume], reopen)
    arrays["low"][resume] = np.minimum(arrays["low"][resume], reopen)
    windows = np.column_stack([starts, resume])
    return _result(
        bars.replace(**arrays), bars, segments, windows, np.full(len(segments), -p.gap_pct), measure="gap_open"
    )


@register("opening_gap")
def opening_gap(scenario, bars: BarArrays, segments: np.ndarray) -> StressResult:
    """An overnight shock: a session opens exactly ``gap_pct`` away from the prior session's close.

    The session is the first one opening at or after ``window.start``, the bar at ``window.offset_bars``
    (any bar, also of a 24/7 market), or one drawn from the seed among the session opens of the first
    symbol's bars (a bar after a break: a step over 1.5 intervals). Every symbol gaps at that open: its
    open bar and every later bar are multiplied by ``P0 * (1 + gap_pct) / open`` (a level that persists:
    the news is priced in), and volume and spread are multiplied by ``volume_mult`` and ``spread_mult``
    at the open, fading linearly to 1 over ``duration_bars``. Without ``window.offset_bars``, bars with no
    session open (a 24/7 market's) are an error.
    """
    p = scenario.parameters
    interval = bar_interval_ns(bars)
    first = bars.segment(int(segments[0]))
    ts = bars.ts[first]
    opens = np.flatnonzero(np.diff(ts) > 1.5 * interval) + 1  # rows (in the first symbol) that open a session
    window = scenario.window
    if not len(opens) and (window is None or window.offset_bars is None):
        raise WindowError(
            f"scenario '{scenario.name}': the bars of {bars.symbols[segments[0]]} hold no session open (no overnight "
            "break): an opening gap needs an exchange's session bars (or window.offset_bars to name the bar)"
        )
    if window is not None and window.start is not None:
        target = pd.Timestamp(window.start)
        target = (target.tz_localize("UTC") if target.tzinfo is None else target.tz_convert("UTC")).value
        later = opens[ts[opens] >= target]
        if not len(later):
            raise WindowError(f"scenario '{scenario.name}': no session opens at or after {window.start}")
        row = int(later[0])
    elif window is not None and window.offset_bars is not None:
        row = int(window.offset_bars)
    else:
        fits = opens[opens + int(p.duration_bars) <= len(ts)]
        row = int(np.random.default_rng(scenario.seed).choice(fits if len(fits) else opens))
    resume = _rows_at(bars, segments, np.full(len(segments), ts[row]))
    _require_fit(scenario, bars, segments, resume, 1)
    arrays = copy_prices(bars, "volume", "spread_bps")
    last_close = bars.close[resume - 1]
    reopen = last_close * (1.0 + p.gap_pct)
    shift_tail(arrays, bars.offsets, segments, resume, reopen / bars.open[resume])
    arrays["open"][resume] = reopen  # exact, whatever the rounding of the shift
    arrays["high"][resume] = np.maximum(arrays["high"][resume], reopen)
    arrays["low"][resume] = np.minimum(arrays["low"][resume], reopen)
    width = np.minimum(int(p.duration_bars), bars.offsets[segments + 1] - resume)
    rows = ragged_rows(resume, width)
    fade = np.concatenate([1.0 - np.arange(n) / n for n in width.tolist()])  # 1 at the open, towards 0
    arrays["volume"][rows] *= 1.0 + (p.volume_mult - 1.0) * fade
    arrays["spread_bps"][rows] *= 1.0 + (p.spread_mult - 1.0) * fade
    arrays["stressed"][rows] = True
    windows = np.column_stack([resume, resume + width - 1])
    return _result(
        bars.replace(**arrays), bars, segments, windows, np.full(len(segments), -p.gap_pct), measure="gap_open"
    )


@register("episode_replica")
def episode_replica(scenario, bars: BarArrays, segments: np.ndarray) -> StressResult:
    """A documented crash shape over ``episode_bars``, its depth solved so that the measure hits the target.

    The path's depth at each bar boundary is linear between knots; the factor is ``1 - D * depth``, laid as
    a flash crash's, and the level after the last knot persists. ``D`` is solved per symbol so that the
    measure over the episode equals the target: ``high_to_low`` = 1 - lowest low / highest high,
    ``prior_close_to_low`` = 1 - lowest low / the close before the episode.
    """
    p = scenario.parameters
    bounds = episode_shape(p.episode_bars, p.path)
    s_open, s_close = bounds[:-1], bounds[1:]
    starts = resolve_starts(scenario, bars, segments, p.episode_bars)
    rows = window_rows(starts, p.episode_bars)
    targets = _targets(p.target_drop_pct, [bars.symbols[s] for s in segments])
    arrays = copy_prices(bars)
    if p.measure == "high_to_low":
        ceiling, ceiling_shape, measure = arrays["high"][rows], np.minimum(s_open, s_close), "high_to_low"
    else:
        ceiling, ceiling_shape, measure = arrays["close"][starts - 1][:, None], 0.0, "pre_close_to_low"
    depth = solve_depth(arrays["low"][rows], np.maximum(s_open, s_close), ceiling, ceiling_shape, 1.0 - targets)
    _require(depth, scenario, bars, segments, f"the target drop ({p.measure})")
    scale_prices(arrays, rows, 1.0 - depth[:, None] * s_open, 1.0 - depth[:, None] * s_close)
    shift_tail(arrays, bars.offsets, segments, rows[:, -1] + 1, 1.0 - depth * bounds[-1])
    return _result(bars.replace(**arrays), bars, segments, rows, targets, measure=measure)


# ----------------------------------------------------------------------------- reusable stress steps


def lay_crash(
    arrays: dict[str, np.ndarray],
    scenario,
    bars: BarArrays,
    segments: np.ndarray,
    starts: np.ndarray,
    drops: np.ndarray,
    shape: np.ndarray,
) -> np.ndarray:
    """Lay the crash ``shape`` from ``starts`` on ``arrays`` (in place) so that each realises its drop.

    The drop is ``1 - min(low') / P0`` over the shape's window, ``P0`` the close before it; the depth is
    solved per symbol on the bars as they are in ``arrays`` (after earlier steps). Returns the depths.
    """
    rows = window_rows(starts, len(shape))
    s_open = open_boundaries(shape)
    pre_close = arrays["close"][starts - 1]
    depth = solve_depth(arrays["low"][rows], np.maximum(s_open, shape), pre_close[:, None], 0.0, 1.0 - drops)
    _require(depth, scenario, bars, segments, "the crash's drop from the pre-shock close")
    f_close = 1.0 - depth[:, None] * shape
    scale_prices(arrays, rows, 1.0 - depth[:, None] * s_open, f_close)
    shift_tail(arrays, bars.offsets, segments, rows[:, -1] + 1, f_close[:, -1])
    return depth


def lay_volatility(
    arrays: dict[str, np.ndarray],
    offsets: np.ndarray,
    segments: np.ndarray,
    starts: np.ndarray,
    multiplier: float,
    duration_bars: int,
) -> None:
    """Scale the window's log close returns around their mean by ``multiplier``, in place.

    ``r' = mu + m * (r - mu)``, ``mu`` the mean of the window's returns (the first from the pre-shock
    close), so the standard deviation of the returns is exactly ``m`` times the base one. Closes follow
    from the new returns, opens from the previous close's factor, and intrabar ranges scale too:
    ``high' = max(o', c') * (high / max(o, c)) ** m``, ``low' = min(o', c') * (low / min(o, c)) ** m``. The
    rest of the series keeps its returns from the level the window ends at.
    """
    if multiplier == 1.0:
        return
    rows = window_rows(starts - 1, duration_bars + 1)
    returns = np.diff(np.log(arrays["close"][rows]), axis=1)
    f_close = np.exp((multiplier - 1.0) * np.cumsum(returns - returns.mean(axis=1, keepdims=True), axis=1))
    f_open = open_boundaries(f_close, 1.0)
    window = rows[:, 1:]
    o, h, lo, c = (arrays[name][window] for name in PRICE_FIELDS)
    o2, c2 = o * f_open, c * f_close
    arrays["open"][window] = o2
    arrays["close"][window] = c2
    arrays["high"][window] = np.maximum(o2, c2) * (h / np.maximum(o, c)) ** multiplier
    arrays["low"][window] = np.minimum(o2, c2) * (lo / np.minimum(o, c)) ** multiplier
    arrays["stressed"][window] = True
    shift_tail(arrays, offsets, segments, window[:, -1] + 1, f_close[:, -1])


# ------------------------------------------------------------------------------------------ helpers


def _result(
    stressed: BarArrays,
    base: BarArrays,
    segments: np.ndarray,
    rows: np.ndarray,
    expected: np.ndarray | None,
    *,
    measure: str = "pre_close_to_low",
) -> StressResult:
    """The result: windows from the first and last column of ``rows``, the bar before as pre-shock bar."""
    names = [base.symbols[s] for s in segments]
    first, last = base.ts[rows[:, 0]].tolist(), base.ts[rows[:, -1]].tolist()
    before = base.ts[rows[:, 0] - 1].tolist()
    return StressResult(
        bars=stressed,
        windows={name: (a, b) for name, a, b in zip(names, first, last, strict=True)},
        pre_shock_ns=dict(zip(names, before, strict=True)),
        expected_drop={} if expected is None else dict(zip(names, np.asarray(expected, float).tolist(), strict=True)),
        drop_measure=measure,
    )


def _shock_scale(
    level: np.ndarray, extremes: np.ndarray, decay: np.ndarray, shock: float
) -> tuple[np.ndarray, np.ndarray]:
    """Per symbol, the largest share (<= 1) of the fading path that makes no bar cross the shock's level,
    and whether a base bar crosses it on its own.

    A bar whose base extreme is ``x`` and whose path sees ``1 + c * shock * decay`` stays on the safe side
    of the level while ``c <= (level / x - 1) / (shock * decay)``; ``(level / x - 1) / shock < 0`` means the
    base bar alone already crosses it, and then it sets no bound (nothing can keep it on the safe side).
    """
    room = (level[:, None] / extremes - 1.0) / shock
    crossing = room < 0
    bounded = (decay > 0) & ~crossing
    with np.errstate(divide="ignore", invalid="ignore"):
        caps = np.where(bounded, room / np.where(bounded, decay, 1.0), np.inf)
    return np.minimum(caps.min(axis=1), 1.0), crossing.any(axis=1)


def _targets(target: float | dict[str, float], names: list[str]) -> np.ndarray:
    if isinstance(target, dict):
        upper = {k.upper(): v for k, v in target.items()}
        return np.array([upper[name] for name in names], dtype=np.float64)
    return np.full(len(names), float(target))


def _rows_at(bars: BarArrays, segments: np.ndarray, ts_ns: np.ndarray) -> np.ndarray:
    """Per segment, the first row at or after ``ts_ns[i]`` (its end when there is none)."""
    out = np.empty(len(segments), dtype=np.int64)
    for i, segment in enumerate(segments.tolist()):
        lo, hi = int(bars.offsets[segment]), int(bars.offsets[segment + 1])
        out[i] = lo + int(np.searchsorted(bars.ts[lo:hi], ts_ns[i], side="left"))
    return out


def _require_fit(scenario, bars: BarArrays, segments: np.ndarray, starts: np.ndarray, width: int) -> None:
    """Raise :class:`WindowError` unless every window has a bar before it and ``width`` bars from its start."""
    first, end = bars.offsets[segments], bars.offsets[segments + 1]
    bad = np.flatnonzero((starts - 1 < first) | (starts + width > end))
    if bad.size:
        names = ", ".join(bars.symbols[segments[i]] for i in bad)
        raise WindowError(
            f"scenario '{scenario.name}': the window does not fit the bars of {names} "
            f"({width} bar(s) from its start and one before it are needed)"
        )


def _require(values: np.ndarray, scenario, bars: BarArrays, segments: np.ndarray, what: str) -> None:
    """Raise :class:`InfeasibleStressError` naming the symbols whose solved value is NaN."""
    bad = np.flatnonzero(np.isnan(values))
    if bad.size:
        names = ", ".join(bars.symbols[segments[i]] for i in bad)
        raise InfeasibleStressError(
            f"scenario '{scenario.name}': the base bars of {names} already move at least as far as {what} "
            "inside the window, so the stress cannot realise it exactly; choose a larger move, or another "
            "window (window or seed)"
        )
