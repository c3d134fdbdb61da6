"""Monte Carlo scenarios: ``n_paths`` synthetic futures of ``horizon_bars`` bars for each symbol.

A single stressed history tests one story; many plausible futures show how often a strategy breaks.

Where the paths start. Every path of a symbol starts from the close of its *anchor* bar and its
timestamps continue from that bar at the base bar interval (``market.intervals.bar_interval_ns`` over the last
10,000 bars the model is fitted on). Without a window the anchor is the last bar of the base data, so the
paths are futures of the data set. With a window the anchor is the bar just before the window start
(the pre-shock bar), so the paths are alternative histories from that point on, next to the one that
happened. Either way the models are fitted on the bars up to and including the anchor only, never on
what follows it. Rows flagged ``corrupted``, or with non-finite or non-positive prices or a negative
volume or spread, are not used (nor is a return across them); the anchor is the last usable bar at or
before the nominal one.

Joint across symbols. The models are fitted on the timestamps all the scenario's symbols have in
common, and every symbol of path ``k`` uses the same draws of time (bootstrap) or correlated shocks
(GBM), so the cross-asset dependence of the base data survives: path ``k`` is one coherent market.

Methods (returns are log close-to-close returns of consecutive common bars):

* ``block_bootstrap``: the stationary bootstrap of Politis & Romano (1994). Each path is a chain of
  blocks of consecutive base bars with geometric lengths of mean ``block_bars``, each block starting
  at a uniformly drawn bar and wrapping around the end of the sample. A generated bar takes its whole
  relative shape from the sampled base bar: the return, ``high / max(open, close)``,
  ``low / min(open, close)``, the volume and the spread. Returns therefore come only from the base
  returns, with their fat tails and their volatility clustering up to the block length.
* ``gbm``: geometric Brownian motion with the mean and covariance of the base log returns per bar
  (the mean is the drift of the log price, ``mu - sigma**2 / 2`` in the usual notation). Highs and
  lows are drawn from the exact distribution of the maximum and minimum of a Brownian bridge between
  open and close with the symbol's per-bar variance; volume and spread come from a uniformly drawn
  base bar (the same bar for every symbol).

Prices: ``close = P_anchor * exp(cumsum(r))`` along each path, ``open`` is the previous close (the
anchor close for the first bar), ``high >= max(open, close)``, ``low <= min(open, close)``, all
positive. Every generated row is ``stressed``; none is ``corrupted`` or ``halted``.

Output layout. The result holds only generated bars: rows sorted by symbol, then path, then ts; one
segment per symbol of ``n_paths * horizon_bars`` rows; the ``path`` array (int32, ``0..n_paths-1``)
numbers the paths. ``windows`` spans the generated bars of each symbol and ``pre_shock_ns`` is the
anchor bar (a bar of the base data). A Monte Carlo scenario promises no drop.

Sub-scenarios. Path ``k`` is the sub-scenario :func:`path_scenario_name` ``(name, k)``, i.e.
``"<scenario name>/path-<k>"``. :func:`split_paths` splits a stressed frame (``BarArrays.to_frame``
output, with its ``path`` column) into one canonical stressed frame per path, rows in the usual
symbol-then-time order, without the ``path`` column.

Everything is vectorised over (paths x horizon) matrices; the only Python loops are over symbols.
The same seed gives the same paths.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import reduce

import numpy as np
import pandas as pd

from stress_pipeline.market.intervals import bar_interval_ns
from stress_pipeline.scenarios.arrays import BarArrays
from stress_pipeline.scenarios.result import StressResult
from stress_pipeline.scenarios.transforms import register
from stress_pipeline.scenarios.windows import WindowError, resolve_starts

# Log prices beyond this many units from 0 would over- or underflow once turned into prices and bar extremes.
_MAX_LOG_PRICE = 600.0
# No standard normal draw exceeds this in practice: with it a cheap bound spares the exact range check.
_NORMAL_BOUND = 40.0
# The bar interval is taken over the last this many common bars before the paths start.
_INTERVAL_BARS = 10_000
# Up to this many symbols, correlated shocks are mixed by a few axpy passes; beyond, one matrix product pays.
_DIRECT_MIX_MAX = 8


@register("monte_carlo")
def monte_carlo(scenario, bars: BarArrays, segments: np.ndarray) -> StressResult:
    """``n_paths`` generated paths per symbol (see the module docstring for the semantics)."""
    params = scenario.parameters
    n_paths, horizon = params.n_paths, params.horizon_bars
    fit = _fit(scenario, bars, np.asarray(segments, dtype=np.int64))
    rng = np.random.default_rng(scenario.seed)
    n_symbols, per_symbol = len(fit.symbols), n_paths * horizon
    out = _allocate(n_symbols * per_symbol)
    steps = np.arange(1, horizon + 1, dtype=np.int64) * fit.interval
    if params.method == "block_bootstrap":
        _bootstrap(fit, rng, out, n_paths, horizon, params.block_bars, scenario.name)
    else:
        _gbm(fit, rng, out, n_paths, horizon, scenario.name)
    for s in range(n_symbols):
        ts = out["ts"][s * per_symbol : (s + 1) * per_symbol].reshape(n_paths, horizon)
        np.add(steps, fit.anchor_ts[s], out=ts)
    path = np.tile(np.repeat(np.arange(n_paths, dtype=np.int32), horizon), n_symbols)
    result_bars = BarArrays(
        symbols=fit.symbols,
        offsets=np.arange(n_symbols + 1, dtype=np.int64) * per_symbol,
        stressed=np.ones(n_symbols * per_symbol, dtype=bool),
        corrupted=np.zeros(n_symbols * per_symbol, dtype=bool),
        halted=np.zeros(n_symbols * per_symbol, dtype=bool),
        path=path,
        **out,
    )
    anchors = [int(t) for t in fit.anchor_ts]
    return StressResult(
        bars=result_bars,
        windows={sym: (t + int(steps[0]), t + int(steps[-1])) for sym, t in zip(fit.symbols, anchors, strict=True)},
        pre_shock_ns=dict(zip(fit.symbols, anchors, strict=True)),
    )


def split_paths(frame: pd.DataFrame) -> dict[int, pd.DataFrame]:
    """Monte Carlo stressed bars as one frame per path (``{k: bars of path k}``), without the ``path`` column."""
    if "path" not in frame.columns:
        raise ValueError("the frame has no 'path' column: these are not Monte Carlo bars")
    return {int(k): part.drop(columns="path").reset_index(drop=True) for k, part in frame.groupby("path", sort=True)}


def path_scenario_name(name: str, path: int) -> str:
    """The sub-scenario name of one path: ``"<scenario name>/path-<k>"``."""
    return f"{name}/path-{path}"


# --------------------------------------------------------------------------------------- the fit


@dataclass(frozen=True)
class _Fit:
    """What the paths are drawn from: per symbol, one value per usable common base bar (views where possible)."""

    symbols: tuple[str, ...]
    anchor_close: np.ndarray  # (S,) starting level
    anchor_ts: np.ndarray  # (S,) int64 ns
    interval: int  # ns between bars
    returns: tuple[np.ndarray, ...]  # log close-to-close returns
    high_ratio: tuple[np.ndarray, ...]  # high / max(open, close), >= 1
    low_ratio: tuple[np.ndarray, ...]  # low / min(open, close), in (0, 1]
    volume: tuple[np.ndarray, ...]
    spread_bps: tuple[np.ndarray, ...]

    @property
    def size(self) -> int:
        return len(self.returns[0])


def _fit(scenario, bars: BarArrays, segments: np.ndarray) -> _Fit:
    symbols = tuple(bars.symbols[s] for s in segments)
    anchors = _anchor_rows(scenario, bars, segments)
    timeline, rows = _common_rows(bars, bars.offsets[segments], anchors)
    fields = [_fields(bars, r) for r in rows]
    ok = np.logical_and.reduce([_usable(f) for f in fields])
    pair = ok[1:] & ok[:-1]  # a return needs its bar and the one before
    if int(pair.sum()) < 2:
        raise WindowError(
            f"scenario '{scenario.name}': Monte Carlo needs at least 2 usable returns common to "
            f"{', '.join(symbols)} up to the start of the paths, found {int(pair.sum())}"
        )
    keep = slice(None) if pair.all() else pair  # clean data: views, no copies
    shapes = [_bar_shape(f, keep) for f in fields]
    return _Fit(
        symbols=symbols,
        anchor_close=bars.close[anchors],
        anchor_ts=bars.ts[anchors],
        interval=_interval(timeline),
        **{name: tuple(shape[name] for shape in shapes) for name in shapes[0]},
    )


def _interval(timeline: np.ndarray) -> int:
    """The bar interval (the market's one rule) of the last bars of the fit (ns); one minute if none."""
    return bar_interval_ns(timeline[-_INTERVAL_BARS:])


def _anchor_rows(scenario, bars: BarArrays, segments: np.ndarray) -> np.ndarray:
    """Row of each symbol's anchor bar: the last usable bar before the window, or of the data."""
    first = bars.offsets[segments]
    if scenario.window is None:
        anchors = bars.offsets[segments + 1] - 1
    else:
        anchors = resolve_starts(scenario, bars, segments, 1, warmup_bars=0) - 1
    for i in np.flatnonzero(anchors >= first):  # one bar checked per symbol; a walk back only when it is bad
        if not _usable(_fields(bars, slice(int(anchors[i]), int(anchors[i]) + 1)))[0]:
            usable = np.flatnonzero(_usable(_fields(bars, slice(int(first[i]), int(anchors[i]) + 1))))
            anchors[i] = first[i] + usable[-1] if len(usable) else -1
    bad = np.flatnonzero(anchors < first)
    if len(bad):
        symbol = bars.symbols[int(segments[bad[0]])]
        raise WindowError(f"scenario '{scenario.name}': {symbol} has no usable bar to start the paths from")
    return anchors


def _common_rows(bars: BarArrays, first: np.ndarray, anchors: np.ndarray) -> tuple[np.ndarray, list]:
    """The timestamps every symbol has up to its anchor, and each symbol's rows at them.

    Symbols sharing one time axis (the usual case) get slices, so the fit works on views; otherwise
    the common timestamps are looked up in each symbol's history.
    """
    histories = [bars.ts[f : a + 1] for f, a in zip(first, anchors, strict=True)]
    if all(len(h) == len(histories[0]) and np.array_equal(h, histories[0]) for h in histories[1:]):
        return histories[0], [slice(int(f), int(a) + 1) for f, a in zip(first, anchors, strict=True)]
    common = reduce(np.intersect1d, histories)
    return common, [f + np.searchsorted(h, common) for f, h in zip(first, histories, strict=True)]


def _fields(bars: BarArrays, rows) -> dict[str, np.ndarray]:
    names = ("open", "high", "low", "close", "volume", "spread_bps", "corrupted")
    return {name: getattr(bars, name)[rows] for name in names}


def _usable(fields: dict[str, np.ndarray]) -> np.ndarray:
    """Bars a model may learn from: not corrupted, prices finite and positive, volume and spread finite, >= 0."""
    ok = ~fields["corrupted"]
    for name in ("open", "high", "low", "close"):
        ok &= (fields[name] > 0) & (fields[name] < np.inf)  # NaN fails both comparisons
    for name in ("volume", "spread_bps"):
        ok &= (fields[name] >= 0) & (fields[name] < np.inf)
    return ok


def _bar_shape(fields: dict[str, np.ndarray], keep) -> dict[str, np.ndarray]:
    """One symbol's return and relative bar shape at each kept bar (bar k's return is close k / close k-1)."""
    bar = {name: fields[name][1:][keep] for name in ("open", "high", "low", "close", "volume", "spread_bps")}
    body_high, body_low = np.maximum(bar["open"], bar["close"]), np.minimum(bar["open"], bar["close"])
    np.divide(bar["high"], body_high, out=body_high)
    np.divide(bar["low"], body_low, out=body_low)
    return {
        "returns": np.log(bar["close"] / fields["close"][:-1][keep]),
        "high_ratio": np.maximum(body_high, 1.0, out=body_high),
        "low_ratio": np.minimum(body_low, 1.0, out=body_low),
        "volume": bar["volume"],
        "spread_bps": bar["spread_bps"],
    }


# ---------------------------------------------------------------------------------- the generators


def _allocate(rows: int) -> dict[str, np.ndarray]:
    """The output arrays as rows of one block: a single large allocation gets transparent huge pages and
    costs a fraction of the page faults of seven separate ones (the difference is most of the time at
    a few hundred thousand bars)."""
    block = np.empty((7, rows))
    out = {name: block[i] for i, name in enumerate(("open", "high", "low", "close", "volume", "spread_bps"))}
    out["ts"] = block[6].view(np.int64)
    return out


def _views(out: dict[str, np.ndarray], s: int, n_paths: int, horizon: int) -> dict[str, np.ndarray]:
    """Symbol ``s``'s (paths x horizon) block of every float output array."""
    size = n_paths * horizon
    return {
        name: array[s * size : (s + 1) * size].reshape(n_paths, horizon) for name, array in out.items() if name != "ts"
    }


def _bootstrap(fit: _Fit, rng, out, n_paths: int, horizon: int, block_bars: int, name: str) -> None:
    source = _stationary_bootstrap_positions(rng, n_paths, horizon, fit.size, block_bars)
    scratch = np.empty((n_paths, horizon))
    for s in range(len(fit.symbols)):
        v = _views(out, s, n_paths, horizon)
        # mode="wrap" maps a position past the end of the sample back to its start, at no extra cost
        np.take(fit.returns[s], source, out=v["close"], mode="wrap")
        np.take(fit.high_ratio[s], source, out=v["high"], mode="wrap")
        np.take(fit.low_ratio[s], source, out=v["low"], mode="wrap")
        np.take(fit.volume[s], source, out=v["volume"], mode="wrap")
        np.take(fit.spread_bps[s], source, out=v["spread_bps"], mode="wrap")
        bound = horizon * float(np.abs(fit.returns[s]).max())
        _prices_from_returns(v, float(fit.anchor_close[s]), scratch, bound, f"scenario '{name}': {fit.symbols[s]}")


def _stationary_bootstrap_positions(
    rng: np.random.Generator, n_paths: int, horizon: int, n_source: int, block_bars: float
) -> np.ndarray:
    """(paths x horizon) positions in the sample, to be read modulo ``n_source`` (blocks wrap around).

    Blocks have geometric lengths (mean ``block_bars``) drawn over all paths end to end; a path start
    always opens a new block, which by the memorylessness of the geometric law leaves each path an
    exact stationary bootstrap. Each block starts at a uniformly drawn sample bar.
    """
    total = n_paths * horizon
    p = 1.0 / block_bars
    ends = np.cumsum(rng.geometric(p, size=int(total * p * 1.1) + 16))
    while ends[-1] < total:  # rare: the first draw fell short
        ends = np.concatenate([ends, ends[-1] + np.cumsum(rng.geometric(p, size=int(total * p * 0.2) + 16))])
    new_block = np.zeros(total, dtype=bool)
    new_block[0] = True
    new_block[ends[ends < total]] = True
    new_block[::horizon] = True
    starts = np.flatnonzero(new_block)
    lengths = np.diff(starts, append=total)
    first_bar = rng.integers(0, n_source, size=len(starts))
    positions = np.repeat(first_bar - starts, lengths) + np.arange(total)
    return positions.reshape(n_paths, horizon)


def _gbm(fit: _Fit, rng, out, n_paths: int, horizon: int, name: str) -> None:
    n_symbols = len(fit.symbols)
    returns = np.stack(fit.returns)
    drift = returns.mean(axis=1)
    cov = np.atleast_2d(np.cov(returns))
    vol = np.sqrt(np.diag(cov))
    root = _covariance_root(cov)
    normals = rng.standard_normal((n_symbols, n_paths * horizon))
    mixed = root @ normals if n_symbols > _DIRECT_MIX_MAX else None
    scratch, magnitude = np.empty((n_paths, horizon)), np.empty((n_paths, horizon))
    for s in range(n_symbols):
        v = _views(out, s, n_paths, horizon)
        r = v["close"]  # the returns live in the close block until they become prices
        if mixed is None:
            _mix(root[s], normals, r.reshape(-1), scratch.reshape(-1))
        else:
            r.reshape(-1)[:] = mixed[s]
        r += drift[s]
        np.multiply(r, r, out=scratch)
        np.abs(r, out=magnitude)
        for extreme, sign in ((v["high"], 0.5), (v["low"], -0.5)):
            _bridge_excess(rng, extreme, scratch, magnitude, float(cov[s, s]), sign)
        bound = horizon * (abs(float(drift[s])) + _NORMAL_BOUND * float(vol[s]))
        _prices_from_returns(v, float(fit.anchor_close[s]), scratch, bound, f"scenario '{name}': {fit.symbols[s]}")
    source = rng.integers(0, fit.size, size=(n_paths, horizon))
    for s in range(n_symbols):
        v = _views(out, s, n_paths, horizon)
        np.take(fit.volume[s], source, out=v["volume"], mode="clip")
        np.take(fit.spread_bps[s], source, out=v["spread_bps"], mode="clip")


def _mix(weights: np.ndarray, normals: np.ndarray, out: np.ndarray, scratch: np.ndarray) -> None:
    """``out = weights @ normals`` by axpy passes: for a few symbols much cheaper than a BLAS call."""
    terms = np.flatnonzero(weights)
    if not len(terms):
        out.fill(0.0)
        return
    np.multiply(normals[terms[0]], weights[terms[0]], out=out)
    for j in terms[1:]:
        np.multiply(normals[j], weights[j], out=scratch)
        out += scratch


def _bridge_excess(rng, out: np.ndarray, squared: np.ndarray, magnitude: np.ndarray, var: float, sign: float):
    """exp(+-excess) of a Brownian bridge's maximum (sign 0.5) or minimum (-0.5) beyond the bar body.

    The maximum of a bridge from 0 to r with variance ``var`` is ``(r + sqrt(r**2 + 2 var E)) / 2``,
    E ~ Exp(1); beyond max(0, r) that is ``(sqrt(r**2 + 2 var E) - |r|) / 2 >= 0``, so the multiplier is
    >= 1 for the high and <= 1 for the low, and the bar stays consistent in floating point.
    """
    rng.standard_exponential(out=out)
    out *= 2.0 * var
    out += squared
    np.sqrt(out, out=out)
    out -= magnitude
    out *= sign
    np.exp(out, out=out)


def _covariance_root(cov: np.ndarray) -> np.ndarray:
    """A matrix L with L @ L.T == cov: Cholesky, or the symmetric root when cov is singular."""
    try:
        return np.linalg.cholesky(cov)
    except np.linalg.LinAlgError:
        values, vectors = np.linalg.eigh(cov)
        return vectors * np.sqrt(np.clip(values, 0.0, None))


def _prices_from_returns(v: dict[str, np.ndarray], start: float, scratch: np.ndarray, bound: float, label: str):
    """Turn the returns in ``close`` and the high/low multipliers into OHLC prices, in place.

    ``bound`` caps how far any path's log price can move; only when it does not rule out leaving the
    float64 range are the actual extremes computed (two extra passes), and a path that leaves it raises.
    """
    close, open_, high, low = v["close"], v["open"], v["high"], v["low"]
    np.cumsum(close, axis=1, out=close)
    level = float(np.log(start))
    if abs(level) + bound > _MAX_LOG_PRICE:
        lowest, highest = level + float(close.min()), level + float(close.max())
        if lowest < -_MAX_LOG_PRICE or highest > _MAX_LOG_PRICE:
            raise ValueError(
                f"{label}: a path's log price reaches {lowest if lowest < -_MAX_LOG_PRICE else highest:.0f}, "
                "beyond what float64 prices hold; shorten horizon_bars"
            )
    np.exp(close, out=close)
    close *= start
    open_[:, 0] = start
    open_[:, 1:] = close[:, :-1]
    np.maximum(open_, close, out=scratch)
    high *= scratch
    np.minimum(open_, close, out=scratch)
    low *= scratch
