"""Partitions shared across asset groups."""

import dagster as dg

SYMBOLS_PARTITIONS_NAME = "symbols"

# One partition per symbol found under $STRESS_DATA_DIR/bars; the market sensor and
# `stress-pipeline run` register new ones.
symbols_partitions = dg.DynamicPartitionsDefinition(name=SYMBOLS_PARTITIONS_NAME)
