"""stress_pipeline: stress tests for trading systems.

``run_stress_test(scenario, bars, system)`` judges a system on a custom scenario in one call (see
``stress_pipeline.verdicts.api``); it is imported on first use, so the package itself stays light.
"""

__all__ = ["run_stress_test"]


def __getattr__(name: str):
    if name == "run_stress_test":
        from stress_pipeline.verdicts.api import run_stress_test

        return run_stress_test
    raise AttributeError(f"module 'stress_pipeline' has no attribute {name!r}")
