"""Configuration shared by both simulations (validated, with documented defaults).

The paper run adds its realism knobs (exchange, risk policy) from data/policies/*.yaml; the backtest
uses only what is here. Costs are in basis points of traded notional.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from stress_pipeline.market.calendars import check_calendar


class SimConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    initial_capital: float = Field(default=100_000.0, gt=0)
    strategy: str = "trend"  # "trend" | "mean_reversion" | "breakout" | "package.module:callable"
    strategy_params: dict[str, float | int | str | bool] = Field(default_factory=dict)
    # Equal allocation: a strategy weight w of a symbol means clip(w * position_scale, +-max_weight)
    # * equity / n_symbols of notional (``simulation.booking``, shared by both simulations).
    # 0.5, half the equity at full conviction: keeps the default trend book on three coins inside the
    # emergency stop's 10% drawdown in calm markets, so the baseline shows the system, not its stops.
    position_scale: float = Field(default=0.5, gt=0, le=5)
    max_weight: float = Field(default=1.0, gt=0, le=5)  # |w| cap per symbol after scaling
    # The backtest's fixed costs per side: the default policy's taker fee (Binance USD-M futures,
    # 0.05%) and a fixed slippage of about half the spread of a liquid major. The paper run models
    # both for real (fee tiers, half the bar's spread, square-root impact), so with these defaults an
    # honest paper run costs about as much as the backtest assumes, or a little more.
    backtest_fee_bps: float = Field(default=5.0, ge=0)
    backtest_slippage_bps: float = Field(default=2.0, ge=0)
    # Sharpe and Sortino annualisation. None: inferred from the bars (metrics.infer_periods_per_year):
    # 365 with bars at weekends, 252 for a market closed at weekends.
    periods_per_year: int | None = Field(default=None, ge=1)
    # The market's trading calendar for annualisation (metrics.annualisation_of): 24/7 (365 days) or an
    # exchange_calendars code (XNYS, CMES...: 252 sessions x bars per session). None: inferred from the bars.
    calendar: str | None = None

    @field_validator("calendar")
    @classmethod
    def _known_calendar(cls, value: str | None) -> str | None:
        return None if value is None else check_calendar(value)
    seed: int = Field(default=0, ge=0)
    equity_sample_points: int = Field(default=50, ge=2, le=10_000)
