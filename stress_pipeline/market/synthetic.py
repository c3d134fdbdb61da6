"""Seeded synthetic 1-minute crypto bars, and the Binance kline files the repository ships.

The generator is fully vectorised (numpy; no Python loop over bars) and deterministic: the same
``seed`` gives the same bars, and a symbol's bars do not depend on which other symbols are
generated with it (the market-wide streams are keyed by the seed alone, each symbol's own streams
by the seed and the symbol). Generating a longer period extends a shorter one: the first days of a
90-day run equal a 3-day run with the same seed and start.

What it is calibrated to (orders of magnitude, early 2024, Binance spot; see :data:`CALIBRATION`):

* Levels: the first bar opens at BTC 42,000, ETH 2,300 and SOL 100 USDT.
* Daily volatility (standard deviation of daily log returns): BTC 2.75%, ETH 3.25%, SOL 5%.
  Prices follow a driftless log random walk, so the 90-day log change has a standard deviation of
  about 26% (BTC) to 47% (SOL). With the default seed (the shipped data) BTC and ETH end the
  quarter about 20% lower and SOL about 57% lower.
* Volatility regimes: a three-state Markov regime switching (calm, normal, turbulent; volatility
  x0.75, x1.1, x2.2 before normalisation; mean durations 16 h, 8 h, 4 h). Normal follows calm and
  turbulent; after normal comes calm (70%) or turbulent (30%). It is drawn as whole regimes
  (durations, then states) and spread over the bars with ``searchsorted``, never bar by bar. A slow
  market-wide log-volatility component (AR(1)-like, half-life 2 h, applied as a causal filter)
  adds clustering within regimes. The multipliers are normalised so that the mean variance is the
  calibrated one.
* Jumps: compound Poisson, rare and fat tailed: market-wide jumps (0.8 a day, all symbols move
  together, each by its own jump scale) and idiosyncratic ones (0.6 a day per symbol), Student-t
  (3 degrees of freedom, clipped at 10) sizes. Jumps carry 10% of the daily variance and are five
  times as frequent in the turbulent regime as on average.
* Intraday seasonality (UTC): volume peaks around the US session (about 14:45), with smaller peaks
  at the European open (08:30) and the Asian open and daily candle roll (about 01:00), troughs in
  late Asian hours and late evening, and bursts on the hour. Volatility follows the square root of
  the volume profile (variance proportional to activity). Weekends trade at 65% of weekday volume
  and 75% of weekday volatility.
* Volume rises with the absolute return of the bar (a jump bar trades many times the usual
  volume), with market-wide and per-symbol persistent noise, scaled to a typical volume per minute
  (BTC 30, ETH 250, SOL 2,800 base units).
* Correlation: a common market factor with loadings BTC 0.90, ETH 0.87, SOL 0.70 gives a
  correlation of 1-minute log returns of about 0.75 BTC-ETH and 0.6 for SOL with either.
* Spread: constant per symbol, as in data/symbols.yaml (BTC 1.0, ETH 1.5, SOL 3.0 bps). Binance
  klines carry no spread, so a loader fills the same figures from that file and reading the shipped
  files back gives the generated table exactly.
* Prices are rounded to the symbol's tick (0.01 USDT) and volumes to its lot (BTC 0.00001,
  ETH 0.0001, SOL 0.001), as a venue would report them.

Bars are consistent: ``open`` of each bar is the previous ``close``, ``high >= max(open, close)``,
``low <= min(open, close)``, prices are positive and volumes positive. The intrabar extremes are
drawn from the exact distribution of the maximum and minimum of a Brownian bridge between the open
and the close with the bar's diffusion variance (sampled independently of each other).

:func:`write_binance_klines` writes the bars in the layout of Binance's public kline dumps (one
gzip file per symbol and calendar month, ``BTCUSDT-1m-2024-01.csv.gz``, twelve columns and no
header). The columns a canonical bar table does not hold (quote volume, number of trades, taker
buy volumes) are derived deterministically from the bars. :func:`ensure_shipped_data` writes the
shipped files that are missing. The text of a file depends only on the inputs and the numpy version
(random streams); the gzip bytes (written with mtime 0 and no file name) also on the zlib build.
"""

