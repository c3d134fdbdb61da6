"""Partitions shared across asset groups."""

import dagster as dg

SYMBOLS_PARTITIONS_NAME = "symbols"

# One partition per symbol found under $STRESS_DATA_DIR/bars; the market sensor and
# `stress-pipeline run` register new ones.
symbols_partitions = dg.DynamicPartitionsDefinition(name=SYMBOLS_PARTITIONS_NAME)

SCENARIOS_PARTITIONS_NAME = "scenarios"

# One partition per scenario key (see stress_pipeline.scenarios.scenario_key); scenario_catalog keeps
# the set in sync with the stress packs on disk.
scenarios_partitions = dg.DynamicPartitionsDefinition(name=SCENARIOS_PARTITIONS_NAME)
