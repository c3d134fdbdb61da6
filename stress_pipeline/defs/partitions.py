"""Partitions shared across asset groups."""

import warnings

import dagster as dg

from stress_pipeline.drills.registry import DRILLS

# Partitioned asset checks (a preview feature of Dagster 1.13) and backfill policies (beta) are used
# knowingly, so their warnings are silenced once here rather than shown on every load.
warnings.filterwarnings(
    "ignore", message="Specifying a partitions_def on an AssetCheckSpec", category=dg.PreviewWarning
)
warnings.filterwarnings("ignore", message="Parameter `backfill_policy`", category=dg.BetaWarning)

SYMBOLS_PARTITIONS_NAME = "symbols"

# One partition per symbol found under $STRESS_DATA_DIR/bars; the market sensor and
# `stress-pipeline run` register new ones.
symbols_partitions = dg.DynamicPartitionsDefinition(name=SYMBOLS_PARTITIONS_NAME)

SCENARIOS_PARTITIONS_NAME = "scenarios"

# One partition per scenario key (see stress_pipeline.scenarios.scenario_key); scenario_catalog keeps
# the set in sync with the stress packs on disk.
scenarios_partitions = dg.DynamicPartitionsDefinition(name=SCENARIOS_PARTITIONS_NAME)

SWEEP_POINTS_PARTITIONS_NAME = "sweep_points"

# One partition per sweep point (``<sweep>__<hash8>``, see stress_pipeline.sweeps.spec); sweep_points keeps
# the set in sync with the sweep specs on disk.
sweep_points_partitions = dg.DynamicPartitionsDefinition(name=SWEEP_POINTS_PARTITIONS_NAME)

# One partition per operational drill of stress_pipeline.drills.registry.
drills_partitions = dg.StaticPartitionsDefinition(list(DRILLS))
