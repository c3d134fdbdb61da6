"""The model behind the synthetic bars: calibration, regimes, jumps, seasonality, volume.

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
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import numpy as np

__all__ = ["CALIBRATION", "MINUTES_PER_DAY", "Market", "SymbolCalibration", "market_state", "symbol_bars"]


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
        # Equities and CME micro futures (session bars: generate_bars(..., calendar="XNYS" / "CMES")).
        # Daily volatility is over 24 h of the model, of which the session shows its own hours.
        SymbolCalibration("NVDA", 480.0, 0.032, 0.80, 1.0, 3_000.0, 100.0, 2, 0),
        SymbolCalibration("SPY", 470.0, 0.010, 0.95, 0.3, 8_000.0, 150.0, 2, 0),
        SymbolCalibration("MES", 4_700.0, 0.010, 0.95, 0.5, 400.0, 2.0, 2, 0),
        SymbolCalibration("MNQ", 16_500.0, 0.013, 0.90, 0.5, 300.0, 2.0, 2, 0),
        SymbolCalibration("M2K", 2_000.0, 0.015, 0.85, 1.0, 100.0, 2.0, 2, 0),
    )
}

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
_NS_PER_MINUTE = 60_000_000_000


@dataclass(frozen=True)
class Market:
    """Bar-level quantities shared by every symbol."""

    minutes: int
    vol_scale: np.ndarray  # per-bar volatility multiplier, mean square 1 per minute of bar
    volume_scale: np.ndarray  # per-bar volume multiplier, mean 1 per minute of bar
    jump_intensity: np.ndarray  # relative jump intensity, mean 1
    factor: np.ndarray  # common N(0, 1) diffusion shock
    market_jump: np.ndarray  # standardised market jump size, 0 where none
    volume_noise: np.ndarray  # market-wide log-volume noise


def market_state(ts_ns: np.ndarray, minutes: int, seed: int) -> Market:
    """The market-wide streams for bars at ``ts_ns`` of ``minutes`` each (keyed by the seed alone)."""
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

    return Market(
        minutes=minutes,
        vol_scale=np.sqrt(season_var) * week_vol * regime_vol * slow_vol,
        volume_scale=season_volume * week_volume * regime_volume,
        jump_intensity=intensity,
        factor=streams[5].standard_normal(n),
        market_jump=np.where(has_jump, sizes, 0.0),
        volume_noise=_persistent_noise(streams[6], n, VOLUME_NOISE_HALF_LIFE_MIN / minutes),
    )


def symbol_bars(cal: SymbolCalibration, market: Market, seed: int) -> dict[str, np.ndarray]:
    """One symbol's open, high, low, close, volume and spread on ``market`` (its own streams keyed by
    the seed and the symbol)."""
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