from __future__ import annotations

import gzip
import math
import os
import tempfile
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from stress_pipeline.market.schema import conform_bars

__all__ = [
    "CALIBRATION",
    "DEFAULT_DAYS",
    "DEFAULT_SEED",
    "DEFAULT_START",
    "DEFAULT_SYMBOLS",
    "SymbolCalibration",
    "binance_month_file_name",
    "ensure_shipped_data",
    "generate_bars",
    "shipped_file_names",
    "shipped_file_paths",
    "write_binance_klines",
]


@dataclass(frozen=True)
class SymbolCalibration:
    """What the generator aims at for one symbol."""

    symbol: str
    start_price: float  # open of the first bar, USDT
    daily_vol: float  # standard deviation of daily log returns
    market_beta: float  # loading of the diffusion on the common market factor
    spread_bps: float  # as data/symbols.yaml
    volume_per_minute: float  # mean volume per minute, base asset
    avg_trade_size: float  # base asset per trade (sets the number of trades)
    price_decimals: int  # tick size 10**-price_decimals
    qty_decimals: int  # lot size 10**-qty_decimals


CALIBRATION: dict[str, SymbolCalibration] = {
    c.symbol: c
    for c in (
        SymbolCalibration("BTCUSDT", 42_000.0, 0.0275, 0.90, 1.0, 30.0, 0.025, 2, 5),
        SymbolCalibration("ETHUSDT", 2_300.0, 0.0325, 0.87, 1.5, 250.0, 0.3, 2, 4),
        SymbolCalibration("SOLUSDT", 100.0, 0.050, 0.70, 3.0, 2_800.0, 4.5, 2, 3),
    )
}

DEFAULT_SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
DEFAULT_START = "2024-01-01"
DEFAULT_DAYS = 90
DEFAULT_SEED = 20240101

# Volatility regimes: calm, normal, turbulent.
REGIME_VOL = np.array([0.75, 1.1, 2.2])
REGIME_MEAN_HOURS = np.array([16.0, 8.0, 4.0])
CALM_AFTER_NORMAL = 0.7
# Slow market-wide log-volatility component.
VOL_NOISE_SD = 0.25
VOL_NOISE_HALF_LIFE_MIN = 120.0
# Jumps.
MARKET_JUMPS_PER_DAY = 0.8
IDIO_JUMPS_PER_DAY = 0.6
JUMP_VARIANCE_SHARE = 0.10
JUMP_T_CLIP = 10.0  # Student-t(3) draws are clipped to +-this before scaling
# Intraday and weekly seasonality.
WEEKEND_VOLUME = 0.65
WEEKEND_VOL = 0.75
# Volume noise: persistent market-wide and per-symbol parts, plus white noise (log scale).
VOLUME_COMMON_SD = 0.30
VOLUME_IDIO_SD = 0.25
VOLUME_WHITE_SD = 0.30
VOLUME_NOISE_HALF_LIFE_MIN = 30.0
VOLUME_Z_CAP = 30.0

MINUTES_PER_DAY = 1440
_MS_PER_MINUTE = 60_000
_NS_PER_MINUTE = 60_000_000_000
# Binance kline interval labels and their length in minutes.
BINANCE_INTERVALS = {
    "1m": 1,
    "3m": 3,
    "5m": 5,
    "15m": 15,
    "30m": 30,
    "1h": 60,
    "2h": 120,
    "4h": 240,
    "6h": 360,
    "8h": 480,
    "12h": 720,
    "1d": 1440,
}
_LABEL_BY_MINUTES = {minutes: label for label, minutes in BINANCE_INTERVALS.items()}
# Decimals used in files for symbols without a calibration entry (Binance writes 8).
_FALLBACK_DECIMALS = 8


