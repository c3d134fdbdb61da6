"""The paper run's event log: event kinds, reason names, and the table built from the engine's arrays.

The compiled engine writes events into a preallocated record array (``EVENT_DTYPE``), one record
per event: integers ``ts`` (sim time, ns), ``kind``, ``symbol`` (-1 for portfolio events),
``order_id`` (-1 when no order), ``reason`` (a code of ``trading.risk.reasons`` or
``trading.exchange.reasons``), ``aux`` (the fill id for fills); floats ``qty``, ``price`` and four
kind-specific values ``a`` .. ``d``:

  ============== ======================= =========================== ==================================
  kind           qty                     price                       A, B, C, D
  ============== ======================= =========================== ==================================
  signal         new target weight       bar close                   previous weight
  order          signed quantity         limit price (NaN: market)   latency ms, attempt, limit?, IOC?
  reject         signed quantity         NaN                         retry-after s, attempt, code, retry?
  fill           signed quantity         fill price                  spread cost, impact cost, fee,
                                                                     maker? (1; -n: a taker that took n
                                                                     book levels)
  cancel         remaining quantity      NaN                         -
  risk_block     requested quantity      bar close                   approved quantity
  ess_transition NaN                     NaN                         from, to, drawdown, equity
  policy_change  NaN                     NaN                         from, to, win rate, closed trades
  stop_loss      position                stop level                  average entry price
  execution_     signed quantity         NaN                         attempts, last code
  failure
  reconnect      NaN                     NaN                         succeeded?, orders waiting
  ============== ======================= =========================== ==================================

``reconnect`` (the router's ``pause_on_outage`` only): a reconnect to an exchange found down, reason
EXCHANGE_OUTAGE while it still is, none once it answers.

:func:`event_table` turns them into the ARCHITECTURE.md columns (event_id, ts, kind, symbol,
order_id, qty, price, reason, details as JSON), merged in time order with the scenario's fault
start and end events. Ids are positions in that order, so the same inputs and seed give the same ids.
"""

from __future__ import annotations

import json
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
    "fault_start", "fault_end", "execution_failure", "reconnect",
)  # fmt: skip
(
    SIGNAL, ORDER, REJECT, FILL, CANCEL, RISK_BLOCK, ESS_TRANSITION, POLICY_CHANGE, STOP_LOSS,
    FAULT_START, FAULT_END, EXECUTION_FAILURE, RECONNECT,
) = range(len(KINDS))  # fmt: skip

EVENT_DTYPE = np.dtype(
    [
        ("ts", np.int64), ("kind", np.int64), ("symbol", np.int64), ("order_id", np.int64), ("reason", np.int64),
        ("aux", np.int64), ("qty", np.float64), ("price", np.float64), ("a", np.float64), ("b", np.float64),
        ("c", np.float64), ("d", np.float64),
    ],
    align=True,
)  # fmt: skip

REASON_NAMES: dict[int, str] = {0: "", **risk_reasons.REASON_NAMES, **order_reasons.REASON_NAMES}
EVENT_COLUMNS = ("event_id", "ts", "kind", "symbol", "order_id", "qty", "price", "reason", "details")
FILL_COLUMNS = (
    "ts", "symbol", "order_id", "fill_id", "qty", "price", "fee", "spread_cost", "impact_cost", "liquidity", "reason",
)  # fmt: skip


