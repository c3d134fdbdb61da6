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
from decimal import Decimal, localcontext
from operator import attrgetter

import pandas as pd

from stress_pipeline.state.records import EXACT, Fill, money

CASH_TOLERANCE = Decimal("1")
CASH = "cash"
_ZERO = Decimal(0)
_RUN_ID = attrgetter("run_id")
_FILL_ID = attrgetter("fill_id")
_SYMBOL = attrgetter("symbol")
_QTY = attrgetter("qty")


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
    with localcontext(EXACT):  # differences of amounts, never rounded
        rows = _position_breaks(truth_positions, ledger.positions, redis.positions, replay_positions)
        cash_values = (truth_cash, ledger.cash, redis.cash)
        cash_break = max(cash_values) - min(cash_values)
        if cash_break != 0:
            rows.append(_row(CASH, "cash", *cash_values))
        if replay_cash != ledger.cash:
            rows.append(_row(CASH, "cash (ledger entries vs fills)", truth_cash, replay_cash, redis.cash))
    lost, duplicated, unexpected = _fill_key_differences(exchange_fills, ledger.fills)
    breaks = pd.DataFrame(rows, columns=["symbol", "field", "exchange", "ledger", "redis", "delta"])
    position_breaks = breaks[breaks["field"].str.startswith("position")]
    passed = position_breaks.empty and cash_break <= cash_tolerance and not (lost or duplicated or unexpected)
    return ReconciliationReport(
        breaks=breaks, lost_fills=lost, duplicated_fills=duplicated, unexpected_fills=unexpected,
        exchange_fills=len(exchange_fills), ledger_fills=len(ledger.fills), cash_tolerance=cash_tolerance,
        passed=bool(passed),
    )  # fmt: skip


def replay(fills: Sequence[Fill], initial_cash: Decimal) -> tuple[dict[str, Decimal], Decimal]:
    """Positions and cash from a sequence of fills, exactly (sums in the records' exact context)."""
    positions: dict[str, Decimal] = {}
    get = positions.get
    with localcontext(EXACT):
        cash = money(initial_cash) + sum([fill.cash_delta for fill in fills], _ZERO)
        for symbol, quantity in zip(map(_SYMBOL, fills), map(_QTY, fills), strict=True):
            positions[symbol] = get(symbol, _ZERO) + quantity
    return positions, cash


def _position_breaks(
    truth: Mapping[str, Decimal], ledger: Mapping[str, Decimal], redis: Mapping[str, Decimal],
    replayed: Mapping[str, Decimal],
) -> list[dict[str, object]]:  # fmt: skip
    """A row per symbol whose three positions differ, and per symbol whose ledger entries disagree with
    its ledger fills."""
    rows = []
    for symbol in sorted(set(truth) | set(ledger) | set(redis) | set(replayed)):
        values = (truth.get(symbol, _ZERO), ledger.get(symbol, _ZERO), redis.get(symbol, _ZERO))
        from_fills = replayed.get(symbol, _ZERO)
        if from_fills != values[1]:
            rows.append(_row(symbol, "position (ledger entries vs fills)", values[0], from_fills, values[2]))
        if len(set(values)) > 1:
            rows.append(_row(symbol, "position", *values))
    return rows


def _fill_key_differences(
    exchange: Sequence[Fill], ledger: Sequence[Fill]
) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """Idempotency keys lost (exchange, not ledger), duplicated (in the ledger) and unexpected (ledger,
    not exchange), each sorted.

    Fill ids are compared run by run (a run is one run id almost always), as plain strings: a tuple or
    a "run:fill" string per fill would cost more than all the rest of reconciliation. Keys are spelt
    out only for the fills reported.
    """
    exchange_ids, ledger_ids = _fill_ids_by_run(exchange), _fill_ids_by_run(ledger)
    lost: list[str] = []
    duplicated: list[str] = []
    unexpected: list[str] = []
    for run_id in exchange_ids.keys() | ledger_ids.keys():
        truth, stored = exchange_ids.get(run_id, []), ledger_ids.get(run_id, [])
        stored_set = set(stored)
        if len(stored_set) != len(stored):
            duplicated += [f"{run_id}:{key}" for key, count in Counter(stored).items() if count > 1]
        if truth == stored:  # the same fills in the same order: nothing lost, nothing unexpected
            continue
        truth_set = set(truth)
        lost += [f"{run_id}:{key}" for key in truth_set - stored_set]
        unexpected += [f"{run_id}:{key}" for key in stored_set - truth_set]
    return tuple(sorted(lost)), tuple(sorted(duplicated)), tuple(sorted(unexpected))


def _fill_ids_by_run(fills: Sequence[Fill]) -> dict[str, list[str]]:
    run_ids = set(map(_RUN_ID, fills))
    if len(run_ids) == 1:
        return {run_ids.pop(): list(map(_FILL_ID, fills))}
    grouped: dict[str, list[str]] = {run_id: [] for run_id in run_ids}
    for fill in fills:
        grouped[fill.run_id].append(fill.fill_id)
    return grouped


def _row(symbol: str, field_name: str, exchange: Decimal, ledger: Decimal, redis: Decimal) -> dict[str, object]:
    values = (exchange, ledger, redis)
    return {
        "symbol": symbol, "field": field_name, "exchange": str(exchange), "ledger": str(ledger), "redis": str(redis),
        "delta": str(max(values) - min(values)),
    }  # fmt: skip
