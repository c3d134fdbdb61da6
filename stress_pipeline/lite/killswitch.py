"""The KILL_SWITCH of a run: set with its reason, time and author in Redis, every change in the ledger.

Redis holds what the trading system reads on every order: ``...:kill_switch`` (``"1"`` on, ``"0"`` off;
the risk stack refuses every new order while it is on, ``trading/risk/stack.py``) and, beside it, the
hash ``...:kill_switch_info`` (``reason``, ``at``, ``by``) of the trip that set it. Both change in one
Lua script, so a reader never sees the switch without its reason. A trip while the switch is already
on changes nothing (the first trip's reason and time stand) and says so; the run's hot state must
exist (an unknown run is an error, not a switch set on nothing).

The ledger (PostgreSQL, schema ``stress_ledger``, table ``kill_switch_events``, migration 0003) keeps
every trip and reset, append-only: when, by whom, why, and for a trip the symbol set, the scenario,
the alert's dedup key and the figures that breached.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import redis
import sqlalchemy as sa

from stress_pipeline.state.hot_state import DEFAULT_NAMESPACE, HotStateKeys, HotStateNotInitialisedError, redis_errors
from stress_pipeline.state.ledger_schema import DEFAULT_SCHEMA, ledger_tables, migrate, postgres_errors

TRIP, RESET = "trip", "reset"

_TRIP_LUA = r"""
-- KEYS: kill_switch, kill_switch_info. ARGV: reason, at, by. 1: set now; 0: it was on already.
local current = redis.call('GET', KEYS[1])
if not current then return redis.error_reply('NOINIT ' .. KEYS[1] .. ' is not set') end
if current == '1' then return 0 end
redis.call('SET', KEYS[1], '1')
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[2], 'reason', ARGV[1], 'at', ARGV[2], 'by', ARGV[3])
return 1
"""
_RESET_LUA = r"""
-- KEYS: kill_switch, kill_switch_info. The state before: {switch, reason, at, by}.
local current = redis.call('GET', KEYS[1])
if not current then return redis.error_reply('NOINIT ' .. KEYS[1] .. ' is not set') end
local info = redis.call('HMGET', KEYS[2], 'reason', 'at', 'by')
redis.call('SET', KEYS[1], '0')
redis.call('DEL', KEYS[2])
return {current, info[1] or '', info[2] or '', info[3] or ''}
"""


@dataclass(frozen=True)
class KillSwitchState:
    """The switch as Redis holds it: on or off, and the reason, time (ISO 8601) and author of its trip."""

    on: bool
    reason: str = ""
    at: str = ""
    by: str = ""

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def trip(client: redis.Redis, keys: HotStateKeys, *, reason: str, by: str, at: datetime) -> bool:
    """Set the switch with ``reason``, ``at`` and ``by``; True if it was off (False: on already, unchanged)."""
    _require_text(reason=reason, by=by)
    with redis_errors(client):
        try:
            return bool(client.eval(_TRIP_LUA, 2, keys.kill_switch, keys.kill_switch_info, reason, iso(at), by))
        except redis.exceptions.ResponseError as err:
            raise _not_initialised(keys, err) from err


def reset(client: redis.Redis, keys: HotStateKeys) -> KillSwitchState:
    """Clear the switch; returns the state it had (the caller records who reset it and why)."""
    with redis_errors(client):
        try:
            current, reason, at, by = client.eval(_RESET_LUA, 2, keys.kill_switch, keys.kill_switch_info)
        except redis.exceptions.ResponseError as err:
            raise _not_initialised(keys, err) from err
    return KillSwitchState(_text(current) == "1", _text(reason), _text(at), _text(by))


def read_state(client: redis.Redis, keys: HotStateKeys) -> KillSwitchState:
    with redis_errors(client):
        pipe = client.pipeline(transaction=True)
        pipe.get(keys.kill_switch)
        pipe.hmget(keys.kill_switch_info, "reason", "at", "by")
        current, (reason, at, by) = pipe.execute()
    if current is None:
        raise _missing(keys)
    return KillSwitchState(_text(current) == "1", _text(reason or b""), _text(at or b""), _text(by or b""))


@dataclass(frozen=True)
class KillSwitchEvent:
    """One row of ``kill_switch_events``."""

    namespace: str
    run_id: str
    action: str  # trip or reset
    at: datetime
    actor: str
    reason: str
    symbol_set: str | None = None
    scenario: str | None = None
    dedup_key: str | None = None
    details: Mapping[str, Any] | None = None
    event_id: int | None = None

    def as_dict(self) -> dict[str, object]:
        out = asdict(self)
        out["at"] = iso(self.at)
        out["details"] = dict(self.details or {})
        return out


class KillSwitchLedger:
    """The kill switch events of the ledger in ``schema`` (migrated to head on first use)."""

    def __init__(self, engine: sa.Engine, schema: str = DEFAULT_SCHEMA) -> None:
        self.engine = engine
        self.schema = schema
        self.table = ledger_tables(schema).kill_switch_events
        self._migrated = False

    def record(self, event: KillSwitchEvent) -> int:
        """Append ``event``; returns its id."""
        if event.action not in (TRIP, RESET):
            raise ValueError(f"action: expected {TRIP!r} or {RESET!r}, got {event.action!r}")
        _require_text(actor=event.actor, reason=event.reason)
        self._migrate()
        row = {k: v for k, v in asdict(event).items() if k != "event_id"}
        try:  # JSONB takes no NaN: refuse it here, naming the event, rather than in the database
            row["details"] = json.loads(json.dumps(dict(event.details or {}), default=float, allow_nan=False))
        except ValueError as err:
            raise ValueError(f"kill switch event of {event.namespace}:{event.run_id}: details: {err}") from None
        with postgres_errors(self.engine), self.engine.begin() as conn:
            return int(conn.execute(sa.insert(self.table).values(row).returning(self.table.c.event_id)).scalar_one())

    def events(self, run_id: str, *, namespace: str = DEFAULT_NAMESPACE, limit: int = 20) -> list[KillSwitchEvent]:
        """The run's latest ``limit`` events, oldest first."""
        self._migrate()
        t = self.table
        query = (sa.select(t).where(t.c.namespace == namespace, t.c.run_id == run_id)
                 .order_by(t.c.event_id.desc()).limit(limit))  # fmt: skip
        with postgres_errors(self.engine), self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [KillSwitchEvent(**dict(row)) for row in reversed(rows)]

    def _migrate(self) -> None:
        if not self._migrated:
            migrate(self.engine, self.schema)
            self._migrated = True


def iso(moment: datetime) -> str:
    """``moment`` in UTC, ISO 8601 to the millisecond (a naive time is taken as UTC)."""
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _require_text(**values: str) -> None:
    for name, value in values.items():
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"{name}: a kill switch change needs a non-empty {name}, got {value!r}")


def _not_initialised(keys: HotStateKeys, err: Exception) -> Exception:
    return _missing(keys) if str(err).startswith("NOINIT") else err


def _missing(keys: HotStateKeys) -> HotStateNotInitialisedError:
    return HotStateNotInitialisedError(f"hot state {keys.prefix} is not initialised ({keys.kill_switch} is not set)")


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
