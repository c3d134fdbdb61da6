"""What a transform returns: the stressed bars and what it promised about them."""

from __future__ import annotations

from dataclasses import dataclass, field

from stress_pipeline.scenarios.arrays import BarArrays


@dataclass(frozen=True)
class StressResult:
    """Stressed bars of the scenario's symbols and, per symbol, where the stress is and what it does.

    ``windows`` maps a symbol to ``(start_ns, end_ns)``: the timestamps of the first and last bar the
    stress alters (for the realised statistics); ``pre_shock_ns`` the bar whose close is the pre-shock
    level. ``expected_drop`` holds the drop (0.30 for -30%) the transform promises for a symbol, as
    measured by ``drop_measure`` ("pre_close_to_low" by default, "high_to_low" for episode replicas,
    "gap_open" for trading halts); the ``stressed_bars_invariants`` check compares it with the bars.
    ``rules`` records what the scenario's exchange rules did (LULD pauses, circuit-breaker halts).
    """

    bars: BarArrays
    windows: dict[str, tuple[int, int]] = field(default_factory=dict)
    pre_shock_ns: dict[str, int] = field(default_factory=dict)
    expected_drop: dict[str, float] = field(default_factory=dict)
    drop_measure: str = "pre_close_to_low"
    rules: dict[str, object] = field(default_factory=dict)