# --------------------------------------------------------------------------------------------------
# Generation


def generate_bars(
    symbols: Sequence[str] | str = DEFAULT_SYMBOLS,
    start: str | pd.Timestamp = DEFAULT_START,
    days: int = DEFAULT_DAYS,
    seed: int = DEFAULT_SEED,
    interval: str = "1min",
) -> pd.DataFrame:
    """Synthetic bars for ``symbols`` over ``days`` days from ``start`` (UTC), as the canonical table.

    ``interval`` is a pandas or Binance interval ("1min", "5min", "1h", "1m", "4h", "1d", ...) that
    divides a day; ``start`` must fall on an interval boundary. Rows are sorted by symbol, then ts.
    """
    names = _check_symbols(symbols)
    minutes = _interval_minutes(interval)
    start_ts = _utc_timestamp(start)
    if start_ts.value % (minutes * _NS_PER_MINUTE):
        raise ValueError(f"start {start_ts} is not on a {minutes}-minute boundary")
    if isinstance(days, bool) or not isinstance(days, int | np.integer) or days <= 0:
        raise ValueError(f"days must be a positive whole number, got {days!r}")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    n = int(days) * MINUTES_PER_DAY // minutes
    ts_ns = start_ts.value + np.arange(n, dtype=np.int64) * (minutes * _NS_PER_MINUTE)

    market = _market_state(ts_ns, minutes, int(seed))
    frames = [_symbol_bars(CALIBRATION[name], market, int(seed)) for name in names]

    frame = pd.DataFrame(
        {
            "ts": pd.DatetimeIndex(np.tile(ts_ns, len(names)).view("datetime64[ns]")).tz_localize("UTC"),
            "symbol": pd.array(np.repeat(np.array(names, dtype=object), n), dtype="str"),
            **{col: np.concatenate([f[col] for f in frames]) for col in frames[0]},
        }
    )
    return conform_bars(frame)


@dataclass(frozen=True)
class _Market:
    """Bar-level quantities shared by every symbol."""

    minutes: int
    vol_scale: np.ndarray  # per-bar volatility multiplier, mean square 1 per minute of bar
    volume_scale: np.ndarray  # per-bar volume multiplier, mean 1 per minute of bar
    jump_intensity: np.ndarray  # relative jump intensity, mean 1
    factor: np.ndarray  # common N(0, 1) diffusion shock
    market_jump: np.ndarray  # standardised market jump size, 0 where none
    volume_noise: np.ndarray  # market-wide log-volume noise


