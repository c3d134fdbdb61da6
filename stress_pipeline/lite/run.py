"""The hourly flash-crash lite on the live book: configure, read and evaluate, and respond to a breach.

:func:`run_lite` is the timed path (``stress-pipeline bench lite``): one Redis read of the book, then
:func:`~stress_pipeline.lite.evaluate.evaluate`. :func:`respond_to_breach` is what a breach does, in
order of urgency: the KILL_SWITCH is set in Redis (new orders stop at once), the alert goes to the
PagerDuty Events v2 endpoint through the durable queue, and the event is written to the ledger.

One alert per symbol set and hour. The dedup key is ``stress-pipeline/flash_crash_lite_breach/<set>:
<YYYY-MM-DDTHH>`` (the hour in UTC), so PagerDuty folds repeated triggers of one hour into one incident;
and the first breach of the hour claims ``<namespace>:lite_alert:<dedup key>`` in Redis (SET NX, kept
two hours), so later breaches of the same hour do not send it again at all (their ledger event says
``already raised``). The next hour's breach opens a new incident.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import redis

from stress_pipeline.lite.book import read_book
from stress_pipeline.lite.defaults import DEFAULT_RUN_ID, DEFAULT_SCENARIO, DEFAULT_SYMBOL_SET
from stress_pipeline.lite.evaluate import (
    DEFAULT_VAR_HORIZON_S,
    FIGURES,
    THRESHOLD_KEYS,
    LiteInputError,
    LiteMarket,
    LiteResult,
    LiteThresholds,
    evaluate,
)
from stress_pipeline.lite.killswitch import (
    TRIP,
    KillSwitchEvent,
    KillSwitchLedger,
    KillSwitchState,
    iso,
    read_state,
    trip,
)
from stress_pipeline.lite.symbol_sets import symbol_set, symbol_sets_path
from stress_pipeline.market.symbols import symbol_market
from stress_pipeline.monitoring.alerts import dedup_key, trigger
from stress_pipeline.monitoring.delivery import AlertSender
from stress_pipeline.scenarios.model import FlashCrashLiteParams
from stress_pipeline.scenarios.packs import ScenarioPackError, load_pack, pack_files
from stress_pipeline.state.hot_state import DEFAULT_NAMESPACE, HotStateKeys, redis_errors

#: Who trips the switch on a breach, as the ledger and the switch's ``by`` name it.
ACTOR = "lite_stress"
ALERT_FAILURE = "flash_crash_lite_breach"
#: How long the claim of an hour's alert is kept in Redis (beyond the hour it is for).
ALERT_CLAIM_S = 7_200
ALREADY_RAISED = "already raised this hour"


@dataclass(frozen=True)
class LiteConfig:
    """What one lite run shocks and how it judges: the live run, the set, the shock and its limits."""

    run_id: str
    symbol_set: str
    symbols: tuple[str, ...]
    scenario: str
    shock: FlashCrashLiteParams
    thresholds: LiteThresholds
    namespace: str = DEFAULT_NAMESPACE
    var_horizon_s: float = DEFAULT_VAR_HORIZON_S
    multipliers: tuple[float, ...] = ()  # contract multipliers of ``symbols`` (symbols.yaml); (): 1 each

    @property
    def keys(self) -> HotStateKeys:
        return HotStateKeys.of(self.run_id, self.namespace)


def lite_config(
    data_dir: Path, *, run_id: str = DEFAULT_RUN_ID, namespace: str = DEFAULT_NAMESPACE,
    symbol_set_name: str = DEFAULT_SYMBOL_SET, scenario: str = DEFAULT_SCENARIO,
    var_horizon_s: float = DEFAULT_VAR_HORIZON_S,
) -> LiteConfig:  # fmt: skip
    """The configuration from ``data_dir``: the set in ``symbol_sets.yaml``, the ``flash_crash_lite``
    scenario named ``scenario`` in ``stress_packs/`` (its parameters and its ``expect`` as thresholds)."""
    data_dir = Path(data_dir)
    symbols = symbol_set(symbol_sets_path(data_dir), symbol_set_name)
    found, path = find_lite_scenario(data_dir / "stress_packs", scenario)
    thresholds = LiteThresholds.from_expect(found.expect, f"{path}: scenario {found.name}")
    symbols_file = data_dir / "symbols.yaml"
    multipliers = tuple(symbol_market(symbols_file, s).contract_multiplier for s in symbols) if symbols_file.exists() \
        else ()  # fmt: skip
    return LiteConfig(run_id, symbol_set_name, symbols, found.name, found.parameters, thresholds, namespace,
                      float(var_horizon_s), multipliers)  # fmt: skip


def find_lite_scenario(packs_dir: Path, name: str):
    """The ``flash_crash_lite`` scenario ``name`` and its pack file. A pack that fails to load is named
    when the scenario is not found elsewhere (it may be the one that should define it)."""
    broken: list[str] = []
    for path in pack_files(Path(packs_dir)):
        try:
            pack = load_pack(path, memory_budget=None)
        except ScenarioPackError as err:
            broken.append(str(err))
            continue
        for scenario in pack.scenarios:
            if scenario.name == name or scenario.key == name:
                if scenario.type != "flash_crash_lite":
                    raise LiteInputError(f"{path}: scenario {scenario.name} is a {scenario.type} scenario; "
                                         "the lite run takes a flash_crash_lite one")  # fmt: skip
                return scenario, path
    why = f"; packs that failed to load: {' | '.join(broken)}" if broken else ""
    raise LiteInputError(f"{packs_dir}: no flash_crash_lite scenario named {name!r}{why}")


def run_lite(client: redis.Redis, config: LiteConfig, market: LiteMarket, *, now: datetime | None = None) -> LiteResult:
    """Read the live book of ``config`` from Redis and evaluate the shock on it (``market``: the set's prices)."""
    book = read_book(client, config.run_id, config.symbols, namespace=config.namespace, symbol_set=config.symbol_set)
    market = market.aligned(config.symbols)
    if config.multipliers:  # a futures book: exposure is quantity x price x the contract multiplier
        market = replace(market, multiplier=np.asarray(config.multipliers, dtype=np.float64))
    result = evaluate(
        book.qty, book.cash, market, config.shock, config.thresholds,
        symbol_set=config.symbol_set, scenario=config.scenario, var_horizon_s=config.var_horizon_s,
    )  # fmt: skip
    source = {"run_id": config.run_id, "namespace": config.namespace, "kill_switch_was_on": book.kill_switch,
              "market_as_of": None if market.as_of is None else str(market.as_of)}  # fmt: skip
    return replace(result, evaluated_at=now or datetime.now(UTC), source=source)


@dataclass(frozen=True)
class BreachResponse:
    """What a breach did: the switch (newly set or on already), the alert's outcome, the ledger event."""

    dedup_key: str
    kill_switch_set: bool
    kill_switch: KillSwitchState
    alert: str  # delivered, rejected, queued (kept for the next round), or ALREADY_RAISED
    ledger_event_id: int
    seconds_to_kill_switch: float
    seconds_to_alert: float

    def as_dict(self) -> dict[str, object]:
        return {"dedup_key": self.dedup_key, "kill_switch_set": self.kill_switch_set,
                "kill_switch": self.kill_switch.as_dict(), "alert": self.alert,
                "ledger_event_id": self.ledger_event_id, "seconds_to_kill_switch": self.seconds_to_kill_switch,
                "seconds_to_alert": self.seconds_to_alert}  # fmt: skip


def respond_to_breach(
    result: LiteResult, config: LiteConfig, *, client: redis.Redis, ledger: KillSwitchLedger, sender: AlertSender,
    now: datetime | None = None,
) -> BreachResponse:  # fmt: skip
    """Set the switch, page once for the set and hour, record the event; ``result`` must be a breach."""
    if not result.breached:
        raise ValueError(f"symbol set {result.symbol_set!r}: no breach to respond to")
    started = time.perf_counter()
    now = now or datetime.now(UTC)
    reason = breach_reason(result)
    newly = trip(client, config.keys, reason=reason, by=ACTOR, at=now)
    to_switch = time.perf_counter() - started
    key = alert_dedup_key(config.symbol_set, now)
    claim = f"{config.namespace}:lite_alert:{key}"
    with redis_errors(client):
        claimed = client.set(claim, iso(now), nx=True, ex=ALERT_CLAIM_S)
    if claimed:
        alert = trigger(
            ALERT_FAILURE, alert_subject(config.symbol_set, now), reason, severity="critical",
            source=f"stress-pipeline {ACTOR}", timestamp=now, component=config.symbol_set, group="lite",
            custom_details=plain(result.summary()),
        )  # fmt: skip
        done = [d for d in sender.send(alert) if d.dedup_key == key]
        outcome = done[-1].outcome if done else "queued"
    else:
        outcome = ALREADY_RAISED
    to_alert = time.perf_counter() - started
    state = KillSwitchState(True, reason, iso(now), ACTOR) if newly else read_state(client, config.keys)
    details = {**plain(result.summary()), "alert": outcome, "kill_switch_newly_set": newly}
    event_id = ledger.record(KillSwitchEvent(
        config.namespace, config.run_id, TRIP, now, ACTOR, reason, config.symbol_set, config.scenario, key, details,
    ))  # fmt: skip
    return BreachResponse(key, newly, state, outcome, event_id, to_switch, to_alert)


def lite_table(result: LiteResult, response: BreachResponse | None = None) -> pd.DataFrame:
    """What the ``lite_stress`` asset stores: one row per threshold (figure, value, limit, breached), with
    the set, the scenario, the live run, the time, whether the book took risk, and what a breach did."""
    table = result.table()
    table.insert(0, "symbol_set", result.symbol_set)
    table.insert(1, "scenario", result.scenario)
    table["run_id"] = str(result.source.get("run_id", ""))
    table["namespace"] = str(result.source.get("namespace", ""))
    table["evaluated_at"] = pd.Timestamp(result.evaluated_at) if result.evaluated_at else pd.NaT
    table["exercised"] = result.exercised
    table["detail"] = "" if result.exercised else f"the live book holds no position in {result.symbol_set}"
    table["kill_switch_set"] = bool(response and response.kill_switch_set)
    table["alert"] = response.alert if response else ""
    table["dedup_key"] = response.dedup_key if response else ""
    return table


def no_book_table(
    symbol_set_name: str, scenario: str, run_id: str, namespace: str, at: datetime | None = None
) -> pd.DataFrame:  # fmt: skip
    """The table of a run that found no live book (the run's hot state does not exist): nothing measured,
    nothing breached, not exercised, and ``detail`` saying so; the same columns as :func:`lite_table`."""
    table = pd.DataFrame({"criterion": list(THRESHOLD_KEYS), "figure": [FIGURES[k] for k in THRESHOLD_KEYS]})
    table.insert(0, "symbol_set", symbol_set_name)
    table.insert(1, "scenario", scenario)
    table["value"] = math.nan
    table["threshold"] = math.nan
    table["breached"] = False
    table["run_id"], table["namespace"] = run_id, namespace
    table["evaluated_at"] = pd.Timestamp(at or datetime.now(UTC))
    table["exercised"] = False
    prefix = HotStateKeys.of(run_id, namespace).prefix
    table["detail"] = f"no live book: the hot state {prefix} does not exist (no system is trading there)"
    table["kill_switch_set"] = False
    table["alert"] = ""
    table["dedup_key"] = ""
    return table


def breach_reason(result: LiteResult) -> str:
    """One line: the scenario, the set, and each breached figure against its limit."""
    parts = [f"{k} {getattr(result, FIGURES[k]):.4g} > {getattr(result.thresholds, k):.4g}" for k in result.breaches]
    worst = ", ".join(f"{row['symbol']} {row['loss']:.2f}" for row in result.top_losses(3))
    tail = f" (worst: {worst})" if worst else ""
    return f"{result.scenario} breach on {result.symbol_set}: {'; '.join(parts)}{tail}"


def alert_subject(symbol_set_name: str, moment: datetime) -> str:
    """The alert's subject: the set and the hour (UTC) of ``moment``."""
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return f"{symbol_set_name}:{moment.astimezone(UTC):%Y-%m-%dT%H}"


def alert_dedup_key(symbol_set_name: str, moment: datetime) -> str:
    return dedup_key(ALERT_FAILURE, alert_subject(symbol_set_name, moment))


def plain(value: object) -> object:
    """``value`` with NaN and infinities as None (JSON has no NaN), containers walked."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value

