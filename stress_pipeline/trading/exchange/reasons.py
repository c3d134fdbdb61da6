"""Reason codes of the order path (router, client, exchange), as small integers for the compiled engine.

The event log spells them out (``simulation.events.REASON_NAMES``). Risk-stack codes live in
``trading.risk.reasons``; the two ranges never overlap.
"""

from __future__ import annotations

NONE = 0

# Why an order was sent (the ``reason`` of order and fill events).
REBALANCE = 200
STOP_LOSS_EXIT = 201
ESS_FLATTEN = 202

# Why the venue refused it.
EXCHANGE_OUTAGE = 210
TOO_MANY_REQUESTS = 211  # Binance -1003
TOO_MANY_ORDERS = 212  # Binance -1015

# Why an order was cancelled.
REPLACED = 220
IOC_EXPIRED = 221
LIMIT_TIMEOUT = 222
CANCEL_FOR_STOP = 223
CANCEL_FOR_FLATTEN = 224

# Why the client gave up.
RETRIES_EXHAUSTED = 230

BINANCE_CODES = {TOO_MANY_REQUESTS: -1003, TOO_MANY_ORDERS: -1015}

REASON_NAMES = {
    REBALANCE: "REBALANCE",
    STOP_LOSS_EXIT: "STOP_LOSS",
    ESS_FLATTEN: "ESS_FLATTEN",
    EXCHANGE_OUTAGE: "EXCHANGE_OUTAGE",
    TOO_MANY_REQUESTS: "TOO_MANY_REQUESTS",
    TOO_MANY_ORDERS: "TOO_MANY_ORDERS",
    REPLACED: "REPLACED",
    IOC_EXPIRED: "IOC_EXPIRED",
    LIMIT_TIMEOUT: "LIMIT_TIMEOUT",
    CANCEL_FOR_STOP: "STOP_LOSS",
    CANCEL_FOR_FLATTEN: "ESS_FLATTEN",
    RETRIES_EXHAUSTED: "RATE_LIMIT_RETRIES_EXHAUSTED",
}
