"""The reference strategies' signal rules as compiled single passes over (T, S) arrays.

Why compiled passes and not numpy expressions: the backtest budget is 6 ms for 100 symbols x 1,440
bars including signals, and chained numpy expressions allocate a fresh 1.1 MB array per step (page
faults, cold caches): 1.3 to 1.8 ms per strategy. One pass per strategy, time outer and symbols
inner (contiguous memory), keeping only per-symbol running state, takes a tenth of that. numba
compiles each kernel on first use and caches it on disk (``cache=True``).

Every kernel is causal and prefix-stable: row t is computed from rows <= t by updates applied row
by row, so its value is bit-for-bit the same whether the input ends at t or goes on (the lookahead
guard relies on it). Before a window is full there is no signal: the weight is 0.

The position rule shared by all (:func:`_step`): an entry sets the position (+1 or -1), also when
it reverses the opposite one; otherwise an exit for the side held sets it to 0; otherwise it holds.
Entries win over exits on the same bar.
"""

from __future__ import annotations

import numpy as np
from numba import njit

FLAT_STD = 1e-9  # a rolling deviation below this fraction of the mean is a flat window: no z-score


@njit(cache=True)
def crossover_weights(close, fast, slow, band, long_only):
    """Long while mean(fast) > mean(slow) * (1 + band), short (flat if ``long_only``) while
    mean(fast) < mean(slow) * (1 - band), hold in between. The running sums are centred on row 0,
    which keeps them small: 90 days of 40,000-dollar closes lose no digits."""
    n, m = close.shape
    out = np.zeros((n, m))
    if n == 0:
        return out
    base = close[0].copy()
    sum_fast = np.zeros(m)
    sum_slow = np.zeros(m)
    state = np.zeros(m)
    for t in range(n):
        row = close[t]
        for j in range(m):
            v = row[j] - base[j]
            sum_fast[j] += v
            sum_slow[j] += v
        if t >= fast:
            old = close[t - fast]
            for j in range(m):
                sum_fast[j] -= old[j] - base[j]
        if t >= slow:
            old = close[t - slow]
            for j in range(m):
                sum_slow[j] -= old[j] - base[j]
        if t < slow - 1:
            continue
        dest = out[t]
        for j in range(m):
            fast_mean = sum_fast[j] / fast + base[j]
            slow_mean = sum_slow[j] / slow + base[j]
            up = fast_mean > slow_mean * (1.0 + band)
            down = fast_mean < slow_mean * (1.0 - band)
            state[j] = _step(state[j], up, down and not long_only, down, False)
            dest[j] = state[j]
    return out


@njit(cache=True)
def zscore_weights(close, window, entry_z, exit_z, long_only):
    """Short beyond z > entry_z, long beyond z < -entry_z (not if ``long_only``), flat once
    |z| < exit_z, hold in between; z = (close - rolling mean) / rolling sample deviation.

    The mean and the sum of squared deviations slide by Welford's updates, so rounding stays
    relative to the window's own spread, not the price level. A window flatter than FLAT_STD of its
    mean (a stale or halted feed) gives no z-score and no event."""
    n, m = close.shape
    out = np.zeros((n, m))
    mean = np.zeros(m)
    m2 = np.zeros(m)
    state = np.zeros(m)
    for t in range(n):
        row = close[t]
        if t < window:
            count = t + 1
            for j in range(m):
                delta = row[j] - mean[j]
                mean[j] += delta / count
                m2[j] += delta * (row[j] - mean[j])
        else:
            old = close[t - window]
            for j in range(m):
                previous = mean[j]
                mean[j] = previous + (row[j] - old[j]) / window
                m2[j] += (row[j] - old[j]) * (row[j] - mean[j] + old[j] - previous)
        if t < window - 1:
            continue
        dest = out[t]
        entry2 = entry_z * entry_z
        exit2 = exit_z * exit_z
        for j in range(m):
            # Compared squared, without a square root or a division: z > k  <=>  d > 0 and d^2 > k^2 var.
            var = m2[j] / (window - 1)
            flat = FLAT_STD * mean[j]
            if var > flat * flat:
                d = row[j] - mean[j]
                d2 = d * d
                stretched = d2 > entry2 * var
                back = d2 < exit2 * var
                state[j] = _step(state[j], stretched and d < 0.0, stretched and d > 0.0 and not long_only, back, back)
            dest[j] = state[j]
    return out


