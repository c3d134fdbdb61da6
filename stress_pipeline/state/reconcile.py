"""Three-way reconciliation: exchange truth vs the PostgreSQL ledger vs the Redis snapshot.

Exchange truth is what the simulator filled: positions are the sum of signed fill quantities, cash is
the initial cash plus every fill's ``cash_delta``. The ledger is read back from PostgreSQL (its
fills, and the positions and cash its double entries give); Redis is the hot-state snapshot a live
system would trade on. The report lists every break (symbol, field, the three values, the largest
difference), the fills lost, duplicated or unexpected in the ledger, and passes when positions
agree exactly, cash within ``cash_tolerance`` (1 unit of the quote currency, the users' tolerance;
we expect exact), and every exchange fill is in the ledger exactly once.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

import pandas as pd

from stress_pipeline.state.records import Fill, money

CASH_TOLERANCE = Decimal("1")
CASH = "cash"


@dataclass(frozen=True)
class LedgerView:
    """What the ledger says: its fills, and the balances its entries give."""

    fills: Sequence[Fill]
    positions: Mapping[str, Decimal]
    cash: Decimal


@dataclass(frozen=True)
class HotView:
    """What Redis says."""

    positions: Mapping[str, Decimal]
    cash: Decimal


@dataclass(frozen=True)
class ReconciliationReport:
    breaks: pd.DataFrame  # symbol, field, exchange, ledger, redis, delta
    lost_fills: tuple[str, ...]  # idempotency keys filled on the exchange, missing from the ledger
    duplicated_fills: tuple[str, ...]  # keys present more than once in the ledger
    unexpected_fills: tuple[str, ...]  # keys in the ledger the exchange never filled
    exchange_fills: int
    ledger_fills: int
    cash_tolerance: Decimal
    passed: bool
    extra: dict[str, object] = field(default_factory=dict)  # buffer stats, outage and recovery times

    def summary(self) -> str:
        verdict = "clean" if self.passed else "BREAKS"
        return (
            f"reconciliation {verdict}: {self.exchange_fills} exchange fills, {self.ledger_fills} in the ledger, "
            f"{len(self.lost_fills)} lost, {len(self.duplicated_fills)} duplicated, "
            f"{len(self.unexpected_fills)} unexpected, {len(self.breaks)} break(s)"
        )


def reconcile(
    exchange_fills: Sequence[Fill],
    ledger: LedgerView,
    redis: HotView,
    *,
    initial_cash: Decimal,
    cash_tolerance: Decimal = CASH_TOLERANCE,
) -> ReconciliationReport:
    """Compare the three views; see the module docstring for what passes."""
    truth_positions, truth_cash = replay(exchange_fills, initial_cash)
    replay_positions, replay_cash = replay(ledger.fills, initial_cash)
    rows = []
    symbols = sorted(set(truth_positions) | set(ledger.positions) | set(redis.positions) | set(replay_positions))
    for symbol in symbols:
        values = (
            truth_positions.get(symbol, Decimal(0)),
            ledger.positions.get(symbol, Decimal(0)),
            redis.positions.get(symbol, Decimal(0)),
        )
        replayed = replay_positions.get(symbol, Decimal(0))
        if replayed != values[1]:
            rows.append(_row(symbol, "position (ledger entries vs fills)", values[0], replayed, values[2]))
        if len(set(values)) > 1:
            rows.append(_row(symbol, "position", *values))
    cash_values = (truth_cash, ledger.cash, redis.cash)
    cash_break = max(abs(a - b) for a in cash_values for b in cash_values)
    if cash_break != 0:
        rows.append(_row(CASH, "cash", *cash_values))
    if replay_cash != ledger.cash:
        rows.append(_row(CASH, "cash (ledger entries vs fills)", truth_cash, replay_cash, redis.cash))
    exchange_keys = Counter(f.idempotency_key for f in exchange_fills)
    ledger_keys = Counter(f.idempotency_key for f in ledger.fills)
    lost = tuple(sorted(set(exchange_keys) - set(ledger_keys)))
    duplicated = tuple(sorted(key for key, count in ledger_keys.items() if count > 1))
    unexpected = tuple(sorted(set(ledger_keys) - set(exchange_keys)))
    breaks = pd.DataFrame(rows, columns=["symbol", "field", "exchange", "ledger", "redis", "delta"])
    position_breaks = breaks[breaks["field"].str.startswith("position")]
    passed = position_breaks.empty and cash_break <= cash_tolerance and not (lost or duplicated or unexpected)
    return ReconciliationReport(
        breaks=breaks, lost_fills=lost, duplicated_fills=duplicated, unexpected_fills=unexpected,
        exchange_fills=len(exchange_fills), ledger_fills=len(ledger.fills), cash_tolerance=cash_tolerance,
        passed=bool(passed),
    )  # fmt: skip


def replay(fills: Sequence[Fill], initial_cash: Decimal) -> tuple[dict[str, Decimal], Decimal]:
    """Positions and cash from a sequence of fills, exactly."""
    positions: dict[str, Decimal] = {}
    cash = money(initial_cash)
    for fill in fills:
        positions[fill.symbol] = positions.get(fill.symbol, Decimal(0)) + fill.qty
        cash += fill.cash_delta
    return positions, cash


def _row(symbol: str, field_name: str, exchange: Decimal, ledger: Decimal, redis: Decimal) -> dict[str, object]:
    values = (exchange, ledger, redis)
    return {
        "symbol": symbol, "field": field_name, "exchange": str(exchange), "ledger": str(ledger), "redis": str(redis),
        "delta": str(max(values) - min(values)),
    }  # fmt: skip
