"""The canonical bar table: one row per symbol and bar, defined once and validated at the boundary.

Every loader produces it, every scenario transform keeps it, and the IO manager stores it. Columns
added by stress transforms (``stressed``, ``corrupted``, ``halted``) are optional here.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

PRICE_COLUMNS = ("open", "high", "low", "close")
BAR_COLUMNS = ("ts", "symbol", "open", "high", "low", "close", "volume", "spread_bps")
STRESS_FLAG_COLUMNS = ("stressed", "corrupted", "halted")

BAR_SCHEMA = pa.schema(
    [
        pa.field("ts", pa.timestamp("ns", tz="UTC"), nullable=False),
        pa.field("symbol", pa.string(), nullable=False),
        pa.field("open", pa.float64()),
        pa.field("high", pa.float64()),
        pa.field("low", pa.float64()),
        pa.field("close", pa.float64()),
        pa.field("volume", pa.float64()),
        pa.field("spread_bps", pa.float64()),
    ]
)

STRESSED_BAR_SCHEMA = BAR_SCHEMA.append(pa.field("stressed", pa.bool_(), nullable=False)).append(
    pa.field("corrupted", pa.bool_(), nullable=False)
).append(pa.field("halted", pa.bool_(), nullable=False))


class SchemaError(ValueError):
    """A frame does not have the canonical bar layout."""


def empty_bars() -> pd.DataFrame:
    """An empty frame with the canonical columns and dtypes."""
    return BAR_SCHEMA.empty_table().to_pandas()


def conform_bars(frame: pd.DataFrame) -> pd.DataFrame:
    """Return ``frame`` with the canonical column order and dtypes, or raise :class:`SchemaError`.

    Extra columns other than the stress flags are dropped; missing stress flags are not added.
    """
    missing = [c for c in BAR_COLUMNS if c not in frame.columns]
    if missing:
        raise SchemaError(f"missing column(s) {', '.join(missing)}; expected {', '.join(BAR_COLUMNS)}")
    columns = list(BAR_COLUMNS) + [c for c in STRESS_FLAG_COLUMNS if c in frame.columns]
    out = frame.loc[:, columns].copy()
    out["ts"] = pd.to_datetime(out["ts"], utc=True).astype("datetime64[ns, UTC]")
    out["symbol"] = out["symbol"].astype(str)
    for column in (*PRICE_COLUMNS, "volume", "spread_bps"):
        out[column] = out[column].astype(np.float64)
    for column in STRESS_FLAG_COLUMNS:
        if column in out.columns:
            out[column] = out[column].astype(bool)
    return out.reset_index(drop=True)


def to_arrow(frame: pd.DataFrame) -> pa.Table:
    """Convert canonical bars to an Arrow table with the canonical schema (stress flags if present)."""
    conformed = conform_bars(frame)
    schema = STRESSED_BAR_SCHEMA if all(c in conformed.columns for c in STRESS_FLAG_COLUMNS) else BAR_SCHEMA
    if schema is BAR_SCHEMA:
        conformed = conformed.loc[:, list(BAR_COLUMNS)]
    return pa.Table.from_pandas(conformed, schema=schema, preserve_index=False)
