"""Seeded synthetic 1-minute crypto bars, and the Binance kline files the repository ships.

The generator is fully vectorised (numpy; no Python loop over bars) and deterministic: the same
``seed`` gives the same bars, and a symbol's bars do not depend on which other symbols are
generated with it (the market-wide streams are keyed by the seed alone, each symbol's own streams
by the seed and the symbol). Generating a longer period extends a shorter one: the first days of a
90-day run equal a 3-day run with the same seed and start.

The model (calibration, regimes, jumps, seasonality, volume, intrabar extremes) is in
:mod:`stress_pipeline.market.synthetic_model`.

:func:`write_binance_klines` writes the bars in the layout of Binance's public kline dumps (one
gzip file per symbol and calendar month, ``BTCUSDT-1m-2024-01.csv.gz``, twelve columns and no
header). The columns a canonical bar table does not hold (quote volume, number of trades, taker
buy volumes) are derived deterministically from the bars. :func:`ensure_shipped_data` writes the
shipped files that are missing. The text of a file depends only on the inputs and the numpy version
(random streams); the gzip bytes (written with mtime 0 and no file name) also on the zlib build.
"""

from __future__ import annotations

import gzip
import os
import tempfile
import zlib
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from stress_pipeline.market.calendars import CONTINUOUS, check_calendar, is_continuous
from stress_pipeline.market.intervals import bar_interval_ns
from stress_pipeline.market.schema import conform_bars, symbol_column
from stress_pipeline.market.synthetic_model import (
    CALIBRATION,
    MINUTES_PER_DAY,
    SymbolCalibration,
    market_state,
    symbol_bars,
)
from stress_pipeline.market.synthetic_sessions import session_bars

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

DEFAULT_SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
DEFAULT_START = "2024-01-01"
DEFAULT_DAYS = 90
DEFAULT_SEED = 20240101

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
    calendar: str = CONTINUOUS,
) -> pd.DataFrame:
    """Synthetic bars for ``symbols`` over ``days`` days from ``start`` (UTC), as the canonical table.

    ``interval`` is a pandas or Binance interval ("1min", "5min", "1h", "1m", "4h", "1d", ...) that
    divides a day; ``start`` must fall on an interval boundary. Rows are sorted by symbol, then ts.
    ``calendar`` ``24/7`` (the default) trades round the clock; an exchange calendar (``XNYS``,
    ``CMES``...) keeps the sessions only, with bars anchored at each open and overnight gaps
    (:func:`stress_pipeline.market.synthetic_sessions.session_bars`).
    """
    check_calendar(calendar)
    if not is_continuous(calendar):
        minutes = _interval_minutes(interval)
        return session_bars(generate_bars(symbols, start, days, seed, "1min"), calendar, minutes)
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

    market = market_state(ts_ns, minutes, int(seed))
    frames = [symbol_bars(CALIBRATION[name], market, int(seed)) for name in names]

    frame = pd.DataFrame(
        {
            "ts": pd.DatetimeIndex(np.tile(ts_ns, len(names)).view("datetime64[ns]")).tz_localize("UTC"),
            "symbol": symbol_column(np.repeat(np.arange(len(names)), n), names),
            **{col: np.concatenate([f[col] for f in frames]) for col in frames[0]},
        }
    )
    return conform_bars(frame)


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
    """The bars' interval in minutes by the market's interval rule (timestamps here are whole minutes)."""
    if open_ms.size < 2:
        return 1
    minutes = bar_interval_ns(open_ms) // _MS_PER_MINUTE  # the rule is unit-free: ms in, ms out
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
