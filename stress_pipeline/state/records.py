"""The records the live state layer moves around, with exact amounts.

The simulator works in floats; the ledger, the hot state and reconciliation work in ``Decimal``
quantised once, here, at the boundary: quantities and prices to 1e-8, money (notional, fees, cash) to
1e-8 of the quote currency. Every party computes a fill's cash effect from the same quantised
numbers (``cash_delta``), so exchange truth, ledger replay and the Redis snapshot can agree exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal

QTY_QUANTUM = Decimal("1e-8")
PRICE_QUANTUM = Decimal("1e-8")
MONEY_QUANTUM = Decimal("1e-8")


def qty(value: float | str | Decimal) -> Decimal:
    return Decimal(str(value)).quantize(QTY_QUANTUM, rounding=ROUND_HALF_EVEN)


def price(value: float | str | Decimal) -> Decimal:
    return Decimal(str(value)).quantize(PRICE_QUANTUM, rounding=ROUND_HALF_EVEN)


def money(value: float | str | Decimal) -> Decimal:
    return Decimal(str(value)).quantize(MONEY_QUANTUM, rounding=ROUND_HALF_EVEN)


@dataclass(frozen=True)
class Fill:
    """One execution as the exchange reports it; ``qty`` is signed (buy > 0)."""

    run_id: str
    fill_id: str  # the exchange's fill id, unique within a run
    event_id: int  # the paper run's event id of the fill (orders events for idempotent replay)
    ts_ns: int
    symbol: str
    order_id: int
    qty: Decimal
    price: Decimal
    fee: Decimal

    @property
    def idempotency_key(self) -> str:
        """Run id + exchange fill id: writing a fill twice must change nothing."""
        return f"{self.run_id}:{self.fill_id}"

    @property
    def notional(self) -> Decimal:
        return money(self.qty * self.price)

    @property
    def cash_delta(self) -> Decimal:
        """Cash change of the account: pay for buys, receive for sells, pay the fee."""
        return money(-self.qty * self.price - self.fee)


def fill_from_values(
    run_id: str, fill_id: str | int, event_id: int, ts_ns: int, symbol: str, order_id: int,
    qty_value: float, price_value: float, fee_value: float,
) -> Fill:
    """A :class:`Fill` from simulator floats, quantised."""
    return Fill(
        run_id=run_id, fill_id=str(fill_id), event_id=int(event_id), ts_ns=int(ts_ns), symbol=symbol,
        order_id=int(order_id), qty=qty(qty_value), price=price(price_value), fee=money(fee_value),
    )  # fmt: skip


@dataclass(frozen=True)
class Mark:
    """A heartbeat with the account's mark-to-market equity, written every ``heartbeat_s`` of sim time.

    A live system publishes these continuously; during an outage they are buffered like fills.
    """

    run_id: str
    ts_ns: int
    equity: Decimal
