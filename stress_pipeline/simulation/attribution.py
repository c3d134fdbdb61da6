"""Where the PnL goes between the backtest and the paper run: a waterfall whose parts sum to the gap.

The paper engine is run again on the scenario's prepared panel (cleaned once, signals and market
stress computed once; each run is the compiled engine alone, no tables) with its realism switched on
one source at a time, in this order:
everything off (the paper engine as an idealised simulator), then risk blocks, latency and timing,
partial and rejected fills (participation cap, rate limits, outages), spread, market impact, fees.
Each part is the PnL change its source causes given the ones before it, so the parts telescope:
backtest PnL + sum of parts = paper PnL, exactly (up to float rounding). The first part, from the
backtest to the idealised paper run, holds the backtest's fixed fee and slippage (removed) and any
difference between the vectorised and the event-driven model.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields

import pandas as pd

from stress_pipeline.market.panel import MarketPanel
from stress_pipeline.scenarios.fault_model import FaultSpec
from stress_pipeline.simulation.config import SimConfig
from stress_pipeline.simulation.paper import RealismToggles, paper_weights, simulate
from stress_pipeline.trading.risk.balancer import detect_stress
from stress_pipeline.trading.risk.policy import TradingPolicy

LADDER = (
    ("risk blocks", ("risk",)),
    ("latency and timing", ("latency",)),
    ("partial and rejected fills", ("partial_fills", "rate_limits", "outages")),
    ("spread", ("spread",)),
    ("impact", ("impact",)),
    ("fees", ("fees",)),
)
FIRST_PART = "backtest fixed costs and model"


@dataclass(frozen=True)
class Attribution:
    backtest_pnl: float
    paper_pnl: float
    parts: tuple[tuple[str, float], ...]  # (source, PnL change), in ladder order

    @property
    def total(self) -> float:
        return self.paper_pnl - self.backtest_pnl

    @property
    def residual(self) -> float:
        """What the parts do not explain: zero up to rounding, by construction."""
        return self.total - sum(delta for _, delta in self.parts)

    def table(self) -> pd.DataFrame:
        rows = [{"step": "backtest", "pnl_change": 0.0, "pnl": self.backtest_pnl}]
        level = self.backtest_pnl
        for name, delta in self.parts:
            level += delta
            rows.append({"step": name, "pnl_change": delta, "pnl": level})
        rows.append({"step": "paper", "pnl_change": self.total, "pnl": self.paper_pnl})
        return pd.DataFrame(rows)


def attribute_pnl(run_paper_with, toggles_type, *, backtest_pnl: float) -> Attribution:
    """Run the ladder. ``run_paper_with(toggles)`` runs the paper engine and returns its total PnL."""
    names = [f.name for f in fields(toggles_type)]
    enabled: set[str] = set()
    previous = float(run_paper_with(toggles_type(**dict.fromkeys(names, False))))
    parts = [(FIRST_PART, previous - backtest_pnl)]
    for label, sources in LADDER:
        enabled.update(sources)
        current = float(run_paper_with(toggles_type(**{name: name in enabled for name in names})))
        parts.append((label, current - previous))
        previous = current
    missing = set(names) - enabled
    if missing:
        current = float(run_paper_with(toggles_type(**dict.fromkeys(names, True))))
        parts.append(("other", current - previous))
        previous = current
    return Attribution(backtest_pnl=backtest_pnl, paper_pnl=previous, parts=tuple(parts))


def paper_pnl_runner(
    panel: MarketPanel, strategy, config: SimConfig, policy: TradingPolicy, faults: Iterable[FaultSpec] = ()
) -> Callable[[RealismToggles], float]:
    """``toggles -> paper total PnL`` on a prepared ``panel``, for :func:`attribute_pnl`: the strategy's
    weights and the market stress flags are computed once, each call runs only the compiled engine."""
    weights = paper_weights(strategy, panel, config)
    stressed = detect_stress(panel.high, panel.low, panel.spread_bps, panel.tradable, policy.risk.stress)
    faults = tuple(faults)

    def paper_pnl(toggles: RealismToggles) -> float:
        run = simulate(panel, weights, config, policy, faults=faults, toggles=toggles, stressed=stressed)
        return float(run.equity[-1]) - float(config.initial_capital)

    return paper_pnl
