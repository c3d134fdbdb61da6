"""The risk policy of the system under test, and the policy file that configures a paper run.

A policy file (data/policies/<name>.yaml) holds three sections: ``risk`` (this module's models),
``router`` and ``exchange`` (``trading.exchange.config``). Every field has a documented default, so
an empty section means "the defaults"; unknown fields are errors that name the file and the field.

Where the defaults come from: the safety governor's 10% trip, 5-minute cooldown and manual reset
(seed 004), the 30% catastrophic stop and the 40% / 60% win-rate switches of the meta strategy
controller (seed 000). Notional limits are sized for the default 100,000 USDT account
(``SimConfig.initial_capital``): they bind only when something goes wrong, never in a normal run.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from stress_pipeline.trading.exchange.config import ExchangeConfig, RouterConfig


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GuardLimits(_Strict):
    """Pre-trade limits of the risk guard, checked on every order that adds risk (orders that only
    reduce a position always pass). A limit is inclusive: exactly at the limit passes."""

    max_order_notional: float = Field(default=250_000.0, gt=0)  # USDT per order; larger orders are cut
    max_position_notional: float = Field(default=150_000.0, gt=0)  # USDT per symbol
    max_open_positions: int = Field(default=10, ge=1)
    max_gross_exposure: float = Field(default=1.5, gt=0)  # sum of |position notional| / equity


class StressConfig(_Strict):
    """When a symbol's bar looks stressed: its spread above ``spread_mult`` times its normal level, or
    its range (high/low, in bps) above ``range_mult`` times its normal level. The normal levels are
    exponentially weighted means of the symbol's earlier bars (half-life ``halflife_bars``), so the
    detector is causal. The portfolio counts as stressed from any stressed symbol's bar until
    ``hold_bars`` bars later. Used by the balancer (fewer positions) and the exchange (slower orders)."""

    spread_mult: float = Field(default=3.0, gt=1)
    range_mult: float = Field(default=4.0, gt=1)
    halflife_bars: float = Field(default=240.0, gt=0)  # 4 hours of 1-minute bars
    hold_bars: int = Field(default=15, ge=0)


class BalancerConfig(_Strict):
    """Portfolio constraints: no symbol above ``max_concentration`` of equity, and at most
    ``stressed_max_positions`` open positions while the market is stressed (positions already open
    are kept; new ones wait)."""

    max_concentration: float = Field(default=1.0, gt=0)
    stressed_max_positions: int = Field(default=2, ge=0)


class SafetyConfig(_Strict):
    """The emergency stop system (ESS).

    ARMED -> TRIPPED when equity falls more than ``trip_drawdown`` below its peak (at a bar close);
    TRIPPED -> COOLDOWN once positions are flat (immediately at the next close when
    ``flatten_on_trip`` is off); COOLDOWN -> AWAITING_RESET after ``cooldown_s``; AWAITING_RESET ->
    ARMED when the operator resets it, ``operator_reset_delay_s`` after the cooldown ended (None: no
    operator comes, trading stays stopped). The reset re-bases the peak at the current equity.
    Any state -> HALTED, for the rest of the run, when equity falls more than ``halt_drawdown`` below
    the run's peak. While not ARMED no order may add risk; with ``flatten_on_trip`` every position is
    closed at market.
    """

    trip_drawdown: float = Field(default=0.10, gt=0, lt=1)
    cooldown_s: float = Field(default=300.0, ge=0)
    operator_reset_delay_s: float | None = Field(default=900.0, ge=0)
    flatten_on_trip: bool = True
    halt_drawdown: float = Field(default=0.30, gt=0, lt=1)

    @model_validator(mode="after")
    def _ordered(self) -> SafetyConfig:
        if self.halt_drawdown <= self.trip_drawdown:
            raise ValueError("halt_drawdown must be larger than trip_drawdown")
        return self


class PolicyControllerConfig(_Strict):
    """The meta strategy controller: the rolling win rate of the last ``window`` closed trades (once
    ``min_trades`` have closed) picks the mode, and the mode scales every position."""

    window: int = Field(default=20, ge=1, le=10_000)
    min_trades: int = Field(default=10, ge=1)
    defensive_below: float = Field(default=0.40, ge=0, le=1)
    aggressive_above: float = Field(default=0.60, ge=0, le=1)
    defensive_scale: float = Field(default=0.5, ge=0)
    normal_scale: float = Field(default=1.0, ge=0)
    aggressive_scale: float = Field(default=1.25, ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> PolicyControllerConfig:
        if self.defensive_below > self.aggressive_above:
            raise ValueError("defensive_below must not exceed aggressive_above")
        if self.min_trades > self.window:
            raise ValueError("min_trades must not exceed window")
        return self


class StopLossConfig(_Strict):
    """Close a position at market when the bar path moves ``pct`` against its average entry price; the
    symbol is not re-entered in the same direction until its target weight changes sign or goes flat."""

    enabled: bool = True
    pct: float = Field(default=0.05, gt=0, lt=1)


class RiskPolicy(_Strict):
    guard: GuardLimits = GuardLimits()
    balancer: BalancerConfig = BalancerConfig()
    stress: StressConfig = StressConfig()
    safety: SafetyConfig = SafetyConfig()
    controller: PolicyControllerConfig = PolicyControllerConfig()
    stop_loss: StopLossConfig = StopLossConfig()
    # While the ledger (PostgreSQL) is down, open or grow no position (reduce only) until it is back.
    block_openings_when_ledger_down: bool = True


DEFAULT_DESCRIPTION = (
    "A Binance USD-M futures account of 100,000 USDT at the regular fee tier, with the emergency stop system "
    "and meta strategy controller of the reference trading system (seeds 000 and 004)."
)


class TradingPolicy(_Strict):
    """One policy file: the risk stack, the order router and the simulated venue.

    ``TradingPolicy()`` is data/policies/default.yaml field for field (a test holds the two equal), so a
    run without a policy file trades exactly as the pipeline's default run does."""

    name: str = "default"
    description: str = DEFAULT_DESCRIPTION
    risk: RiskPolicy = RiskPolicy()
    router: RouterConfig = RouterConfig()
    exchange: ExchangeConfig = ExchangeConfig()

    @field_validator("description")
    @classmethod
    def _trim(cls, value: str) -> str:
        return value.strip()  # a folded YAML block ends with a newline that means nothing