def event_table(log: np.ndarray, symbols: Sequence[str], faults: Iterable[FaultSpec] = (), start_ns: int = 0,
                end_ns: int | None = None) -> pd.DataFrame:  # fmt: skip
    """The ordered event log: engine events (``EVENT_DTYPE`` records) and the start and end of each
    fault that fall within [``start_ns``, ``end_ns``] (the simulated span), stably sorted by time."""
    fault_log, fault_details = _fault_rows(list(faults), start_ns, end_ns)
    rows = np.concatenate([fault_log, log]) if len(fault_log) else log
    # Faults first at equal times (a fault that starts at a bar close is in force for that close).
    order = np.argsort(rows["ts"], kind="stable")
    rows = rows[order]
    kind = rows["kind"]
    details = np.empty(len(rows), dtype=object)
    reasons = _reason_names(rows["reason"])
    is_fault = order < len(fault_log)
    if is_fault.any():
        picked = order[is_fault]
        details[is_fault] = [fault_details[i] for i in picked]
        reasons[is_fault] = [json.loads(fault_details[i])["kind"] for i in picked]
    engine = ~is_fault
    details[engine] = _details(rows[engine])
    sym_names = np.array([*symbols, None], dtype=object)
    order_ids = pd.array(np.where(rows["order_id"] >= 0, rows["order_id"], 0), dtype="Int64")
    order_ids[rows["order_id"] < 0] = pd.NA
    return pd.DataFrame(
        {
            "event_id": np.arange(len(rows), dtype=np.int64),
            "ts": _utc(rows["ts"]),
            "kind": pd.array(np.array(KINDS, dtype=object)[kind], dtype="str"),
            "symbol": pd.array(sym_names[rows["symbol"]], dtype="str"),
            "order_id": order_ids,
            "qty": rows["qty"],
            "price": rows["price"],
            "reason": pd.array(reasons, dtype="str"),
            "details": pd.array(details, dtype="str"),
        }
    )


def fill_rows(log: np.ndarray) -> np.ndarray:
    """The fill events of an engine log, in time order (stable: equal times keep the log's order)."""
    rows = log[log["kind"] == FILL]
    return rows[np.argsort(rows["ts"], kind="stable")]


def fill_table(rows: np.ndarray, symbols: Sequence[str]) -> pd.DataFrame:
    """Every execution, in time order, with its costs (``SimResult.fills``), from :func:`fill_rows`."""
    return pd.DataFrame(
        {
            "ts": _utc(rows["ts"]),
            "symbol": pd.array(np.array(symbols, dtype=object)[rows["symbol"]], dtype="str"),
            "order_id": rows["order_id"],
            "fill_id": rows["aux"],
            "qty": rows["qty"],
            "price": rows["price"],
            "fee": rows["c"],
            "spread_cost": rows["a"],
            "impact_cost": rows["b"],
            "liquidity": pd.array(np.where(rows["d"] > 0, "maker", "taker"), dtype="str"),
            "reason": pd.array(_reason_names(rows["reason"]), dtype="str"),
        }
    )


# ------------------------------------------------------------------------------------------ helpers


def _utc(ns: np.ndarray) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(np.ascontiguousarray(ns, dtype=np.int64).view("M8[ns]")).tz_localize("UTC")


def _reason_names(codes: np.ndarray) -> np.ndarray:
    """Reason names of codes (an unknown code shows as its number)."""
    unique, inverse = np.unique(codes, return_inverse=True)
    names = np.array([REASON_NAMES.get(int(code), str(code)) for code in unique], dtype=object)
    return names[inverse.reshape(-1)] if len(codes) else np.array([], dtype=object)


def _fault_rows(faults: list[FaultSpec], start_ns: int, end_ns: int | None) -> tuple[np.ndarray, list[str]]:
    rows, details = [], []
    for i, fault in enumerate(faults):
        begin, end = fault.window_ns(start_ns)
        info = {
            "kind": fault.kind, "at_s": fault.at_s, "duration_s": fault.duration_s, "params": dict(fault.params),
            "modelled_by_exchange": fault.kind in MODELLED,
        }  # fmt: skip
        for t, kind in ((begin, FAULT_START), (end, FAULT_END)):
            if end_ns is None or t <= end_ns:
                rows.append((t, kind, -1, -1, 0, i, *([np.nan] * 6)))
                details.append(json.dumps(info, sort_keys=True))
    return np.array(rows, dtype=EVENT_DTYPE), details


def _details(rows: np.ndarray) -> np.ndarray:
    """The JSON details of engine events, built per kind over whole columns (sorted keys, as
    ``json.dumps(..., sort_keys=True)`` writes them; NaN as null)."""
    out = np.full(len(rows), "{}", dtype=object)
    kind = rows["kind"]
    for code, build in _DETAIL_BUILDERS.items():
        pick = np.flatnonzero(kind == code)
        if len(pick):
            out[pick] = build(rows[pick])
    return out


