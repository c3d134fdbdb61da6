"""Stress scenarios: the model, stress packs, and vectorised transforms over canonical bars."""

from stress_pipeline.scenarios.apply import apply_scenario, run_scenario
from stress_pipeline.scenarios.model import SCENARIO_TYPES, Scenario, scenario_key
from stress_pipeline.scenarios.packs import ScenarioPackError, load_pack, load_packs

__all__ = [
    "SCENARIO_TYPES",
    "Scenario",
    "ScenarioPackError",
    "apply_scenario",
    "load_pack",
    "load_packs",
    "run_scenario",
    "scenario_key",
]