def _market_state(ts_ns: np.ndarray, minutes: int, seed: int) -> _Market:
    n = ts_ns.size
    streams = _streams(seed, 0, 7)

    # Seasonality: minute-of-day profiles averaged over the minutes of each bar, and the weekend.
    vol_profile, volume_profile = _intraday_profiles()
    minute_of_day = (ts_ns // _NS_PER_MINUTE) % MINUTES_PER_DAY
    slot = minute_of_day // minutes
    season_var = (vol_profile**2).reshape(-1, minutes).mean(axis=1)[slot]
    season_volume = volume_profile.reshape(-1, minutes).mean(axis=1)[slot]
    weekday = (ts_ns // (_NS_PER_MINUTE * MINUTES_PER_DAY) + 3) % 7  # 1970-01-01 was a Thursday
    weekend = weekday >= 5
    weekday_vol = math.sqrt((7.0 - 2.0 * WEEKEND_VOL**2) / 5.0)
    weekday_volume = (7.0 - 2.0 * WEEKEND_VOLUME) / 5.0
    week_vol = np.where(weekend, WEEKEND_VOL, weekday_vol)
    week_volume = np.where(weekend, WEEKEND_VOLUME, weekday_volume)

    # Regimes, drawn as whole regimes and spread over the bars.
    state = _regime_path(np.arange(n) * minutes, seed)  # streams (0, 0) and (0, 1)
    time_share = _regime_time_shares()
    regime_vol = REGIME_VOL[state] / math.sqrt(float(time_share @ REGIME_VOL**2))
    regime_volume = REGIME_VOL[state] / float(time_share @ REGIME_VOL)

    slow = _persistent_noise(streams[2], n, VOL_NOISE_HALF_LIFE_MIN / minutes)
    slow_vol = np.exp(VOL_NOISE_SD * slow - VOL_NOISE_SD**2)  # mean square 1

    jump_count = MARKET_JUMPS_PER_DAY / MINUTES_PER_DAY * minutes
    intensity = regime_vol**2
    has_jump = streams[3].random(n) < -np.expm1(-jump_count * intensity)
    sizes = _jump_sizes(streams[4], n)

    return _Market(
        minutes=minutes,
        vol_scale=np.sqrt(season_var) * week_vol * regime_vol * slow_vol,
        volume_scale=season_volume * week_volume * regime_volume,
        jump_intensity=intensity,
        factor=streams[5].standard_normal(n),
        market_jump=np.where(has_jump, sizes, 0.0),
        volume_noise=_persistent_noise(streams[6], n, VOLUME_NOISE_HALF_LIFE_MIN / minutes),
    )


def _symbol_bars(cal: SymbolCalibration, market: _Market, seed: int) -> dict[str, np.ndarray]:
    n = market.factor.size
    k = market.minutes
    streams = _streams(seed, 1 + zlib.crc32(cal.symbol.encode()), 7)

    # Returns: diffusion on the common factor plus jumps.
    jump_rate = MARKET_JUMPS_PER_DAY + IDIO_JUMPS_PER_DAY
    jump_scale = cal.daily_vol * math.sqrt(JUMP_VARIANCE_SHARE / jump_rate)
    minute_sd = cal.daily_vol * math.sqrt((1.0 - JUMP_VARIANCE_SHARE) / MINUTES_PER_DAY)
    bar_sd = minute_sd * math.sqrt(k) * market.vol_scale
    beta = cal.market_beta
    shock = beta * market.factor + math.sqrt(1.0 - beta * beta) * streams[0].standard_normal(n)
    idio_count = IDIO_JUMPS_PER_DAY / MINUTES_PER_DAY * k
    has_jump = streams[1].random(n) < -np.expm1(-idio_count * market.jump_intensity)
    jumps = market.market_jump + np.where(has_jump, _jump_sizes(streams[2], n), 0.0)
    log_ret = bar_sd * shock + jump_scale * jumps

    # Prices: closes on the tick grid, opens continuous, extremes from a Brownian bridge.
    dec = cal.price_decimals
    tick = 10.0**-dec
    log_open = math.log(cal.start_price) + np.concatenate(([0.0], np.cumsum(log_ret[:-1])))
    log_close = log_open + log_ret
    close = np.maximum(np.round(np.exp(log_close), dec), tick)
    open_ = np.concatenate(([round(cal.start_price, dec)], close[:-1]))
    bridge_var = 2.0 * bar_sd**2
    up = 0.5 * (log_ret + np.sqrt(log_ret**2 - bridge_var * np.log1p(-streams[3].random(n))))
    down = 0.5 * (log_ret - np.sqrt(log_ret**2 - bridge_var * np.log1p(-streams[4].random(n))))
    high = np.maximum(np.round(np.exp(log_open + up), dec), np.maximum(open_, close))
    low = np.minimum(np.round(np.exp(log_open + down), dec), np.minimum(open_, close))
    low = np.maximum(low, tick)

    # Volume: seasonality and regime, more on large moves, persistent and white noise.
    z = np.minimum(np.abs(log_ret) / bar_sd, VOLUME_Z_CAP)
    activity = 0.5 + 0.5 * z / math.sqrt(2.0 / math.pi)
    idio = _persistent_noise(streams[5], n, VOLUME_NOISE_HALF_LIFE_MIN / k)
    noise_var = VOLUME_COMMON_SD**2 + VOLUME_IDIO_SD**2 + VOLUME_WHITE_SD**2
    log_noise = (
        VOLUME_COMMON_SD * market.volume_noise
        + VOLUME_IDIO_SD * idio
        + VOLUME_WHITE_SD * streams[6].standard_normal(n)
        - 0.5 * noise_var
    )
    volume = cal.volume_per_minute * k * market.volume_scale * activity * np.exp(log_noise)
    lot = 10.0**-cal.qty_decimals
    volume = np.maximum(np.round(volume, cal.qty_decimals), lot)

    return {
        "open": open_,
        "high": high,
        "low": low,
        "close": close,
        "volume": volume,
        "spread_bps": np.full(n, cal.spread_bps),
    }


def _intraday_profiles() -> tuple[np.ndarray, np.ndarray]:
    """Volatility (mean square 1) and volume (mean 1) profiles by minute of the UTC day."""
    minute = np.arange(MINUTES_PER_DAY)
    hour = minute / 60.0

    def bump(center: float, width: float) -> np.ndarray:
        distance = (hour - center + 12.0) % 24.0 - 12.0  # circular, so the Asian bump wraps midnight
        return np.exp(-0.5 * (distance / width) ** 2)

    volume = 0.55 + 1.0 * bump(14.75, 1.7) + 0.35 * bump(8.5, 1.5) + 0.45 * bump(1.0, 1.4)
    in_hour = minute % 60
    volume = volume * np.select([in_hour == 0, in_hour == 1, in_hour % 15 == 0], [1.6, 1.25, 1.1], 1.0)
    volume[0] *= 1.5  # the daily candle roll
    volume = volume / volume.mean()
    return np.sqrt(volume), volume


def _regime_visits() -> np.ndarray:
    """Mean visits to each regime (calm, normal, turbulent) per visit to normal."""
    return np.array([CALM_AFTER_NORMAL, 1.0, 1.0 - CALM_AFTER_NORMAL])


def _regime_time_shares() -> np.ndarray:
    """Long-run share of time in each regime (calm, normal, turbulent)."""
    time = _regime_visits() * REGIME_MEAN_HOURS
    return time / time.sum()


def _regime_path(minute: np.ndarray, seed: int) -> np.ndarray:
    """Regime at each minute offset (sorted): states alternate normal, calm-or-turbulent, normal, ..."""
    total_minutes = int(minute[-1]) + 1
    cycle_minutes = 60.0 * float(_regime_visits() @ REGIME_MEAN_HOURS)
    count = 2 * int(total_minutes / cycle_minutes) + 16
    while True:
        # Rarely more than one pass. Each pass draws from the start of the streams, and draws are
        # sequential, so the path of a shorter period is a prefix of a longer one.
        state_rng, duration_rng = _streams(seed, 0, 2)
        first_normal = state_rng.random() < 0.5  # start in normal or in calm/turbulent
        other = np.where(state_rng.random(count) < CALM_AFTER_NORMAL, 0, 2)
        pairs = np.column_stack((np.ones(count, dtype=np.int64), other)).ravel()
        states = pairs if first_normal else pairs[1:]
        durations = duration_rng.exponential(1.0, states.size) * 60.0 * REGIME_MEAN_HOURS[states]
        ends = np.cumsum(durations)
        if ends[-1] > total_minutes:
            break
        count *= 2
    return states[np.searchsorted(ends, minute, side="right")]


def _persistent_noise(rng: np.random.Generator, n: int, half_life_bars: float) -> np.ndarray:
    """Stationary unit-variance AR(1)-like noise: white noise through a causal exponential filter."""
    length = max(1, math.ceil(8.0 * half_life_bars))
    decay = 0.5 ** (1.0 / half_life_bars) if half_life_bars > 0 else 0.0
    kernel = decay ** np.arange(length)
    kernel /= math.sqrt(float(kernel @ kernel))
    white = rng.standard_normal(n + length - 1)
    return np.convolve(white, kernel, mode="valid")[:n] if length > 1 else white[:n]


def _jump_sizes(rng: np.random.Generator, n: int) -> np.ndarray:
    """Unit-variance fat-tailed jump sizes: clipped Student-t(3), rescaled."""
    draws = np.clip(rng.standard_t(3, n), -JUMP_T_CLIP, JUMP_T_CLIP)
    return draws / math.sqrt(_clipped_t3_second_moment(JUMP_T_CLIP))


def _clipped_t3_second_moment(a: float) -> float:
    """E[clip(T, -a, a) ** 2] for T ~ Student-t(3), in closed form (3 as a -> infinity)."""
    r3 = math.sqrt(3.0)
    inside = 6.0 * r3 / math.pi * (math.atan(a / r3) / r3 - a / (3.0 + a * a))
    tail = 1.0 - 2.0 / math.pi * ((a / r3) / (1.0 + a * a / 3.0) + math.atan(a / r3))
    return inside + a * a * tail


def _streams(seed: int, key: int, count: int) -> list[np.random.Generator]:
    return [
        np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(key, i))))
        for i in range(count)
    ]