class PolicyFileError(ValueError):
    """A policy file is missing or does not validate; the message names the file and the field."""


def load_policy(source: str | Path | None = None, *, policies_dir: str | Path | None = None) -> TradingPolicy:
    """The policy at ``source``: a path to a YAML file (``.yaml``/``.yml``), or a policy name (None:
    ``default``) looked up as ``<policies_dir>/<name>.yaml``. A name needs ``policies_dir``: this module
    reads no settings; callers pass the directory (the Dagster resource and the CLI pass
    ``<STRESS_DATA_DIR>/policies``)."""
    path = _resolve(source, policies_dir)
    if not path.is_file():
        raise PolicyFileError(f"{path}: no such policy file")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise PolicyFileError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise PolicyFileError(f"{path}: expected a mapping at the top level")
    raw.setdefault("name", path.stem)
    try:
        return TradingPolicy.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(top level)'}: {err['msg']}" for err in exc.errors()
        )
        raise PolicyFileError(f"{path}: {problems}") from None


def _resolve(source: str | Path | None, policies_dir: str | Path | None) -> Path:
    if isinstance(source, Path) or (isinstance(source, str) and source.endswith((".yaml", ".yml"))):
        return Path(source).expanduser()
    name = source or "default"
    if policies_dir is None:
        raise PolicyFileError(
            f"policy {name!r} is a name: pass policies_dir (the folder of <name>.yaml files) or a path to a YAML file"
        )
    return Path(policies_dir).expanduser() / f"{name}.yaml"
