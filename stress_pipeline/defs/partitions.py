"""Partitions shared across asset groups."""

import warnings

import dagster as dg

# Partitioned asset checks (market_bars_quality, stressed_bars_invariants) are a preview feature of
# Dagster 1.13; we rely on them knowingly, so the warning is silenced once here rather than shown on
# every load of the definitions.
warnings.filterwarnings(
    "ignore", message="Specifying a partitions_def on an AssetCheckSpec", category=dg.PreviewWarning
)

SYMBOLS_PARTITIONS_NAME = "symbols"

# One partition per symbol found under $STRESS_DATA_DIR/bars; the market sensor and
# `stress-pipeline run` register new ones.
symbols_partitions = dg.DynamicPartitionsDefinition(name=SYMBOLS_PARTITIONS_NAME)

SCENARIOS_PARTITIONS_NAME = "scenarios"

# One partition per scenario key (see stress_pipeline.scenarios.scenario_key); scenario_catalog keeps
# the set in sync with the stress packs on disk.
scenarios_partitions = dg.DynamicPartitionsDefinition(name=SCENARIOS_PARTITIONS_NAME)