def _check_symbols(symbols: Sequence[str] | str) -> list[str]:
    names = [symbols] if isinstance(symbols, str) else list(symbols)
    names = [str(s).upper() for s in names]
    if not names:
        raise ValueError("no symbols to generate")
    unknown = [s for s in names if s not in CALIBRATION]
    if unknown:
        raise ValueError(
            f"no calibration for {', '.join(unknown)}; known symbols: {', '.join(sorted(CALIBRATION))}"
        )
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate symbols in {names}")
    return sorted(names)


def _interval_minutes(interval: str) -> int:
    if interval in BINANCE_INTERVALS:
        return BINANCE_INTERVALS[interval]
    try:
        delta = pd.Timedelta(interval)
    except ValueError:
        raise ValueError(f"interval {interval!r}: expected e.g. '1min', '5min', '1h' or '1d'") from None
    minutes = delta / pd.Timedelta(minutes=1)
    if minutes <= 0 or minutes != int(minutes) or MINUTES_PER_DAY % int(minutes):
        raise ValueError(f"interval {interval!r}: must be a whole number of minutes dividing a day")
    return int(minutes)


def _utc_timestamp(value: str | pd.Timestamp) -> pd.Timestamp:
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


# --------------------------------------------------------------------------------------------------
# Binance kline files


