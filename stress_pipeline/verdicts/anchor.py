"""Windows placed on the system's book: ``window: {at: max_exposure}`` or ``{at: position_open}``.

A scenario anchored this way stresses the book the system holds, not an empty one: the unstressed
(baseline) paper run of its symbols says where the system's gross exposure is largest, or where it
first holds a position, and the shock starts at the next bar, so that the exposure at the shock is
the anchored one. :func:`anchor_scenario` returns the scenario with that start as its window.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from stress_pipeline.scenarios.apply import select_symbols
from stress_pipeline.scenarios.arrays import BarArrays
from stress_pipeline.scenarios.catalog import baseline_scenario
from stress_pipeline.scenarios.model import Window
from stress_pipeline.scenarios.windows import anchor_index
from stress_pipeline.simulation.scenario_sims import simulate_scenario


@dataclass(frozen=True)
class Anchor:
    at: str
    start: pd.Timestamp  # the first stressed bar
    exposure: float  # gross exposure of the baseline at the bar before it (USDT)


def is_anchored(scenario) -> bool:
    window = getattr(scenario, "window", None)
    return window is not None and window.at is not None


def baseline_run(symbols, bars: pd.DataFrame | BarArrays, config, policy):
    """The paper run of the system on the unstressed bars of ``symbols`` (the verdicts' baseline)."""
    arrays = bars if isinstance(bars, BarArrays) else BarArrays.from_frame(bars)
    frame = select_symbols(arrays, tuple(symbols)).to_frame(copy=False)
    return simulate_scenario("paper", frame, baseline_scenario(symbols), config, policy)


def anchor_scenario(scenario, baseline) -> tuple[object, Anchor | None]:
    """``scenario`` with its anchored window resolved on ``baseline`` (a paper ``SimResult`` of its
    symbols, unstressed), and where it landed; an unanchored scenario comes back as it is."""
    if not is_anchored(scenario):
        return scenario, None
    window = scenario.window
    exposure = baseline.equity["gross_exposure"].to_numpy()
    index = anchor_index(window.at, exposure, reserve_bars=1)
    start = baseline.equity.index[index + 1]
    resolved = Window(start=start.to_pydatetime(), recovery_tail_s=window.recovery_tail_s)
    anchor = Anchor(at=window.at, start=start, exposure=float(exposure[index]))
    return scenario.model_copy(update={"window": resolved}), anchor


def anchor_record(anchor: Anchor) -> dict[str, object]:
    """Where an anchored window landed, as plain values (for run metadata)."""
    return {"at": anchor.at, "start": anchor.start.isoformat(), "exposure_usdt": round(anchor.exposure, 2)}
