"""Which live book the hourly lite stress shocks: the ``lite`` resource.

Each field is bound to its environment variable with ``dg.EnvVar`` when that variable is set (so the UI
shows the variable, not the value), else it keeps the documented default; the launchpad can override
any of them per run.
"""

import os

import dagster as dg
from pydantic import Field

from stress_pipeline.lite.defaults import DEFAULT_NAMESPACE, DEFAULT_RUN_ID, DEFAULT_SCENARIO, DEFAULT_SYMBOL_SET
from stress_pipeline.lite.evaluate import DEFAULT_LOOKBACK_BARS, DEFAULT_VAR_HORIZON_S

ENV_VARIABLES = {
    "run_id": "STRESS_LIVE_RUN_ID",
    "namespace": "STRESS_LIVE_NAMESPACE",
    "symbol_set": "STRESS_LITE_SYMBOL_SET",
    "scenario": "STRESS_LITE_SCENARIO",
}


class LiteResource(dg.ConfigurableResource):
    """The live run (its hot state in the `stress` resource's Redis), the symbol set and the scenario."""

    run_id: str = Field(default=DEFAULT_RUN_ID, description="STRESS_LIVE_RUN_ID: the live run whose book is shocked")
    namespace: str = Field(default=DEFAULT_NAMESPACE, description="STRESS_LIVE_NAMESPACE: its hot-state namespace")
    symbol_set: str = Field(default=DEFAULT_SYMBOL_SET,
                            description="STRESS_LITE_SYMBOL_SET: a set of data/symbol_sets.yaml")  # fmt: skip
    scenario: str = Field(
        default=DEFAULT_SCENARIO, description="STRESS_LITE_SCENARIO: a flash_crash_lite scenario of the stress packs"
    )
    lookback_bars: int = Field(default=DEFAULT_LOOKBACK_BARS, description="bars of returns behind the normal VaR")
    var_horizon_s: float = Field(default=DEFAULT_VAR_HORIZON_S, description="the normal VaR's horizon, seconds")


def lite_resource_from_env(**overrides: object) -> LiteResource:
    bound = {field: dg.EnvVar(name) for field, name in ENV_VARIABLES.items() if os.environ.get(name)}
    return LiteResource(**{**bound, **overrides})