def binance_month_file_name(symbol: str, interval_label: str, year: int, month: int) -> str:
    """``BTCUSDT-1m-2024-01.csv.gz``: the name of one month of Binance klines."""
    return f"{symbol.upper()}-{interval_label}-{year:04d}-{month:02d}.csv.gz"


def write_binance_klines(bars: pd.DataFrame, out_dir: str | Path, symbol: str) -> list[Path]:
    """Write ``symbol``'s rows of ``bars`` as Binance kline files, one per calendar month (UTC).

    Existing files of the same names are replaced atomically. Returns the paths written, in order.
    """
    return [path for path, _ in _write_months(bars, Path(out_dir), symbol, months=None, overwrite=True)]


def shipped_file_names(
    symbols: Iterable[str] = DEFAULT_SYMBOLS,
    start: str | pd.Timestamp = DEFAULT_START,
    days: int = DEFAULT_DAYS,
) -> list[str]:
    """The names of the 1-minute month files covering ``days`` days from ``start``."""
    first = _utc_timestamp(start)
    last = first + pd.Timedelta(days=days) - pd.Timedelta(minutes=1)
    months = pd.period_range(first.tz_localize(None), last.tz_localize(None), freq="M")
    return [
        binance_month_file_name(symbol, "1m", month.year, month.month)
        for symbol in sorted(s.upper() for s in symbols)
        for month in months
    ]


