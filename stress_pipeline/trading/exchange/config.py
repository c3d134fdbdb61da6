"""Configuration of the order router and the exchange simulator: every realism knob, with its default.

The defaults describe a Binance USD-M futures account at the regular (VIP 0) tier, the venue the
stress packs are calibrated to; each field says where its figure comes from. The models live in the
trading layer because the router is part of the system under test and the exchange is its venue; the
paper engine reads them from data/policies/*.yaml (see ``trading.risk.policy.TradingPolicy``).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LatencyConfig(_Strict):
    """Order entry latency (send to matching engine): lognormal with median ``median_ms`` and log-sd ``sigma``.

    Under stress the draw is multiplied by ``stress_mult``: a send on a bar the stress detector flags
    (spread or range well above its normal level, see ``StressConfig``). hftbacktest's author notes
    that latency spikes during crashes; Binance API latency went from tens of milliseconds to seconds
    on 2021-05-19. A ``latency_spike`` fault multiplies it again by its ``mult`` parameter (default 10).
    Every draw is capped at ``max_ms``.
    """

    median_ms: float = Field(default=50.0, ge=0)  # a cloud client near the venue: tens of ms
    sigma: float = Field(default=0.6, ge=0, le=3)  # 95% of draws within 0.3x..3.2x the median
    stress_mult: float = Field(default=10.0, ge=1, le=10_000)
    max_ms: float = Field(default=60_000.0, gt=0)


class FillConfig(_Strict):
    """How much fills and at what price.

    * ``participation``: at most this share of a bar's volume fills per order and bar; the rest keeps
      working into the following bars (or is cancelled for IOC). LEAN's and NautilusTrader's volume
      limits use the same idea; 10% is a common desk limit.
    * Square-root market impact (Torre/Almgren; Toth et al. 2011): impact_bps = ``impact_k`` *
      sigma_bar_bps * sqrt(filled qty / bar volume), where sigma_bar_bps is the Parkinson estimate of
      the fill bar's volatility, 1e4 * ln(high / low) / (2 sqrt(ln 2)). Because sigma and volume are
      both per bar, this equals the daily form sigma_day * sqrt(Q / V_day). ``impact_k`` = 1 is the
      order of the prefactor the empirical studies report (0.5 to 1). Capped at ``max_impact_bps``
      (also the impact charged when a bar has no volume and the participation cap is off).
    """

    participation: float = Field(default=0.10, gt=0, le=1)
    impact_k: float = Field(default=1.0, ge=0, le=100)
    max_impact_bps: float = Field(default=1_000.0, ge=0)


class FeeConfig(_Strict):
    """Binance USD-M futures, regular tier: maker 0.02%, taker 0.05%."""

    maker_bps: float = Field(default=2.0, ge=-10, le=100)  # a negative maker fee is a rebate
    taker_bps: float = Field(default=5.0, ge=0, le=100)


class RateLimitConfig(_Strict):
    """Venue request limits (fixed windows, as Binance counts them) and the client's retry policy.

    Binance USD-M futures: REQUEST_WEIGHT 2,400 per minute (error -1003 TOO_MANY_REQUESTS) and ORDERS
    300 per 10 seconds (error -1015 TOO_MANY_ORDERS), each answered with a Retry-After (the time to the
    window's end). A new order weighs 1, a cancel 1. The client retries a refused order at most
    ``max_retries`` times (seed 004: 3), each after max(Retry-After, ``backoff_base_s`` * 2**attempt)
    (seed 004: 0.1 s doubling), then gives up with an execution failure. A ``rate_limit`` fault
    multiplies both limits by its ``limit_mult`` parameter (default 0: every request is refused, as
    under an IP ban) for its duration.
    """

    weight_per_minute: int = Field(default=2_400, ge=1)
    orders_per_10s: int = Field(default=300, ge=1)
    order_weight: int = Field(default=1, ge=0)
    cancel_weight: int = Field(default=1, ge=0)
    max_retries: int = Field(default=3, ge=0, le=20)
    backoff_base_s: float = Field(default=0.1, ge=0)


class RouterConfig(_Strict):
    """How the system under test turns target positions into orders.

    * ``order_type``: "market" (default) or "limit" at ``limit_offset_bps`` inside the bar close
      (a buy below, a sell above); a working limit order older than ``limit_timeout_s`` is cancelled
      and replaced at the next decision.
    * ``time_in_force``: "GTC" (the remainder keeps working) or "IOC" (the remainder is cancelled after
      the arrival bar and re-sent at the next decision).
    * ``min_order_notional``: smaller orders are not sent (Binance MIN_NOTIONAL is 5 to 100 USDT).
    * ``rebalance_band``: None (default) re-sizes a position only when its target weight changes or
      an earlier order did not complete, as the backtest does; a number also re-sizes whenever the
      position is that fraction of its allocation (equity / n_symbols) away from the target.
    * ``pause_on_outage``: False (default) sends a refused order's target again at the next decision,
      whether the exchange is down or not; True is the exchange session of seed 002: once the exchange
      refuses an order as down (EXCHANGE_OUTAGE), nothing is sent until a reconnect succeeds, tried
      every ``reconnect_s`` (seed 002: 60 s) while an order waits (``reconnect`` events).
    """

    order_type: Literal["market", "limit"] = "market"
    time_in_force: Literal["GTC", "IOC"] = "GTC"
    limit_offset_bps: float = Field(default=5.0, ge=0, le=1_000)
    limit_timeout_s: float = Field(default=300.0, gt=0)
    min_order_notional: float = Field(default=10.0, ge=0)
    rebalance_band: float | None = Field(default=None, ge=0)
    pause_on_outage: bool = False
    reconnect_s: float = Field(default=60.0, gt=0)


class ExchangeConfig(_Strict):
    latency: LatencyConfig = LatencyConfig()
    fills: FillConfig = FillConfig()
    fees: FeeConfig = FeeConfig()
    rate_limits: RateLimitConfig = RateLimitConfig()
