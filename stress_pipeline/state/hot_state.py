"""The Redis hot state: what a live trading system reads while it trades, kept per run.

Key layout, one run under ``{namespace}:{run_id}`` (``namespace`` defaults to ``stress``; tests pass a
unique one so they never collide with other users of a shared server):

* ``...:positions`` — hash, symbol -> signed quantity as a decimal string (``"-1.50000000"``); a flat
  position stays, as ``"0.00000000"``;
* ``...:cash`` — string, a decimal string with exactly 8 decimals;
* ``...:open_orders`` — hash, order id -> JSON ``{"symbol", "qty", "price"}`` (decimal strings);
* ``...:ess_state`` — string, the emergency stop system's state (``ARMED`` ... ``HALTED``);
* ``...:kill_switch`` — string, ``"1"`` while the KILL_SWITCH is on, else ``"0"``;
* ``...:kill_switch_info`` — hash: ``reason``, ``at`` (ISO 8601, UTC) and ``by`` of the last trip
  (``stress_pipeline/lite/killswitch.py`` writes it with the switch, in one script);
* ``...:last_event_id`` — string, the event id of the last applied fill (``-1``: none yet);
* ``...:heartbeat`` — string, Unix time in seconds of the writer's last heartbeat.

Exact, atomic fills. A fill changes a position, the cash and the last applied event id together, so
the three are updated by one Lua script (loaded once, called with EVALSHA): Redis runs a script
without interleaving any other command, and the script reads and validates everything before its
first write, so a failing script changes nothing. Lua numbers are doubles, exact only up to 2^53,
and cash near 1e10 at 1e-8 is already 1e18 minor units; so Python sends every delta as a decimal
integer string of minor units (1e-8) and the script adds them as big integers: base-1e7 limbs whose
partial sums stay far below 2^53 (at most :data:`MAX_SCRIPT_FILLS` fills per call), normalised once
per call into the stored decimal string. No value ever passes through a float.

Idempotency and ordering. The script skips every fill whose event id is not above the stored last
applied event id, so replaying a batch applies nothing and an old fill delivered again is not
counted twice. The last applied event id is a high-water mark, so the writer must deliver fills in
event-id order: :meth:`HotState.apply_fills` sorts each batch by event id, and a fill that arrives
after a later one was applied is skipped (the returned count shows it) — the writer keeps fills in
its disk buffer and hands them over in order, so this only drops genuine replays.

Batching. A call is cut into script calls of ``chunk_size`` fills, all sent in one pipeline. Each
script call is atomic, and each one after the first refuses to run (``GAP``) unless the previous one
got applied, so whatever fails mid-pipeline the hot state always equals "every fill up to some event
id", and re-sending the batch completes it.

Errors. When Redis cannot be reached (refused, reset, timed out, still loading) the methods raise
:class:`~stress_pipeline.services.errors.ServiceUnavailableError`, the error the writer already
handles for PostgreSQL; the original redis-py exception (``redis.exceptions.ConnectionError`` or
``TimeoutError``) is its ``__cause__``. A batch interrupted that way may be partly applied: apply it
again (redis-py itself re-sends a pipeline after a dropped connection, which the skip rule makes safe;
the returned count then covers only the replies that arrived). Missing state raises
:class:`HotStateNotInitialisedError` (e.g. Redis restarted without persistence: re-seed with
:meth:`HotState.init`); a stored value that is not a decimal string raises :class:`HotStateCorruptError`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import MAX_EMAX, MAX_PREC, MIN_EMIN, Context, Decimal, InvalidOperation
from operator import attrgetter

import redis

from stress_pipeline.services.errors import ServiceUnavailableError
from stress_pipeline.state.records import Fill, Mark
from stress_pipeline.trading.risk.safety_governor import STATE_NAMES

DEFAULT_NAMESPACE = "stress"
#: The emergency stop system's states: the safety governor's enumeration, the one list of them.
ESS_STATES = STATE_NAMES
DEFAULT_CHUNK_SIZE = 1_000
#: Fills per script call at most: keeps every limb sum below 1e12, far inside a double's exact range.
MAX_SCRIPT_FILLS = 10_000
#: Event ids are compared as Lua numbers, exact below 2^53.
MAX_EVENT_ID = 2**53 - 1
NO_EVENT = -1

_SCALE = 8  # minor units: 1e-8
_EXACT = Context(prec=MAX_PREC, Emax=MAX_EMAX, Emin=MIN_EMIN, traps=[InvalidOperation])

APPLY_FILLS_LUA = r"""
-- KEYS: positions hash, cash, last_event_id.
-- ARGV[1]: the last event id the previous chunk of the same call left (-1 for the first chunk);
-- then 4 per fill, in event-id order: event id, symbol, qty delta and cash delta in integer 1e-8 units.
local B = 10000000

