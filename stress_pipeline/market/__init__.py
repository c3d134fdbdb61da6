"""Market data: the canonical bar table, loaders, the synthetic generator, quality expectations."""

from stress_pipeline.market.errors import BarFileError
from stress_pipeline.market.loaders import load_bars
from stress_pipeline.market.schema import BAR_COLUMNS, BAR_SCHEMA, conform_bars

__all__ = ["BAR_COLUMNS", "BAR_SCHEMA", "BarFileError", "conform_bars", "load_bars"]
