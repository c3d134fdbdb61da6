"""The scenario model: what a stress pack says, validated at the boundary (pydantic v2).

A scenario names its type, and its ``parameters`` are validated by the model of that type, so a typo
or an out-of-range value fails when the pack is loaded, naming the field, never halfway through a run.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator, model_validator

from stress_pipeline.scenarios.depth_model import DepthCollapseParams
from stress_pipeline.scenarios.expect import check_expect
from stress_pipeline.scenarios.fault_model import FaultSpec
from stress_pipeline.scenarios.lengths import Bars0To100k, Bars1To10k, Bars1To100k, Bars2To10M, Bars2To100k, Bars10To10M

Severity = Literal["minor", "major", "catastrophic"]
Recovery = Literal["linear", "exponential", "none"]
CorruptionType = Literal["nan", "spike", "duplicate", "stale", "out_of_order", "gap"]
ScalarValue = float | int | bool | str


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ------------------------------------------------------------------------------------- parameters


class FlashCrashParams(_Strict):
    """Price falls by ``drop_pct`` over ``duration_bars``, then recovers over ``recovery_bars``."""

    drop_pct: float = Field(gt=0, lt=1)
    duration_bars: Bars1To10k = 5  # bars, or a time (15min, 1h: scenarios/lengths.py)
    recovery_bars: Bars0To100k = 15
    recovery: Recovery = "linear"
    volume_mult: float = Field(default=5.0, ge=1, le=1_000)
    spread_mult: float = Field(default=5.0, ge=1, le=1_000)


class FlashCrashLiteParams(_Strict):
    """A sub-minute shock (seed: -3%, spread x3, 60 s, linear recovery) that works at any bar interval."""

    price_shock_pct: float = Field(gt=-1, lt=1)
    spread_mult: float = Field(default=3.0, ge=1, le=1_000)
    duration_sec: float = Field(default=60.0, gt=0, le=86_400)
    recovery_type: Literal["linear", "exponential"] = "linear"

    @field_validator("price_shock_pct")
    @classmethod
    def _non_zero(cls, value: float) -> float:
        if value == 0:
            raise ValueError("must not be 0")
        return value


class VolatilitySpikeParams(_Strict):
    """Returns scaled by ``multiplier`` around their local trend for ``duration_bars``."""

    multiplier: float = Field(gt=0, le=100)
    duration_bars: Bars2To100k = 20


class LiquidityDropParams(_Strict):
    """Volume falls by ``drop_pct``; the spread widens by (1 - drop_pct) ** -spread_elasticity."""

    drop_pct: float = Field(gt=0, lt=1)
    duration_bars: Bars1To100k = 15
    spread_elasticity: float = Field(default=0.5, ge=0, le=2)


class SpreadExplosionParams(_Strict):
    spread_mult: float = Field(gt=1, le=1_000)
    duration_bars: Bars1To100k = 10


class DataCorruptionParams(_Strict):
    """``corruption_pct`` of the rows in the window turn bad, of the listed kinds, each flagged."""

    corruption_pct: float = Field(gt=0, le=0.5)
    corruption_types: tuple[CorruptionType, ...] = ("nan", "spike", "duplicate")
    duration_bars: Bars10To10M = 1_440

    @field_validator("corruption_types")
    @classmethod
    def _distinct(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("list at least one corruption type")
        if len(set(value)) != len(value):
            raise ValueError("each corruption type at most once")
        return value


class MixedCustomParams(_Strict):
    """Any subset of the four stresses, applied in the order: volatility, crash, liquidity, spread."""

    flash_crash_drop_pct: float | None = Field(default=None, gt=0, lt=1)
    volatility_multiplier: float | None = Field(default=None, gt=0, le=100)
    spread_mult: float | None = Field(default=None, gt=1, le=1_000)
    liquidity_drop_pct: float | None = Field(default=None, gt=0, lt=1)
    duration_bars: Bars2To100k = 20
    recovery_bars: Bars0To100k = 15

    @model_validator(mode="after")
    def _at_least_one(self) -> MixedCustomParams:
        if all(
            v is None
            for v in (self.flash_crash_drop_pct, self.volatility_multiplier, self.spread_mult, self.liquidity_drop_pct)
        ):
            raise ValueError(
                "set at least one of flash_crash_drop_pct, volatility_multiplier, spread_mult, liquidity_drop_pct"
            )
        return self


class CorrelationCascadeParams(_Strict):
    """The first symbol crashes by ``drop_pct``; each other symbol follows ``lag_bars`` later, scaled."""

    drop_pct: float = Field(gt=0, lt=1)
    correlation: float = Field(default=0.8, gt=0, le=1)
    lag_bars: tuple[int, ...] | int = 2
    duration_bars: Bars1To10k = 5
    recovery_bars: Bars0To100k = 30

    @field_validator("lag_bars")
    @classmethod
    def _non_negative(cls, value: tuple[int, ...] | int) -> tuple[int, ...] | int:
        values = (value,) if isinstance(value, int) else value
        if any(v < 0 or v > 10_000 for v in values):
            raise ValueError("lags must be between 0 and 10000 bars")
        return value


class TradingHaltParams(_Strict):
    """No trading for ``halt_minutes``, then the market reopens ``gap_pct`` away from the last price."""

    halt_minutes: float = Field(gt=0, le=7 * 24 * 60)
    gap_pct: float = Field(gt=-1, le=10)


class OpeningGapParams(_Strict):
    """An overnight shock: a session opens ``gap_pct`` away from the prior close (the level persists);
    volume and spread surge at the open and fade over ``duration_bars``."""

    gap_pct: float = Field(gt=-1, le=10)
    duration_bars: Bars1To100k = "30min"
    volume_mult: float = Field(default=3.0, ge=1, le=1_000)
    spread_mult: float = Field(default=3.0, ge=1, le=1_000)

    @field_validator("gap_pct")
    @classmethod
    def _non_zero(cls, value: float) -> float:
        if value == 0:
            raise ValueError("must not be 0")
        return value


class ExchangeRules(_Strict):
    """US venue rules laid on a scenario's bars (scenarios/exchange_rules.py): limit-up/limit-down bands
    of tier 1 (5%) or 2 (10%), and market-wide circuit breakers (7/13/20%) on the index symbol."""

    luld_tier: Literal[1, 2] | None = None
    circuit_breaker_index: str | None = None

    @field_validator("circuit_breaker_index")
    @classmethod
    def _upper(cls, value: str | None) -> str | None:
        return None if value is None else value.upper()


class HistoricalReplayParams(_Strict):
    """A named window of the ingested data, unchanged."""

    start: datetime
    end: datetime

    @model_validator(mode="after")
    def _ordered(self) -> HistoricalReplayParams:
        if self.end <= self.start:
            raise ValueError("end must be after start")
        return self


class MonteCarloParams(_Strict):
    """``n_paths`` synthetic paths of ``horizon_bars``: stationary block bootstrap or GBM."""

    n_paths: int = Field(default=100, ge=1, le=100_000)
    method: Literal["block_bootstrap", "gbm"] = "block_bootstrap"
    block_bars: Bars1To100k = 60
    horizon_bars: Bars2To10M = 1_440  # bars, or a time (3d)


class EpisodeReplicaParams(_Strict):
    """A documented crash shape, scaled so that the realised drop matches the documented one.

    ``path`` lists knots ``[bar, depth]`` (depth 0 = no drop, 1 = the full target drop), linearly
    interpolated over ``episode_bars``; the level after the last knot persists. ``target_drop_pct`` is
    measured by ``measure`` over the episode, per symbol when it is a mapping.
    """

    episode_bars: int = Field(ge=2, le=100_000)
    path: tuple[tuple[int, float], ...] = Field(min_length=2)
    target_drop_pct: float | dict[str, float]
    measure: Literal["high_to_low", "prior_close_to_low"] = "high_to_low"
    reference: str = ""

    @model_validator(mode="after")
    def _check(self) -> EpisodeReplicaParams:
        bars = [bar for bar, _ in self.path]
        if bars != sorted(set(bars)) or bars[0] < 0 or bars[-1] > self.episode_bars:
            raise ValueError("path bars must increase strictly, within 0..episode_bars")
        if any(not 0 <= depth <= 1 for _, depth in self.path):
            raise ValueError("path depths must be between 0 and 1")
        targets = self.target_drop_pct.values() if isinstance(self.target_drop_pct, dict) else [self.target_drop_pct]
        if any(not 0 < t < 1 for t in targets):
            raise ValueError("target_drop_pct must be between 0 and 1")
        return self


# -------------------------------------------------------------------------------------- scenarios


#: The longest recovery tail a window may ask for: 30 days.
MAX_RECOVERY_TAIL_S = 30 * 86_400
#: Where a window can be anchored to the system's book (resolved from the unstressed run's exposure).
WindowAnchor = Literal["max_exposure", "position_open"]


class Window(_Strict):
    """Where the stress starts: a timestamp, an offset in bars from each symbol's first bar, or an anchor
    on the system's book (``at``: the bar of its largest exposure, or the first bar it holds a position),
    at most one of them (none: drawn from the seed). ``recovery_tail_s``: how long after the last
    stressed bar the verdict keeps measuring (None: the verdict defaults' tail)."""

    start: datetime | None = None
    offset_bars: int | None = Field(default=None, ge=0)
    at: WindowAnchor | None = None
    recovery_tail_s: float | None = Field(default=None, ge=0, le=MAX_RECOVERY_TAIL_S)

    @model_validator(mode="after")
    def _one(self) -> Window:
        given = [name for name in ("start", "offset_bars", "at") if getattr(self, name) is not None]
        if len(given) > 1:
            raise ValueError(f"give at most one of start, offset_bars, at (got {', '.join(given)})")
        if not given and self.recovery_tail_s is None:
            raise ValueError("give one of start, offset_bars, at, or a recovery_tail_s")
        return self


#: Scenario types whose bars are not a shock placed in the data (a replay, generated paths): no anchor.
UNANCHORED_TYPES = ("historical_replay", "monte_carlo")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _().,:'/+-]*$")


class _ScenarioBase(_Strict):
    name: str = Field(min_length=1, max_length=100)
    severity: Severity = "major"
    description: str = ""
    symbols: tuple[str, ...] = Field(min_length=1)
    window: Window | None = None
    seed: int = Field(default=0, ge=0, le=2**32 - 1)
    expect: dict[str, ScalarValue] = Field(default_factory=dict)
    faults: tuple[FaultSpec, ...] = ()
    exchange_rules: ExchangeRules | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME_RE.match(value):
            raise ValueError("letters, digits, spaces and _().,:'/+- only, starting with a letter or digit")
        return value

    @field_validator("symbols")
    @classmethod
    def _symbols(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        upper = tuple(s.upper() for s in value)
        if len(set(upper)) != len(upper):
            raise ValueError("a symbol is listed twice")
        return upper

    @field_validator("expect")
    @classmethod
    def _expect(cls, value: dict[str, ScalarValue]) -> dict[str, ScalarValue]:
        return check_expect(value)

    @model_validator(mode="after")
    def _anchor_needs_a_shock(self) -> _ScenarioBase:
        if self.window is not None and self.window.at is not None and self.type in UNANCHORED_TYPES:
            raise ValueError(f"window.at: a {self.type} scenario has no shock to place on the book")
        index = self.exchange_rules.circuit_breaker_index if self.exchange_rules else None
        if index is not None and index not in self.symbols:
            raise ValueError(f"exchange_rules.circuit_breaker_index: {index} is not one of the scenario's symbols")
        return self

    @property
    def key(self) -> str:
        """The partition key: the name in lower case with runs of other characters as '_'."""
        return scenario_key(self.name)

    @property
    def library_entry(self) -> dict[str, object]:
        """The listing shape users know: name, type, severity, description, parameters."""
        return {
            "name": self.name,
            "type": self.type,
            "severity": self.severity,
            "description": self.description,
            "symbols": list(self.symbols),
            "parameters": self.parameters.model_dump(mode="json", exclude_none=True),
        }


class FlashCrashScenario(_ScenarioBase):
    type: Literal["flash_crash"]
    parameters: FlashCrashParams


class FlashCrashLiteScenario(_ScenarioBase):
    type: Literal["flash_crash_lite"]
    parameters: FlashCrashLiteParams


class VolatilitySpikeScenario(_ScenarioBase):
    type: Literal["volatility_spike"]
    parameters: VolatilitySpikeParams


class LiquidityDropScenario(_ScenarioBase):
    type: Literal["liquidity_drop"]
    parameters: LiquidityDropParams


class SpreadExplosionScenario(_ScenarioBase):
    type: Literal["spread_explosion"]
    parameters: SpreadExplosionParams


class DataCorruptionScenario(_ScenarioBase):
    type: Literal["data_corruption"]
    parameters: DataCorruptionParams


class MixedCustomScenario(_ScenarioBase):
    type: Literal["mixed_custom"]
    parameters: MixedCustomParams


class CorrelationCascadeScenario(_ScenarioBase):
    type: Literal["correlation_cascade"]
    parameters: CorrelationCascadeParams

    @model_validator(mode="after")
    def _several_symbols(self) -> CorrelationCascadeScenario:
        if len(self.symbols) < 2:
            raise ValueError("symbols: a cascade needs at least two symbols")
        lags = self.parameters.lag_bars
        if isinstance(lags, tuple) and len(lags) != len(self.symbols) - 1:
            raise ValueError(f"parameters.lag_bars: give one lag per following symbol ({len(self.symbols) - 1})")
        return self


class TradingHaltScenario(_ScenarioBase):
    type: Literal["trading_halt"]
    parameters: TradingHaltParams


class OpeningGapScenario(_ScenarioBase):
    type: Literal["opening_gap"]
    parameters: OpeningGapParams


class HistoricalReplayScenario(_ScenarioBase):
    type: Literal["historical_replay"]
    parameters: HistoricalReplayParams


class MonteCarloScenario(_ScenarioBase):
    type: Literal["monte_carlo"]
    parameters: MonteCarloParams


class EpisodeReplicaScenario(_ScenarioBase):
    type: Literal["episode_replica"]
    parameters: EpisodeReplicaParams

    @model_validator(mode="after")
    def _targets_cover_symbols(self) -> EpisodeReplicaScenario:
        targets = self.parameters.target_drop_pct
        if isinstance(targets, dict):
            missing = [s for s in self.symbols if s not in {k.upper() for k in targets}]
            if missing:
                raise ValueError(f"parameters.target_drop_pct: no target for {', '.join(missing)}")
        return self


class DepthCollapseScenario(_ScenarioBase):
    type: Literal["depth_collapse"]
    parameters: DepthCollapseParams


Scenario = Annotated[
    FlashCrashScenario
    | FlashCrashLiteScenario
    | VolatilitySpikeScenario
    | LiquidityDropScenario
    | SpreadExplosionScenario
    | DataCorruptionScenario
    | MixedCustomScenario
    | CorrelationCascadeScenario
    | TradingHaltScenario
    | OpeningGapScenario
    | HistoricalReplayScenario
    | MonteCarloScenario
    | EpisodeReplicaScenario
    | DepthCollapseScenario,
    Field(discriminator="type"),
]

SCENARIO_ADAPTER: TypeAdapter[Scenario] = TypeAdapter(Scenario)
SCENARIO_TYPES: tuple[str, ...] = (
    "flash_crash",
    "flash_crash_lite",
    "volatility_spike",
    "liquidity_drop",
    "spread_explosion",
    "data_corruption",
    "mixed_custom",
    "correlation_cascade",
    "trading_halt",
    "opening_gap",
    "historical_replay",
    "monte_carlo",
    "episode_replica",
    "depth_collapse",
)


def scenario_key(name: str) -> str:
    """A scenario name as a partition key and file name: ``BTC Flash Crash 2021`` -> ``btc_flash_crash_2021``."""
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")
