"""The project's one configuration resource.

``StressResource`` carries everything a run is configured with: where state and data live, the
ledger and hot-state servers (and connections to them), the system under test (strategy, capital,
sizing, the decider its orders go to) and its trading policy. The IO managers read their storage
root from it, so a run configured with another ``home`` in the launchpad stores its outputs there
too. Each field is bound to its environment variable with ``dg.EnvVar`` when that variable is set (so
the UI shows where a value comes from), else it keeps the documented default; the launchpad can
override any of them per run. The core receives what it needs from here as arguments.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import dagster as dg
import redis
import sqlalchemy as sa
from pydantic import Field, PrivateAttr

from stress_pipeline.market.symbols import shared_calendar
from stress_pipeline.services import check_postgres, check_redis, postgres_engine, redis_client, resolve_service_urls
from stress_pipeline.settings import (
    DEFAULT_BUFFER_MAX_BYTES,
    DEFAULT_DATA_DIR,
    DEFAULT_HOME,
    DEFAULT_MAX_FILE_BYTES,
    DEFAULT_MAX_GAP_RATIO,
    DEFAULT_OUTAGE_BUDGET_S,
    DEFAULT_SCENARIO_MEMORY_BYTES,
    Settings,
    get_settings,
    make_settings,
)
from stress_pipeline.simulation.config import SimConfig
from stress_pipeline.trading.risk.policy import TradingPolicy, load_policy

_SIM_DEFAULTS = SimConfig()

# Field -> the environment variable it is bound to when set.
ENV_VARIABLES = {
    "home": "STRESS_HOME",
    "data_dir": "STRESS_DATA_DIR",
    "postgres_url": "STRESS_POSTGRES_URL",
    "redis_url": "STRESS_REDIS_URL",
    "decider": "STRESS_DECIDER",
    "strategy": "STRESS_STRATEGY",
    "policy": "STRESS_POLICY",
}


class StressResource(dg.ConfigurableResource):
    """Where the suite keeps its state, which servers it writes to, and which trading system it tests."""

    home: str = Field(default=DEFAULT_HOME, description="STRESS_HOME: storage, buffers, reports, embedded servers")
    data_dir: str = Field(default=DEFAULT_DATA_DIR, description="STRESS_DATA_DIR: bars, stress packs, policies")
    postgres_url: str | None = Field(default=None, description="STRESS_POSTGRES_URL; unset: the embedded PostgreSQL")
    redis_url: str | None = Field(default=None, description="STRESS_REDIS_URL; unset: the embedded Redis")
    max_gap_ratio: float = Field(default=DEFAULT_MAX_GAP_RATIO, description="largest share of missing bars accepted")
    max_file_bytes: int = Field(
        default=DEFAULT_MAX_FILE_BYTES, description="STRESS_MAX_FILE_BYTES: largest market data file, decompressed"
    )
    scenario_memory_bytes: int = Field(
        default=DEFAULT_SCENARIO_MEMORY_BYTES,
        description="STRESS_SCENARIO_MEMORY_BYTES: largest memory a scenario's generated paths may need",
    )
    outage_budget_s: float = Field(
        default=DEFAULT_OUTAGE_BUDGET_S, description="STRESS_OUTAGE_BUDGET_S: seconds an external server may be lost"
    )
    buffer_max_bytes: int = Field(
        default=DEFAULT_BUFFER_MAX_BYTES, description="STRESS_BUFFER_MAX_BYTES: cap of each disk buffer"
    )
    strategy: str = Field(
        default=_SIM_DEFAULTS.strategy, description="STRESS_STRATEGY: trend | mean_reversion | breakout | pkg.mod:fn"
    )
    strategy_params: dict[str, Any] = Field(
        default_factory=dict,
        description="STRESS_STRATEGY_PARAMS: the strategy's parameters; windows in bars (240) or time (4h, 1d)",
    )
    initial_capital: float = Field(default=_SIM_DEFAULTS.initial_capital, description="starting equity")
    position_scale: float = Field(default=_SIM_DEFAULTS.position_scale, description="weight x scale = allocation")
    calendar: str | None = Field(
        default=None, description="trading calendar of the metrics' annualisation: 24/7, XNYS, CMES...; unset: the "
        "calendar the run's symbols share in symbols.yaml, else inferred from the bars"
    )  # fmt: skip
    policy: str = Field(
        default="default", description="STRESS_POLICY: a policy name under data/policies, or a YAML path"
    )
    decider: str = Field(
        default="", description="STRESS_DECIDER: the decision function or risk governor the decision flood and the "
        "drills call, pkg.mod:callable; empty: the risk stack with its state in Redis"
    )  # fmt: skip
    _engine: sa.Engine | None = PrivateAttr(default=None)

    def settings(self) -> Settings:
        return make_settings(
            home=self.home, data_dir=self.data_dir, postgres_url=self.postgres_url, redis_url=self.redis_url,
            max_gap_ratio=self.max_gap_ratio, max_file_bytes=self.max_file_bytes,
            scenario_memory_bytes=self.scenario_memory_bytes, outage_budget_s=self.outage_budget_s,
            buffer_max_bytes=self.buffer_max_bytes,
        )  # fmt: skip

    def sim_config(self, symbols: Sequence[str] = ()) -> SimConfig:
        """The simulation configuration of a run on ``symbols`` (their shared calendar annualises metrics)."""
        return SimConfig(
            strategy=self.strategy,
            strategy_params=dict(self.strategy_params),
            initial_capital=self.initial_capital,
            position_scale=self.position_scale,
            calendar=self.calendar or shared_calendar(self.settings().symbols_file, symbols),
        )

    def trading_policy(self) -> TradingPolicy:
        return load_policy(self.policy, policies_dir=self.settings().policies_dir)

    def ledger_url(self) -> str:
        """The ledger database: the configured PostgreSQL, or the embedded one (started if needed)."""
        return resolve_service_urls(self.settings()).postgres_url

    def hot_state_url(self) -> str:
        """The hot-state store: the configured Redis, or the embedded one (started if needed)."""
        return resolve_service_urls(self.settings()).redis_url

    def get_engine(self) -> sa.Engine:
        """A SQLAlchemy engine (psycopg 3) on the ledger database, checked to answer."""
        if self._engine is None:
            url = self.ledger_url()
            check_postgres(url)
            self._engine = postgres_engine(url)
        return self._engine

    def get_redis(self) -> redis.Redis:
        """A client of the hot-state store, checked to answer."""
        url = self.hot_state_url()
        check_redis(url)
        return redis_client(url)


def stress_resource_from_env(**overrides: object) -> StressResource:
    """The resource with every set variable of ENV_VARIABLES bound through ``dg.EnvVar``.

    STRESS_MAX_GAP_RATIO, STRESS_MAX_FILE_BYTES, STRESS_SCENARIO_MEMORY_BYTES, STRESS_OUTAGE_BUDGET_S and
    STRESS_BUFFER_MAX_BYTES are numbers and STRESS_STRATEGY_PARAMS a mapping, which
    ``dg.EnvVar`` cannot carry: their values are read (and validated) here, when the definitions load.
    """
    bound: dict[str, object] = {field: dg.EnvVar(name) for field, name in ENV_VARIABLES.items() if os.environ.get(name)}
    settings = get_settings()
    bound["max_gap_ratio"] = settings.max_gap_ratio
    bound["max_file_bytes"] = settings.max_file_bytes
    bound["scenario_memory_bytes"] = settings.scenario_memory_bytes
    bound["outage_budget_s"] = settings.outage_budget_s
    bound["buffer_max_bytes"] = settings.buffer_max_bytes
    if os.environ.get("STRESS_STRATEGY_PARAMS"):
        bound["strategy_params"] = strategy_params_from_text(os.environ["STRESS_STRATEGY_PARAMS"])
    return StressResource(**{**bound, **overrides})


def strategy_params_from_text(text: str) -> dict[str, Any]:
    """STRESS_STRATEGY_PARAMS as a mapping: YAML or JSON, ``{fast: 10d, slow: 50d}``; anything else is an
    error naming the variable."""
    import yaml

    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ValueError(f"STRESS_STRATEGY_PARAMS: not YAML or JSON ({err.__class__.__name__}): {text!r}") from None
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value) or \
            not all(isinstance(v, str | int | float | bool) for v in value.values()):  # fmt: skip
        raise ValueError(f"STRESS_STRATEGY_PARAMS: expected a mapping of names to values such as {{fast: 10d, slow: "
                         f"50d}}, got {text!r}")  # fmt: skip
    return value


def default_resources() -> dict[str, object]:
    """The resources every code location of the project binds."""
    from stress_pipeline.defs.io_manager import parquet_io_manager, result_io_manager

    return {
        "stress": stress_resource_from_env(),
        "parquet_io_manager": parquet_io_manager,
        "result_io_manager": result_io_manager,
    }