@njit(cache=True)
def donchian_weights(high, low, close, entry_window, exit_window, long_only):
    """Long on a close above the prior ``entry_window`` bars' highest high, short below their
    lowest low (not if ``long_only``); a long exits below the prior ``exit_window`` bars' lowest
    low, a short above their highest high.

    The four channels are rolling extremes by van Herk / Gil-Werman, streamed: blocks of ``window``
    rows anchored at row 0; a window ending at row b that is not a whole block combines the suffix
    extreme of the previous block from its first row (refilled into a scratch buffer once per
    block) with the running prefix extreme of b's block. O(T) whatever the window. The channels
    compared with the close at t are those of the window ending at t-1 ("prior" bars)."""
    n, m = close.shape
    out = np.zeros((n, m))
    nan = np.full(m, np.nan)
    entry_high, entry_low, exit_high, exit_low = nan.copy(), nan.copy(), nan.copy(), nan.copy()
    run_eh, run_el, run_xh, run_xl = np.empty(m), np.empty(m), np.empty(m), np.empty(m)
    suf_eh, suf_el = np.empty((entry_window, m)), np.empty((entry_window, m))
    suf_xh, suf_xl = np.empty((exit_window, m)), np.empty((exit_window, m))
    state = np.zeros(m)
    for t in range(n):
        row = close[t]
        dest = out[t]
        for j in range(m):  # NaN channels (not enough prior bars yet) compare False: no event
            c = row[j]
            state[j] = _step(
                state[j], c > entry_high[j], c < entry_low[j] and not long_only, c < exit_low[j], c > exit_high[j]
            )
            dest[j] = state[j]
        _advance(high, t, entry_window, True, suf_eh, run_eh, entry_high)
        _advance(low, t, entry_window, False, suf_el, run_el, entry_low)
        _advance(high, t, exit_window, True, suf_xh, run_xh, exit_high)
        _advance(low, t, exit_window, False, suf_xl, run_xl, exit_low)
    return out


@njit(cache=True)
def _advance(x, t, window, take_max, suffix, running, value):
    """Take row t into a streamed rolling extreme; ``value`` becomes the extreme of rows
    t-window+1 .. t (left as it is, NaN, until t >= window - 1)."""
    start = (t // window) * window
    row = x[t]
    m = row.shape[0]
    if t == start:
        if t > 0:  # suffix extremes of the block that just ended, from its last row backwards
            suffix[window - 1] = x[t - 1]
            for i in range(window - 2, -1, -1):
                src = x[t - window + i]
                nxt = suffix[i + 1]
                dst = suffix[i]
                for j in range(m):
                    dst[j] = _pick(src[j], nxt[j], take_max)
        running[:] = row
    else:
        for j in range(m):
            running[j] = _pick(row[j], running[j], take_max)
    if t < window - 1:
        return
    if t == start + window - 1:  # the window is this whole block
        value[:] = running
    else:
        first = suffix[t + 1 - start]
        for j in range(m):
            value[j] = _pick(first[j], running[j], take_max)


@njit(cache=True, inline="always")
def _step(state, enter_long, enter_short, exit_long, exit_short):
    if enter_long:
        return 1.0
    if enter_short:
        return -1.0
    if (state > 0.0 and exit_long) or (state < 0.0 and exit_short):
        return 0.0
    return state


@njit(cache=True, inline="always")
def _pick(a, b, take_max):
    if take_max:
        return a if a > b else b
    return a if a < b else b