def _num(values: np.ndarray) -> list[str]:
    """Each float as ``json.dumps`` writes it (the shortest repr; Infinity), except NaN: null."""
    return [_SPECIAL.get(text, text) for text in map(repr, values.tolist())]


def _int(values: np.ndarray) -> list[str]:
    return [str(int(v)) if v == v else "null" for v in values.tolist()]


def _flag(values: np.ndarray, yes: str, no: str) -> np.ndarray:
    return np.where(values != 0, yes, no)


def _names(values: np.ndarray, names: Sequence[str]) -> list[str]:
    return [json.dumps(names[int(v)]) if v == v else "null" for v in values.tolist()]


def _signal(rows):
    return [f'{{"previous_weight": {x}}}' for x in _num(rows["a"])]


def _order(rows):
    kinds, tifs = _flag(rows["c"], '"limit"', '"market"'), _flag(rows["d"], '"IOC"', '"GTC"')
    return [f'{{"attempt": {n}, "latency_ms": {x}, "tif": {f}, "type": {k}}}'
            for x, n, k, f in zip(_num(rows["a"]), _int(rows["b"]), kinds, tifs, strict=True)]  # fmt: skip


def _reject(rows):
    codes = [json.dumps(order_reasons.BINANCE_CODES.get(int(r))) for r in rows["reason"].tolist()]
    retry = _flag(rows["d"], "true", "false")
    return [f'{{"attempt": {n}, "code": {k}, "retry_after_s": {x}, "will_retry": {r}}}'
            for x, n, k, r in zip(_num(rows["a"]), _int(rows["b"]), codes, retry, strict=True)]  # fmt: skip


def _fill(rows):
    liquidity = np.where(rows["d"] > 0, '"maker"', '"taker"')
    levels = [f', "levels": {int(-d)}' if d < 0 else "" for d in rows["d"].tolist()]  # fills that walked a book
    return [f'{{"fee": {fee}, "fill_id": {i}, "impact_cost": {imp}{lv}, "liquidity": {liq}, "spread_cost": {spr}}}'
            for spr, imp, fee, liq, i, lv in zip(_num(rows["a"]), _num(rows["b"]), _num(rows["c"]), liquidity,
                                                 rows["aux"].tolist(), levels, strict=True)]  # fmt: skip


def _risk_block(rows):
    return [f'{{"approved_qty": {x}}}' for x in _num(rows["a"])]


def _ess(rows):
    return [f'{{"drawdown": {dd}, "equity": {eq}, "from": {f}, "to": {t}}}'
            for f, t, dd, eq in zip(_names(rows["a"], STATE_NAMES), _names(rows["b"], STATE_NAMES), _num(rows["c"]),
                                    _num(rows["d"]), strict=True)]  # fmt: skip


def _policy(rows):
    return [f'{{"closed_trades": {n}, "from": {f}, "to": {t}, "winrate": {w}}}'
            for f, t, w, n in zip(_names(rows["a"], MODE_NAMES), _names(rows["b"], MODE_NAMES), _num(rows["c"]),
                                  _int(rows["d"]), strict=True)]  # fmt: skip


def _stop(rows):
    return [f'{{"entry_price": {x}}}' for x in _num(rows["a"])]


def _reconnect(rows):
    return [f'{{"ok": {ok}, "waiting": {n}}}' for ok, n in zip(_flag(rows["a"], "true", "false"), _int(rows["b"]),
                                                               strict=True)]  # fmt: skip


def _failure(rows):
    return [f'{{"attempts": {n}, "last_code": {k}}}' for n, k in zip(_int(rows["a"]), _int(rows["b"]), strict=True)]


_SPECIAL = {"nan": "null", "inf": "Infinity", "-inf": "-Infinity"}  # repr -> JSON for what is not a number
_DETAIL_BUILDERS = {
    SIGNAL: _signal, ORDER: _order, REJECT: _reject, FILL: _fill, RISK_BLOCK: _risk_block, ESS_TRANSITION: _ess,
    POLICY_CHANGE: _policy, STOP_LOSS: _stop, EXECUTION_FAILURE: _failure, RECONNECT: _reconnect,
}  # fmt: skip
