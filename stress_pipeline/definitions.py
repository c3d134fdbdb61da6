"""The code location Dagster loads (workspace.yaml, `dagster dev`, `dagster definitions validate`)."""

from stress_pipeline.defs import build_definitions

defs = build_definitions()
