"""The records the live state layer moves around, with exact amounts.

The simulator works in floats; the ledger, the hot state and reconciliation work in ``Decimal``
quantised once, here, at the boundary: quantities and prices to 1e-8, money (notional, fees, cash) to
1e-8 of the quote currency. Every party computes a fill's cash effect from the same quantised
numbers (``cash_delta``), so exchange truth, ledger replay and the Redis snapshot can agree exactly.

Arithmetic on amounts runs in :data:`EXACT`, a context wide enough for any product of two amounts the
ledger can hold (``NUMERIC(38, 8)``: 38 digits each), so the only rounding is the explicit one to 1e-8.
``cash_delta`` is on the hot path of ingest and reconciliation (a million fills are a million calls):
it is one fused multiply-add and one quantisation, without passing through text.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Context, Decimal, DivisionByZero, InvalidOperation, Overflow

QTY_QUANTUM = Decimal("1e-8")
PRICE_QUANTUM = Decimal("1e-8")
MONEY_QUANTUM = Decimal("1e-8")
#: Exact for sums and products of ledger amounts: 2 x 38 digits plus headroom for long sums.
EXACT = Context(prec=100, rounding=ROUND_HALF_EVEN, traps=[InvalidOperation, DivisionByZero, Overflow])


def qty(value: float | str | Decimal) -> Decimal:
    return _decimal(value).quantize(QTY_QUANTUM, None, EXACT)


def price(value: float | str | Decimal) -> Decimal:
    return _decimal(value).quantize(PRICE_QUANTUM, None, EXACT)


def money(value: float | str | Decimal) -> Decimal:
    return _decimal(value).quantize(MONEY_QUANTUM, None, EXACT)


def cash_delta(qty: Decimal, price: Decimal, fee: Decimal) -> Decimal:
    """The cash change of a fill of signed ``qty`` at ``price`` paying ``fee``: ``-(qty * price) - fee``
    computed exactly, then rounded half-even to 1e-8 (the one rounding of a fill's cash effect).

    The context goes positionally: parsing keyword arguments would cost as much as the arithmetic."""
    return qty.copy_negate().fma(price, fee.copy_negate(), EXACT).quantize(MONEY_QUANTUM, None, EXACT)


def _decimal(value: float | str | Decimal) -> Decimal:
    """A float through its shortest repr (0.1 + 0.2 -> 0.30000000000000004, not the binary expansion)."""
    return value if isinstance(value, Decimal) else Decimal(str(value))


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
        return EXACT.multiply(self.qty, self.price).quantize(MONEY_QUANTUM, None, EXACT)

    @property
    def cash_delta(self) -> Decimal:
        """Cash change of the account: pay for buys, receive for sells, pay the fee."""
        return cash_delta(self.qty, self.price, self.fee)


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
