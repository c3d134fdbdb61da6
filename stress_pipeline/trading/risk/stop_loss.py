"""Per-position stop-loss on the bar path.

A long position's stop sits ``pct`` below its average entry price, a short's ``pct`` above. The stop
triggers at the first moment the bar path (open, then the extremes, then close; see
``trading.exchange.fills``) reaches it, which may be the open when the market gaps through it. The
engine then sends a closing market order (reason STOP_LOSS) at that moment; it fills after the
order's latency, so in a crash the exit is usually worse than the stop level. A position opened
during a bar is protected from its fill onward.
"""

from __future__ import annotations

from stress_pipeline.trading.compiled import compiled
from stress_pipeline.trading.exchange.fills import first_touch


def stop_trigger(o: float, h: float, lo: float, c: float, *, side: float, entry: float, pct: float,
                 from_frac: float = 0.0) -> float | None:  # fmt: skip
    """The bar fraction at which the stop of a position (``side`` +1 long, -1 short) triggers, or None."""
    frac = stop_fraction(o, h, lo, c, from_frac, side, stop_level(entry, side, pct))
    return None if frac < 0 else float(frac)


@compiled
def stop_level(entry: float, side: float, pct: float) -> float:
    return entry * (1.0 - pct) if side > 0.0 else entry * (1.0 + pct)


@compiled
def stop_fraction(o: float, h: float, lo: float, c: float, from_frac: float, side: float, level: float) -> float:
    """First fraction >= ``from_frac`` where the path reaches ``level`` against the position; -1 if never."""
    return first_touch(o, h, lo, c, from_frac, level, side > 0.0)
