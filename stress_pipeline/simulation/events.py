"""The paper run's event log: event kinds, reason names, and the table built from the engine's arrays.

The compiled engine writes events into two preallocated arrays, one row per event:

* integers ``EV_TS`` (sim time, ns), ``EV_KIND``, ``EV_SYMBOL`` (-1 for portfolio events),
  ``EV_ORDER`` (-1 when no order), ``EV_REASON`` (a code of ``trading.risk.reasons`` or
  ``trading.exchange.reasons``), ``EV_AUX`` (the fill id for fills);
* floats ``EV_QTY``, ``EV_PRICE`` and four kind-specific values ``EV_A`` .. ``EV_D``:

  ============== ======================= =========================== ==================================
  kind           qty                     price                       A, B, C, D
  ============== ======================= =========================== ==================================
  signal         new target weight       bar close                   previous weight
  order          signed quantity         limit price (NaN: market)   latency ms, attempt, limit?, IOC?
  reject         signed quantity         NaN                         retry-after s, attempt, code, retry?
  fill           signed quantity         fill price                  spread cost, impact cost, fee, maker?
  cancel         remaining quantity      NaN                         -
  risk_block     requested quantity      bar close                   approved quantity
  ess_transition NaN                     NaN                         from, to, drawdown, equity
  policy_change  NaN                     NaN                         from, to, win rate, closed trades
  stop_loss      position                stop level                  average entry price
  execution_     signed quantity         NaN                         attempts, last code
  failure
  ============== ======================= =========================== ==================================

:func:`event_table` turns them into the ARCHITECTURE.md columns (event_id, ts, kind, symbol,
order_id, qty, price, reason, details as JSON), merged in time order with the scenario's fault
start and end events. Ids are positions in that order, so the same inputs and seed give the same ids.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from stress_pipeline.scenarios.model import FaultSpec
from stress_pipeline.trading.exchange import reasons as order_reasons
from stress_pipeline.trading.exchange.faults import MODELLED
from stress_pipeline.trading.risk import reasons as risk_reasons
from stress_pipeline.trading.risk.policy_controller import MODE_NAMES
from stress_pipeline.trading.risk.safety_governor import STATE_NAMES

KINDS = (
    "signal", "order", "reject", "fill", "cancel", "risk_block", "ess_transition", "policy_change", "stop_loss",
    "fault_start", "fault_end", "execution_failure",
)  # fmt: skip
(
    SIGNAL, ORDER, REJECT, FILL, CANCEL, RISK_BLOCK, ESS_TRANSITION, POLICY_CHANGE, STOP_LOSS,
    FAULT_START, FAULT_END, EXECUTION_FAILURE,
) = range(len(KINDS))  # fmt: skip

EV_TS, EV_KIND, EV_SYMBOL, EV_ORDER, EV_REASON, EV_AUX = range(6)
EV_INT_COLUMNS = 6
EV_QTY, EV_PRICE, EV_A, EV_B, EV_C, EV_D = range(6)
EV_FLOAT_COLUMNS = 6

REASON_NAMES: dict[int, str] = {0: "", **risk_reasons.REASON_NAMES, **order_reasons.REASON_NAMES}
EVENT_COLUMNS = ("event_id", "ts", "kind", "symbol", "order_id", "qty", "price", "reason", "details")
FILL_COLUMNS = (
    "ts", "symbol", "order_id", "fill_id", "qty", "price", "fee", "spread_cost", "impact_cost", "liquidity", "reason",
)  # fmt: skip


def event_table(ev_i: np.ndarray, ev_f: np.ndarray, symbols: Sequence[str], faults: Iterable[FaultSpec] = (),
                start_ns: int = 0, end_ns: int | None = None) -> pd.DataFrame:  # fmt: skip
    """The ordered event log: engine events and the start and end of each fault that fall within
    [``start_ns``, ``end_ns``] (the simulated span), stably sorted by time."""
    fault_i, fault_f, fault_details = _fault_rows(list(faults), start_ns, end_ns)
    ints = np.concatenate([fault_i, ev_i]) if len(fault_i) else ev_i
    floats = np.concatenate([fault_f, ev_f]) if len(fault_i) else ev_f
    # Faults first at equal times (a fault that starts at a bar close is in force for that close).
    order = np.argsort(ints[:, EV_TS], kind="stable")
    ints, floats = ints[order], floats[order]
    details = _details(ints, floats, [*fault_details, *([None] * len(ev_i))], order)
    sym_names = np.array([*symbols, None], dtype=object)
    kinds = np.array(KINDS, dtype=object)[ints[:, EV_KIND]]
    reason_lookup = np.vectorize(lambda code: REASON_NAMES.get(int(code), str(code)), otypes=[object])
    reasons = reason_lookup(ints[:, EV_REASON]) if len(ints) else np.array([], dtype=object)
    fault_rows = ints[:, EV_KIND] >= FAULT_START
    fault_rows &= ints[:, EV_KIND] <= FAULT_END
    if fault_rows.any():
        reasons[fault_rows] = [json.loads(d)["kind"] for d in np.asarray(details, dtype=object)[fault_rows]]
    order_ids = pd.array(np.where(ints[:, EV_ORDER] >= 0, ints[:, EV_ORDER], 0), dtype="Int64")
    order_ids[ints[:, EV_ORDER] < 0] = pd.NA
    return pd.DataFrame(
        {
            "event_id": np.arange(len(ints), dtype=np.int64),
            "ts": pd.to_datetime(ints[:, EV_TS], unit="ns", utc=True),
            "kind": pd.array(kinds, dtype="str"),
            "symbol": pd.array(sym_names[ints[:, EV_SYMBOL]], dtype="str"),
            "order_id": order_ids,
            "qty": floats[:, EV_QTY],
            "price": floats[:, EV_PRICE],
            "reason": pd.array(reasons, dtype="str"),
            "details": pd.array(details, dtype="str"),
        }
    )


def fill_table(ev_i: np.ndarray, ev_f: np.ndarray, symbols: Sequence[str]) -> pd.DataFrame:
    """Every execution, in time order, with its costs (``SimResult.fills``)."""
    rows = ev_i[:, EV_KIND] == FILL
    ints, floats = ev_i[rows], ev_f[rows]
    order = np.argsort(ints[:, EV_TS], kind="stable")
    ints, floats = ints[order], floats[order]
    return pd.DataFrame(
        {
            "ts": pd.to_datetime(ints[:, EV_TS], unit="ns", utc=True),
            "symbol": pd.array(np.array(symbols, dtype=object)[ints[:, EV_SYMBOL]], dtype="str"),
            "order_id": ints[:, EV_ORDER],
            "fill_id": ints[:, EV_AUX],
            "qty": floats[:, EV_QTY],
            "price": floats[:, EV_PRICE],
            "fee": floats[:, EV_C],
            "spread_cost": floats[:, EV_A],
            "impact_cost": floats[:, EV_B],
            "liquidity": pd.array(np.where(floats[:, EV_D] > 0, "maker", "taker"), dtype="str"),
            "reason": pd.array([REASON_NAMES.get(int(c), "") for c in ints[:, EV_REASON]], dtype="str"),
        }
    )


# ------------------------------------------------------------------------------------------ helpers


def _fault_rows(faults: list[FaultSpec], start_ns: int, end_ns: int | None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    rows, details = [], []
    for i, fault in enumerate(faults):
        begin, end = fault.window_ns(start_ns)
        info = {
            "kind": fault.kind, "at_s": fault.at_s, "duration_s": fault.duration_s, "params": dict(fault.params),
            "modelled_by_exchange": fault.kind in MODELLED,
        }  # fmt: skip
        for t, kind in ((begin, FAULT_START), (end, FAULT_END)):
            if end_ns is None or t <= end_ns:
                rows.append((t, kind, -1, -1, 0, i))
                details.append(json.dumps(info, sort_keys=True))
    ints = np.array(rows, dtype=np.int64).reshape(-1, EV_INT_COLUMNS)
    return ints, np.full((len(rows), EV_FLOAT_COLUMNS), np.nan), details


def _details(ints: np.ndarray, floats: np.ndarray, given: list[str | None], order: np.ndarray) -> list[str]:
    given_sorted = [given[i] for i in order]
    out = []
    for row, fl, prior in zip(ints, floats, given_sorted, strict=True):
        out.append(prior if prior is not None else json.dumps(_detail(int(row[EV_KIND]), row, fl), sort_keys=True))
    return out


def _detail(kind: int, row: np.ndarray, fl: np.ndarray) -> dict[str, object]:
    a, b, c, d = (_num(x) for x in fl[EV_A:])
    if kind == SIGNAL:
        return {"previous_weight": a}
    if kind == ORDER:
        return {"latency_ms": a, "attempt": _int(b), "type": "limit" if c else "market", "tif": "IOC" if d else "GTC"}
    if kind == REJECT:
        code = order_reasons.BINANCE_CODES.get(int(row[EV_REASON]))
        return {"retry_after_s": a, "attempt": _int(b), "code": code, "will_retry": bool(d)}
    if kind == FILL:
        return {"spread_cost": a, "impact_cost": b, "fee": c, "liquidity": "maker" if d else "taker",
                "fill_id": int(row[EV_AUX])}  # fmt: skip
    if kind == RISK_BLOCK:
        return {"approved_qty": a}
    if kind == ESS_TRANSITION:
        return {"from": STATE_NAMES[_int(a)], "to": STATE_NAMES[_int(b)], "drawdown": c, "equity": d}
    if kind == POLICY_CHANGE:
        return {"from": MODE_NAMES[_int(a)], "to": MODE_NAMES[_int(b)], "winrate": c, "closed_trades": _int(d)}
    if kind == STOP_LOSS:
        return {"entry_price": a}
    if kind == EXECUTION_FAILURE:
        return {"attempts": _int(a), "last_code": _int(b)}
    return {}


def _num(x: float) -> float | None:
    return None if math.isnan(x) else float(x)


def _int(x: float | None) -> int | None:
    return None if x is None else int(x)