def shipped_file_paths(
    bars_dir: str | Path,
    *,
    symbols: Sequence[str] = DEFAULT_SYMBOLS,
    start: str | pd.Timestamp = DEFAULT_START,
    days: int = DEFAULT_DAYS,
    seed: int = DEFAULT_SEED,
) -> list[Path]:
    """The files :func:`ensure_shipped_data` maintains in ``bars_dir`` (the names do not depend on
    ``seed``; it is accepted so both functions take the same options)."""
    del seed
    return [Path(bars_dir) / name for name in shipped_file_names(_check_symbols(symbols), start, days)]


def ensure_shipped_data(
    bars_dir: str | Path,
    *,
    symbols: Sequence[str] = DEFAULT_SYMBOLS,
    start: str | pd.Timestamp = DEFAULT_START,
    days: int = DEFAULT_DAYS,
    seed: int = DEFAULT_SEED,
) -> list[Path]:
    """Write whichever of the shipped 1-minute month files are missing from ``bars_dir``.

    Files that exist are never touched (not even rewritten with the same bytes), and a file another
    process creates meanwhile is left as it is. Only the symbols with a missing file are generated.
    Returns the paths this call wrote, sorted.
    """
    bars_dir = Path(bars_dir)
    paths = shipped_file_paths(bars_dir, symbols=symbols, start=start, days=days)
    missing = [path.name for path in paths if not path.exists()]
    if not missing:
        return []
    wanted = {name.split("-", 1)[0] for name in missing}
    bars = generate_bars(sorted(wanted), start=start, days=days, seed=seed, interval="1min")
    written: list[Path] = []
    for symbol in sorted(wanted):
        for path, created in _write_months(bars, bars_dir, symbol, months=set(missing), overwrite=False):
            if created:
                written.append(path)
    return sorted(written)


def _write_months(
    bars: pd.DataFrame, out_dir: Path, symbol: str, *, months: set[str] | None, overwrite: bool
) -> list[tuple[Path, bool]]:
    symbol = symbol.upper()
    bars = conform_bars(bars)
    rows = bars.loc[bars["symbol"].str.upper() == symbol]
    if rows.empty:
        raise ValueError(f"no bars for {symbol}")
    rows = rows.sort_values("ts", kind="stable")
    open_ms = pd.DatetimeIndex(rows["ts"]).as_unit("ms").asi8
    if np.any(np.diff(open_ms) <= 0):
        raise ValueError(f"{symbol}: duplicate timestamps")
    if np.any(open_ms % _MS_PER_MINUTE):
        raise ValueError(f"{symbol}: bar timestamps must fall on whole minutes")
    interval_minutes = _infer_interval_minutes(open_ms)
    label = _LABEL_BY_MINUTES[interval_minutes]

    cal = CALIBRATION.get(symbol)
    price_dec = cal.price_decimals if cal else _FALLBACK_DECIMALS
    qty_dec = cal.qty_decimals if cal else _FALLBACK_DECIMALS
    columns = {c: rows[c].to_numpy(np.float64) for c in ("open", "high", "low", "close", "volume")}
    if cal is not None:
        avg_trade = cal.avg_trade_size
    else:
        positive = columns["volume"][columns["volume"] > 0]
        avg_trade = float(np.median(positive)) / 500.0 if positive.size else 1.0

    stamps = pd.DatetimeIndex(rows["ts"])
    month_key = stamps.year.to_numpy() * 12 + stamps.month.to_numpy() - 1
    cuts = np.flatnonzero(np.diff(month_key)) + 1
    out_dir.mkdir(parents=True, exist_ok=True)
    results: list[tuple[Path, bool]] = []
    for lo, hi in zip(np.concatenate(([0], cuts)), np.concatenate((cuts, [month_key.size])), strict=True):
        year, month = divmod(int(month_key[lo]), 12)
        name = binance_month_file_name(symbol, label, year, month + 1)
        if months is not None and name not in months:
            continue
        text = _kline_csv(
            open_ms[lo:hi],
            {c: v[lo:hi] for c, v in columns.items()},
            interval_ms=interval_minutes * _MS_PER_MINUTE,
            price_dec=price_dec,
            qty_dec=qty_dec,
            avg_trade=avg_trade,
            rng=np.random.default_rng([zlib.crc32(symbol.encode()), year, month + 1]),
        )
        data = gzip.compress(text.encode("ascii"), compresslevel=6, mtime=0)  # 9 is 2x slower, 0.2% smaller
        path = out_dir / name
        results.append((path, _atomic_write(path, data, overwrite=overwrite)))
    return results