local function add_units(acc, text)
  if #text <= 8 then
    acc[1] = (acc[1] or 0) + tonumber(text)
    return
  end
  local neg = string.sub(text, 1, 1) == '-'
  local digits = text
  if neg then digits = string.sub(text, 2) end
  local i, k = #digits, 1
  while i >= 1 do
    local j = i - 6
    if j < 1 then j = 1 end
    local v = tonumber(string.sub(digits, j, i))
    if neg then v = -v end
    acc[k] = (acc[k] or 0) + v
    k = k + 1
    i = j - 1
  end
end

local function parse_amount(text)
  local sign, int, frac = string.match(text, '^(%-?)(%d+)%.(%d%d%d%d%d%d%d%d)$')
  if not int then return nil end
  local acc = {0}
  add_units(acc, sign .. int .. frac)
  return acc
end

local function format_amount(acc)
  local out, carry = {}, 0
  for i = 1, #acc do
    local v = acc[i] + carry
    local r = v % B
    out[i] = r
    carry = (v - r) / B
  end
  while carry ~= 0 and carry ~= -1 do
    local r = carry % B
    out[#out + 1] = r
    carry = (carry - r) / B
  end
  local sign = ''
  if carry == -1 then
    -- value = digits - B^n: its magnitude is the base-B complement of the digits
    sign = '-'
    local c = 1
    for i = 1, #out do
      local v = B - 1 - out[i] + c
      if v == B then
        out[i] = 0
      else
        out[i] = v
        c = 0
      end
    end
    if c == 1 then out[#out + 1] = 1 end
  end
  local top = #out
  while top > 1 and out[top] == 0 do top = top - 1 end
  local parts = {string.format('%d', out[top])}
  for i = top - 1, 1, -1 do parts[#parts + 1] = string.format('%07d', out[i]) end
  local digits = table.concat(parts)
  if #digits < 9 then digits = string.rep('0', 9 - #digits) .. digits end
  return sign .. string.sub(digits, 1, -9) .. '.' .. string.sub(digits, -8)
end

local last_text = redis.call('GET', KEYS[3])
local cash_text = redis.call('GET', KEYS[2])
if not last_text or not cash_text then
  return redis.error_reply('NOINIT hot state ' .. KEYS[3] .. ' is not initialised')
end
local last = tonumber(last_text)
if last < tonumber(ARGV[1]) then
  return redis.error_reply('GAP the previous chunk of this batch was not applied')
end
local cash = parse_amount(cash_text)
if not cash then return redis.error_reply('CORRUPT ' .. KEYS[2] .. ' holds ' .. cash_text) end

local positions, applied = {}, 0
for b = 2, #ARGV, 4 do
  local event_id = tonumber(ARGV[b])
  if event_id > last then
    local symbol = ARGV[b + 1]
    local acc = positions[symbol]
    if not acc then
      local current = redis.call('HGET', KEYS[1], symbol)
      if current then
        acc = parse_amount(current)
        if not acc then
          return redis.error_reply('CORRUPT ' .. KEYS[1] .. ' ' .. symbol .. ' holds ' .. current)
        end
      else
        acc = {0}
      end
      positions[symbol] = acc
    end
    add_units(acc, ARGV[b + 2])
    add_units(cash, ARGV[b + 3])
    last, last_text = event_id, ARGV[b]
    applied = applied + 1
  end
end
if applied > 0 then
  for symbol, acc in pairs(positions) do
    redis.call('HSET', KEYS[1], symbol, format_amount(acc))
  end
  redis.call('SET', KEYS[2], format_amount(cash))
  redis.call('SET', KEYS[3], last_text)
end
return applied
"""
APPLY_FILLS_SHA = hashlib.sha1(APPLY_FILLS_LUA.encode()).hexdigest()


class HotStateError(RuntimeError):
    """The hot state refused an operation; the message says which run and why."""


class HotStateNotInitialisedError(HotStateError):
    """The run's state is missing: never initialised, cleared, or lost with a Redis restart."""


class HotStateCorruptError(HotStateError):
    """A stored value is not what this module writes (e.g. a position that is not a decimal string)."""


@dataclass(frozen=True)
class OpenOrder:
    order_id: int
    symbol: str
    qty: Decimal  # signed, buy > 0
    price: Decimal | None  # None: market order


@dataclass(frozen=True)
class HotSnapshot:
    """One consistent read of a run's hot state (taken in a MULTI/EXEC transaction)."""

    positions: dict[str, Decimal]  # flat positions stay, as 0
    cash: Decimal
    last_event_id: int  # NO_EVENT (-1) before the first fill
    ess_state: str
    kill_switch: bool
    heartbeat_ts: float | None  # Unix seconds; None before the first heartbeat
    open_orders: dict[int, OpenOrder] = field(default_factory=dict)


@dataclass(frozen=True)
class HotStateKeys:
    """The Redis keys of one run; the single place the key layout is spelled."""

    prefix: str

    @classmethod
    def of(cls, run_id: str, namespace: str = DEFAULT_NAMESPACE) -> HotStateKeys:
        if not run_id or not namespace:
            raise ValueError("run_id and namespace must be non-empty")
        return cls(f"{namespace}:{run_id}")

    @property
    def positions(self) -> str:
        return f"{self.prefix}:positions"

    @property
    def cash(self) -> str:
        return f"{self.prefix}:cash"

    @property
    def open_orders(self) -> str:
        return f"{self.prefix}:open_orders"

    @property
    def ess_state(self) -> str:
        return f"{self.prefix}:ess_state"

    @property
    def kill_switch(self) -> str:
        return f"{self.prefix}:kill_switch"

    @property
    def kill_switch_info(self) -> str:
        return f"{self.prefix}:kill_switch_info"

    @property
    def last_event_id(self) -> str:
        return f"{self.prefix}:last_event_id"

    @property
    def heartbeat(self) -> str:
        return f"{self.prefix}:heartbeat"

    @property
    def equity(self) -> str:
        return f"{self.prefix}:equity"

    def all(self) -> tuple[str, ...]:
        return (
            self.positions, self.cash, self.open_orders, self.ess_state, self.kill_switch, self.kill_switch_info,
            self.last_event_id, self.heartbeat, self.equity,
        )  # fmt: skip


class HotState:
    """The hot state of one run in Redis. Safe to share between threads (redis-py clients are)."""

    def __init__(
        self, client: redis.Redis, run_id: str, *, namespace: str = DEFAULT_NAMESPACE,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
    ) -> None:  # fmt: skip
        if not 1 <= chunk_size <= MAX_SCRIPT_FILLS:
            raise ValueError(f"chunk_size must be within 1..{MAX_SCRIPT_FILLS}, got {chunk_size}")
        self.client = client
        self.run_id = run_id
        self.keys = HotStateKeys.of(run_id, namespace)
        self.chunk_size = chunk_size
        self._script_loaded = False

    # ------------------------------------------------------------------------------------- lifecycle

    def init(
        self, initial_cash: Decimal | str | int, *, positions: Mapping[str, Decimal] | None = None,
        last_event_id: int = NO_EVENT,
    ) -> None:  # fmt: skip
        """Start the run's state afresh: cash, no fills applied, ESS armed, kill switch off.

        ``positions`` and ``last_event_id`` re-seed it from the ledger instead (after Redis lost it).
        Everything is replaced in one MULTI/EXEC, so a reader never sees half an initialisation.
        """
        if last_event_id != NO_EVENT:
            _check_event_id(last_event_id)
        cash = decimal_string(to_units(Decimal(initial_cash)))
        seeded = {symbol: decimal_string(to_units(amount)) for symbol, amount in (positions or {}).items()}
        with self._connection_errors():
            pipe = self.client.pipeline(transaction=True)
            pipe.delete(*self.keys.all())
            pipe.set(self.keys.cash, cash)
            pipe.set(self.keys.last_event_id, str(last_event_id))
            pipe.set(self.keys.ess_state, ESS_STATES[0])
            pipe.set(self.keys.kill_switch, "0")
            if seeded:
                pipe.hset(self.keys.positions, mapping=seeded)
            pipe.execute()

    def clear(self) -> int:
        """Delete every key of the run; returns how many existed."""
        with self._connection_errors():
            return int(self.client.delete(*self.keys.all()))

    def exists(self) -> bool:
        with self._connection_errors():
            return self.client.exists(self.keys.last_event_id, self.keys.cash) == 2

    # ----------------------------------------------------------------------------------------- fills

    def apply_fills(self, fills: Sequence[Fill]) -> int:
        """Apply the fills in event-id order, skipping those already applied; returns how many were applied."""
        ordered = self._ordered(fills)
        if not ordered:
            return 0
        chunks = [ordered[i : i + self.chunk_size] for i in range(0, len(ordered), self.chunk_size)]
        calls = [self._script_args(chunk, chunks[n - 1][-1].event_id if n else NO_EVENT) for n, chunk in
                 enumerate(chunks)]  # fmt: skip
        applied = 0
        with self._connection_errors():
            self._load_script()
            for attempt in range(2):
                results = self._run_calls(calls)
                applied += sum(result for result in results if isinstance(result, int))
                errors = [result for result in results if isinstance(result, Exception)]
                if not errors:
                    return applied
                if attempt == 0 and isinstance(errors[0], redis.exceptions.NoScriptError):
                    # The server lost its script cache (restart, SCRIPT FLUSH): load and send again,
                    # which is safe because applied fills are skipped.
                    self._script_loaded = False
                    self._load_script()
                    continue
                raise self._script_error(errors[0])
        raise AssertionError("unreachable")  # pragma: no cover

    def last_event_id(self) -> int:
        """The event id of the last applied fill (NO_EVENT before any); where a writer resumes."""
        with self._connection_errors():
            value = self.client.get(self.keys.last_event_id)
        if value is None:
            raise HotStateNotInitialisedError(f"hot state {self.keys.prefix} is not initialised")
        return int(value)

    # ------------------------------------------------------------------------------ trading controls

    def set_ess_state(self, state: str) -> None:
        if state not in ESS_STATES:
            raise ValueError(f"unknown ESS state {state!r}; expected one of {', '.join(ESS_STATES)}")
        with self._connection_errors():
            self.client.set(self.keys.ess_state, state)

    def set_kill_switch(self, on: bool = True) -> None:
        """Turn the KILL_SWITCH on (no new orders) or off. Fills keep being applied either way:
        what the exchange executed must be recorded whatever the switch says."""
        with self._connection_errors():
            self.client.set(self.keys.kill_switch, "1" if on else "0")

    def heartbeat(self, now: float | None = None) -> float:
        """Record that the writer is alive; returns the recorded Unix time."""
        ts = time.time() if now is None else float(now)
        with self._connection_errors():
            self.client.set(self.keys.heartbeat, repr(ts))
        return ts

    def apply_marks(self, marks: Sequence[Mark]) -> int:
        """Write heartbeats with their equity marks, in order, in one pipeline; returns how many."""
        if not marks:
            return 0
        with self._connection_errors():
            pipe = self.client.pipeline(transaction=False)
            for mark in marks:
                pipe.set(self.keys.heartbeat, repr(mark.ts_ns / 1e9))
                pipe.set(self.keys.equity, str(mark.equity))
            pipe.execute()
        return len(marks)

    def put_open_order(self, order: OpenOrder) -> None:
        payload = {
            "symbol": order.symbol,
            "qty": decimal_string(to_units(order.qty)),
            "price": None if order.price is None else decimal_string(to_units(order.price)),
        }
        with self._connection_errors():
            self.client.hset(self.keys.open_orders, str(order.order_id), json.dumps(payload))

    def remove_open_order(self, order_id: int) -> bool:
        """Forget an order (filled or cancelled); False if it was not open."""
        with self._connection_errors():
            return bool(self.client.hdel(self.keys.open_orders, str(order_id)))

    # ---------------------------------------------------------------------------------------- reads

    def snapshot(self) -> HotSnapshot:
        """Every field of the run's state, read in one transaction so they are mutually consistent."""
        with self._connection_errors():
            pipe = self.client.pipeline(transaction=True)
            pipe.hgetall(self.keys.positions)
            pipe.mget(self.keys.cash, self.keys.last_event_id, self.keys.ess_state, self.keys.kill_switch,
                      self.keys.heartbeat)  # fmt: skip
            pipe.hgetall(self.keys.open_orders)
            positions, (cash, last, ess, kill, beat), orders = pipe.execute()
        if cash is None or last is None:
            raise HotStateNotInitialisedError(f"hot state {self.keys.prefix} is not initialised")
        try:
            return HotSnapshot(
                positions={_text(symbol): _amount(value) for symbol, value in positions.items()},
                cash=_amount(cash),
                last_event_id=int(last),
                ess_state=_text(ess) if ess is not None else "",
                kill_switch=_text(kill) == "1" if kill is not None else False,
                heartbeat_ts=float(beat) if beat is not None else None,
                open_orders={int(oid): _open_order(int(oid), raw) for oid, raw in orders.items()},
            )
        except (ValueError, KeyError, InvalidOperation) as err:
            raise HotStateCorruptError(f"hot state {self.keys.prefix} holds an unreadable value: {err}") from err

    # ------------------------------------------------------------------------------------- internals

    def _ordered(self, fills: Sequence[Fill]) -> list[Fill]:
        """The fills sorted by event id, exact repeats dropped; two different fills on one id are refused."""
        ordered: list[Fill] = []
        for fill in sorted(fills, key=attrgetter("event_id")):
            if fill.run_id != self.run_id:
                raise ValueError(f"fill {fill.idempotency_key} belongs to run {fill.run_id!r}, not {self.run_id!r}")
            _check_event_id(fill.event_id)
            if ordered and ordered[-1].event_id == fill.event_id:
                if ordered[-1] != fill:
                    raise ValueError(
                        f"fills {ordered[-1].idempotency_key} and {fill.idempotency_key} share event id {fill.event_id}"
                    )
                continue
            ordered.append(fill)
        return ordered

    def _script_args(self, chunk: Sequence[Fill], previous_last: int) -> list[str]:
        args = [str(previous_last)]
        for fill in chunk:
            args += (str(fill.event_id), fill.symbol, str(to_units(fill.qty)), str(to_units(fill.cash_delta)))
        return args

    def _run_calls(self, calls: list[list[str]]) -> list[object]:
        keys = (self.keys.positions, self.keys.cash, self.keys.last_event_id)
        pipe = self.client.pipeline(transaction=False)
        for args in calls:
            pipe.evalsha(APPLY_FILLS_SHA, len(keys), *keys, *args)
        return pipe.execute(raise_on_error=False)

    def _load_script(self) -> None:
        if not self._script_loaded:
            self.client.script_load(APPLY_FILLS_LUA)
            self._script_loaded = True

    def _script_error(self, error: Exception) -> Exception:
        message = str(error)
        if message.startswith("NOINIT"):
            return HotStateNotInitialisedError(f"run {self.run_id}: {message.removeprefix('NOINIT ')}")
        if message.startswith("CORRUPT"):
            return HotStateCorruptError(f"run {self.run_id}: {message.removeprefix('CORRUPT ')}")
        return error

    def _connection_errors(self) -> contextlib.AbstractContextManager[None]:
        return redis_errors(self.client)


@contextlib.contextmanager
def redis_errors(client: redis.Redis) -> Iterator[None]:
    """Turn "Redis cannot be reached" inside the block into :class:`ServiceUnavailableError` naming it."""
    try:
        yield
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as err:
        raise ServiceUnavailableError("Redis", _client_url(client), err) from err


# ------------------------------------------------------------------------------------ minor units


def to_units(value: Decimal) -> int:
    """``value`` in integer 1e-8 units, exactly; a value with finer digits is refused, never rounded."""
    if not value.is_finite():
        raise ValueError(f"{value} is not a finite amount")
    scaled = value.scaleb(_SCALE, context=_EXACT)
    units = int(scaled)
    if scaled != units:
        raise ValueError(f"{value} is not a multiple of 1e-{_SCALE}")
    return units


def decimal_string(units: int) -> str:
    """The stored form of an amount: integer 1e-8 units as a decimal string with exactly 8 decimals."""
    digits = str(abs(units)).rjust(_SCALE + 1, "0")
    return f"{'-' if units < 0 else ''}{digits[:-_SCALE]}.{digits[-_SCALE:]}"


def _check_event_id(event_id: int) -> None:
    if isinstance(event_id, bool) or not isinstance(event_id, int) or not 0 <= event_id <= MAX_EVENT_ID:
        raise ValueError(f"event id must be an int within 0..2^53-1, got {event_id!r}")


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _amount(value: bytes | str) -> Decimal:
    amount = Decimal(_text(value))
    if not amount.is_finite():
        raise ValueError(f"{value!r} is not an amount")
    return amount


def _open_order(order_id: int, raw: bytes | str) -> OpenOrder:
    payload = json.loads(raw)
    price = payload["price"]
    return OpenOrder(order_id, payload["symbol"], _amount(payload["qty"]), None if price is None else _amount(price))


def _client_url(client: redis.Redis) -> str:
    """Where ``client`` connects, without credentials, for error messages."""
    kwargs = client.connection_pool.connection_kwargs
    if "path" in kwargs:
        return f"unix://{kwargs['path']}"
    return f"redis://{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}/{kwargs.get('db', 0)}"