def _infer_interval_minutes(open_ms: np.ndarray) -> int:
    if open_ms.size < 2:
        return 1
    steps, counts = np.unique(np.diff(open_ms), return_counts=True)
    minutes = int(steps[np.argmax(counts)] // _MS_PER_MINUTE)
    if minutes not in _LABEL_BY_MINUTES:
        raise ValueError(f"bar spacing of {minutes} minutes is not a Binance kline interval")
    return minutes


def _kline_csv(
    open_ms: np.ndarray,
    cols: dict[str, np.ndarray],
    *,
    interval_ms: int,
    price_dec: int,
    qty_dec: int,
    avg_trade: float,
    rng: np.random.Generator,
) -> str:
    """The twelve Binance kline columns for one month, as CSV text without a header."""
    n = open_ms.size
    open_, high, low, close, volume = (cols[c] for c in ("open", "high", "low", "close", "volume"))
    # The quote volumes are estimates (volume times the bar's typical price): quote them to the tick.
    quote_dec = price_dec
    typical = (open_ + high + low + close) / 4.0
    trades = np.rint(volume / avg_trade * np.exp(0.25 * rng.standard_normal(n) - 0.03125))
    trades = np.where(volume > 0, np.maximum(trades, 1), 0).astype(np.int64)
    span = high - low
    tilt = np.divide(close - open_, span, out=np.zeros(n), where=span > 0)
    buy_share = np.clip(0.5 + 0.3 * tilt + 0.08 * rng.standard_normal(n), 0.02, 0.98)
    scale = 10.0**qty_dec
    taker_base = np.minimum(np.floor(volume * buy_share * scale) / scale, volume)
    quote = np.round(volume * typical, quote_dec)
    taker_quote = np.minimum(np.round(taker_base * typical, quote_dec), quote)

    p, q, v = f".{price_dec}f", f".{qty_dec}f", f".{quote_dec}f"
    line = f"{{}},{{:{p}}},{{:{p}}},{{:{p}}},{{:{p}}},{{:{q}}},{{}},{{:{v}}},{{}},{{:{q}}},{{:{v}}},0\n"
    fields = zip(
        open_ms.tolist(),
        open_.tolist(),
        high.tolist(),
        low.tolist(),
        close.tolist(),
        volume.tolist(),
        (open_ms + (interval_ms - 1)).tolist(),
        quote.tolist(),
        trades.tolist(),
        taker_base.tolist(),
        taker_quote.tolist(),
        strict=True,
    )
    return "".join([line.format(*row) for row in fields])


def _atomic_write(path: Path, data: bytes, *, overwrite: bool) -> bool:
    """Write ``data`` to ``path`` through a temporary file; False if not overwriting and it exists."""
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        if overwrite:
            os.replace(tmp, path)
            return True
        try:
            os.link(tmp, path)  # atomic create-if-absent
        except FileExistsError:
            return False
        except OSError:  # no hard links on this file system
            if path.exists():
                return False
            os.replace(tmp, path)
        return True
    finally:
        tmp.unlink(missing_ok=True)
