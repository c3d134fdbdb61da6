"""The default decider: the real risk stack (``trading/risk/stack.py``) over state kept in Redis.

What the decider reads and writes, beside the run's hot state (``state/hot_state.py``, same prefix):

* ``...:ess_state``, ``...:kill_switch``, ``...:equity`` — the hot state's own keys: the safety
  governor's state, the kill switch and the last equity mark. The operator (``stress-pipeline drills``),
  the governor and the writer set them; the decider only reads them;
* ``...:decisions:book`` — hash, symbol -> the signed position the decider has approved so far (the
  exchange position plus approved orders), as ``repr`` of a float;
* ``...:decisions:marks`` — hash, symbol -> the last price a request carried;
* ``...:decisions:counts`` — hash, reason -> how many requests got it (``"PASSED"`` for none), plus
  ``"requests"``;
* ``...:decisions:version`` — integer, bumped by every committed batch;
* ``...:decisions:batches`` — hash, decider id -> the token of its last committed batch.

One round trip per batch, never a stale decision. The decider judges a batch against its copy of the
state, then commits it with one script call (compare-and-set, run atomically by Redis): the script
applies the batch only if the controls (ESS state, kill switch, equity) are still the ones the batch
was judged with and no other batch was committed since (same version); otherwise it applies nothing
and returns the current state, and the decider judges the batch again against it. So an operator's
kill switch or a governor's trip stops the very next batch, and two deciders sharing a run never
overwrite each other's book.

Exactly once across a lost connection. A commit whose reply never came may or may not be stored. The
decider keeps it, and its next call sends it again under the same token before anything else: the
script stores a token once (it remembers each decider's last one), so the batch counts once whether
the first send was stored or not, and a caller that repeats the batch gets the same decisions back.
A Redis that cannot be reached raises
:class:`~stress_pipeline.services.errors.ServiceUnavailableError`; missing controls raise
:class:`~stress_pipeline.state.hot_state.HotStateNotInitialisedError`.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
import redis

from stress_pipeline.services.errors import ServiceUnavailableError
from stress_pipeline.state.hot_state import (
    DEFAULT_NAMESPACE,
    HotState,
    HotStateCorruptError,
    HotStateNotInitialisedError,
)
from stress_pipeline.trading.risk.decision import BUY, Decision, DecisionRequest, check_request
from stress_pipeline.trading.risk.policy import RiskPolicy
from stress_pipeline.trading.risk.stack import DECISION_REASONS, decide_orders, ess_code, policy_params

PASSED = "PASSED"
REQUESTS = "requests"
#: How many times a batch is judged again after losing the compare-and-set before giving up.
MAX_CONFLICTS = 50

COMMIT_LUA = r"""
-- KEYS: ess_state, kill_switch, equity, version, book, marks, counts, last batch per decider.
-- ARGV: ess, kill, equity and version the batch was judged with; the batch as JSON
-- {"b": [symbol, new position, ...], "m": [symbol, price, ...], "c": [reason, count, ...]};
-- the decider's id and the batch's token.
if redis.call('HGET', KEYS[8], ARGV[6]) == ARGV[7] then
  return {2, redis.call('GET', KEYS[4]) or '0'}
end
local ess = redis.call('GET', KEYS[1])
local kill = redis.call('GET', KEYS[2])
local equity = redis.call('GET', KEYS[3])
local version = redis.call('GET', KEYS[4]) or '0'
if ess == ARGV[1] and kill == ARGV[2] and equity == ARGV[3] and version == ARGV[4] then
  local batch = cjson.decode(ARGV[5])
  if #batch.b > 0 then redis.call('HSET', KEYS[5], unpack(batch.b)) end
  if #batch.m > 0 then redis.call('HSET', KEYS[6], unpack(batch.m)) end
  for i = 1, #batch.c, 2 do redis.call('HINCRBY', KEYS[7], batch.c[i], batch.c[i + 1]) end
  redis.call('HSET', KEYS[8], ARGV[6], ARGV[7])
  return {1, redis.call('INCR', KEYS[4])}
end
return {0, ess or '', kill or '', equity or '', version, redis.call('HGETALL', KEYS[5]), redis.call('HGETALL', KEYS[6])}
"""


@dataclass(frozen=True)
class DecisionBook:
    """One read of the decision state: the controls as stored (text) and the approved book."""

    ess_raw: str
    kill_raw: str
    equity_raw: str
    version: int
    positions: dict[str, float]
    marks: dict[str, float]

    @property
    def ess_state(self) -> str:
        return self.ess_raw

    @property
    def kill_switch(self) -> bool:
        return self.kill_raw == "1"

    @property
    def equity(self) -> float:
        return float(self.equity_raw)


class RiskDecisionState:
    """The decision state of one run in Redis (see the module docstring for the keys)."""

    def __init__(self, client: redis.Redis, run_id: str, *, namespace: str = DEFAULT_NAMESPACE) -> None:
        self.hot = HotState(client, run_id, namespace=namespace)
        self.client = client
        prefix = self.hot.keys.prefix
        self.book_key = f"{prefix}:decisions:book"
        self.marks_key = f"{prefix}:decisions:marks"
        self.counts_key = f"{prefix}:decisions:counts"
        self.version_key = f"{prefix}:decisions:version"
        self.batches_key = f"{prefix}:decisions:batches"
        self._sha: str | None = None
        self._head = b""  # the commit command up to its ARGV, packed once per script hash
        self._conn: redis.connection.Connection | None = None

    def _keys(self) -> tuple[str, ...]:
        k = self.hot.keys
        return (k.ess_state, k.kill_switch, k.equity, self.version_key, self.book_key, self.marks_key, self.counts_key,
                self.batches_key)  # fmt: skip

    def init(self, equity: float, *, positions: Mapping[str, float] | None = None) -> None:
        """A fresh run: hot state with ESS armed and kill switch off, ``equity`` as the mark, and a
        book holding ``positions`` (the exchange's, when the decider starts mid-run)."""
        self.hot.init("0")
        with self._connection_errors():
            pipe = self.client.pipeline(transaction=True)
            pipe.delete(self.book_key, self.marks_key, self.counts_key, self.version_key, self.batches_key)
            pipe.set(self.hot.keys.equity, repr(float(equity)))
            if positions:
                pipe.hset(self.book_key, mapping={s: repr(float(q)) for s, q in positions.items()})
            pipe.execute()

    def clear(self) -> int:
        with self._connection_errors():
            mine = int(self.client.delete(self.book_key, self.marks_key, self.counts_key, self.version_key,
                                          self.batches_key))  # fmt: skip
        return mine + self.hot.clear()

    def set_equity(self, equity: float) -> None:
        with self._connection_errors():
            self.client.set(self.hot.keys.equity, repr(float(equity)))

    def read(self) -> DecisionBook:
        with self._connection_errors():
            pipe = self.client.pipeline(transaction=True)
            pipe.mget(self.hot.keys.ess_state, self.hot.keys.kill_switch, self.hot.keys.equity, self.version_key)
            pipe.hgetall(self.book_key)
            pipe.hgetall(self.marks_key)
            (ess, kill, equity, version), book, marks = pipe.execute()
        return self._book(ess, kill, equity, version or b"0", book, marks)

    def commit(
        self, used: DecisionBook, positions: Mapping[str, float], marks: Mapping[str, float],
        reasons: Mapping[str, int], *, decider_id: str = "", token: str = "",
    ) -> DecisionBook | None:  # fmt: skip
        """Store a batch judged against ``used``: the new positions, the marks, the reason counts.
        None when committed, or when this decider's batch ``token`` was committed already (a commit
        sent again after its reply was lost); the current state (nothing written) when ``used`` is no
        longer current."""
        batch = {
            "b": [x for symbol, qty in positions.items() for x in (symbol, repr(float(qty)))],
            "m": [x for symbol, price in marks.items() for x in (symbol, repr(float(price)))],
            "c": [x for reason, count in reasons.items() for x in (reason, int(count))],
        }
        args = [used.ess_raw, used.kill_raw, used.equity_raw, str(used.version), json.dumps(batch),
                decider_id or "-", token or uuid.uuid4().hex]  # fmt: skip
        with self._connection_errors():
            reply = self._evalsha(args)
        if int(reply[0]) in (1, 2):
            return None
        _, ess, kill, equity, version, book, marks_flat = reply
        return self._book(ess or None, kill or None, equity or None, version,
                          _pairs(book), _pairs(marks_flat))  # fmt: skip

    def release(self, symbol: str, signed_qty: float) -> None:
        """Take an approved order that the venue rejected or that was cancelled unfilled off the book
        (atomically, bumping the version so every decider's copy is read again)."""
        with self._connection_errors():
            pipe = self.client.pipeline(transaction=True)
            pipe.hincrbyfloat(self.book_key, symbol, -float(signed_qty))
            pipe.hincrby(self.counts_key, "released", 1)
            pipe.incr(self.version_key)
            pipe.execute()

    def counts(self) -> dict[str, int]:
        with self._connection_errors():
            raw = self.client.hgetall(self.counts_key)
        return {_text(k): int(v) for k, v in raw.items()}

    def close(self) -> None:
        """Give back the connection the commits use (the next commit takes a new one)."""
        if self._conn is not None:
            self.client.connection_pool.release(self._conn)
            self._conn = None

    def _evalsha(self, args: list[str]) -> list:
        """The commit script's reply, over a connection kept for the commits: one batch costs one
        command and no pool traffic. The command is packed here (its head, the script and the keys,
        once; each batch adds its arguments): the client library's generic packing cost more than the
        script's run in Redis. A lost connection is not retried here: the reply of a commit that was
        applied may be what got lost, so the caller drops its copy of the state."""
        if self._conn is None:
            self._conn = self.client.connection_pool.get_connection()
        try:
            for attempt in range(2):
                if self._sha is None:
                    self._sha = self.client.script_load(COMMIT_LUA)
                    keys = self._keys()
                    head = ("EVALSHA", self._sha, str(len(keys)), *keys)
                    self._head = _resp(head, 3 + len(keys) + len(args))
                body = b"".join(_bulk(a.encode()) for a in args)
                self._conn.send_packed_command([self._head + body], check_health=False)
                try:
                    return self._conn.read_response()
                except redis.exceptions.NoScriptError:
                    if attempt:
                        raise
                    self._sha = None  # the server lost its script cache (restart, SCRIPT FLUSH)
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
            self._conn.disconnect()
            raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _book(self, ess, kill, equity, version, book, marks) -> DecisionBook:
        if ess is None or kill is None or equity is None:
            raise HotStateNotInitialisedError(
                f"decision state {self.hot.keys.prefix} is not initialised (ESS state, kill switch or equity missing)"
            )
        try:
            out = DecisionBook(
                ess_raw=_text(ess), kill_raw=_text(kill), equity_raw=_text(equity), version=int(version),
                positions={_text(s): float(q) for s, q in book.items()},
                marks={_text(s): float(p) for s, p in marks.items()},
            )  # fmt: skip
            ess_code(out.ess_state)
            float(out.equity_raw)  # parse now, so a corrupt value fails here, naming the run
        except ValueError as err:
            raise HotStateCorruptError(f"decision state {self.hot.keys.prefix}: unreadable value: {err}") from err
        return out

    @contextlib.contextmanager
    def _connection_errors(self) -> Iterator[None]:
        try:
            yield
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as err:
            kwargs = self.client.connection_pool.connection_kwargs
            where = f"redis://{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}/{kwargs.get('db', 0)}"
            raise ServiceUnavailableError("Redis", where, err) from err


class RiskStackDecider:
    """The project's decider: :func:`~stress_pipeline.trading.risk.stack.decide_orders` over a
    :class:`RiskDecisionState`. ``stressed``: judge as if the market were stressed (the balancer's
    tighter position count)."""

    name = "risk-stack"

    def __init__(self, state: RiskDecisionState, policy: RiskPolicy | None = None, *, stressed: bool = False) -> None:
        self.state = state
        self.policy = policy or RiskPolicy()
        self.stressed = stressed
        self._params = policy_params(self.policy)
        self._book: DecisionBook | None = None
        self._pending: _Pending | None = None
        self.id = uuid.uuid4().hex
        self._sequence = 0  # batch tokens: unique per decider, which is all the script compares
        self.conflicts = 0  # batches judged again because the state had changed

    def decide(self, request: DecisionRequest) -> Decision:
        return self.decide_batch([request])[0]

    def positions(self) -> dict[str, float]:
        """The approved book as stored in Redis (read now, not this decider's copy)."""
        return self.state.read().positions

    def release(self, symbol: str, signed_qty: float) -> None:
        """An approved order that did not fill leaves the book (see :meth:`RiskDecisionState.release`)."""
        self.state.release(symbol, signed_qty)
        self._book = None  # the version moved: read it before the next batch rather than lose a commit

    def decide_batch(self, requests: Sequence[DecisionRequest]) -> list[Decision]:
        if not requests:
            return []
        for request in requests:
            check_request(request)
        if self._pending is not None:  # a commit whose reply was lost: settle it before anything else
            done = self._settle(self._pending)
            if done is not None and done.requests == list(requests):
                return done.decisions
        book = self._book if self._book is not None else self.state.read()
        for _ in range(MAX_CONFLICTS):
            decisions, positions, marks = self._judge(book, requests)
            reasons = Counter(d.reason or PASSED for d in decisions)
            reasons[REQUESTS] = len(requests)
            self._sequence += 1
            pending = _Pending(list(requests), decisions, book, positions, marks, reasons, str(self._sequence))
            try:
                current = self.state.commit(book, positions, marks, reasons, decider_id=self.id, token=pending.token)
            except Exception:
                self._book = None
                self._pending = pending  # stored or not is unknown until it is sent again
                raise
            if current is None:
                self._applied(pending)
                return decisions
            self.conflicts += 1
            book = current
        self._book = None
        raise RuntimeError(f"{self.state.hot.keys.prefix}: the decision state changed under {MAX_CONFLICTS} attempts")

    def _settle(self, pending: _Pending) -> _Pending | None:
        """Send a commit that may or may not have been stored again, under its token: stored once
        either way. Returns it when it is stored, None when it was not and cannot be any more (the
        state moved on: its requests are judged again by the caller's next call)."""
        current = self.state.commit(pending.book, pending.positions, pending.marks, pending.reasons,
                                    decider_id=self.id, token=pending.token)  # fmt: skip
        self._pending = None
        if current is None:
            self._applied(pending)
            return pending
        self._book = current
        return None

    def _applied(self, pending: _Pending) -> None:
        book = pending.book
        self._book = replace(book, version=book.version + 1, positions={**book.positions, **pending.positions},
                             marks={**book.marks, **pending.marks})  # fmt: skip
        self._pending = None

    def _judge(
        self, book: DecisionBook, requests: Sequence[DecisionRequest]
    ) -> tuple[list[Decision], dict[str, float], dict[str, float]]:
        # Lists into np.array, not generators into np.fromiter: on batches of a few requests the
        # generators cost more than the compiled rules themselves.
        positions, marks = book.positions, book.marks
        symbols = list(dict.fromkeys([*positions, *(r.symbol for r in requests)]))
        index = {s: i for i, s in enumerate(symbols)}
        book_qty = np.array([positions.get(s, 0.0) for s in symbols])
        before = book_qty.copy()
        book_price = np.array([marks.get(s, 0.0) for s in symbols])
        n = len(requests)
        sym = np.array([index[r.symbol] for r in requests], dtype=np.int64)
        qty = np.array([r.qty if r.side == BUY else -r.qty for r in requests])
        price = np.array([r.price for r in requests])
        out_qty = np.zeros(n)
        out_reason = np.zeros(n, dtype=np.int64)
        decide_orders(sym, qty, price, book_qty, book_price, book.equity, ess_code(book.ess_state),
                      book.kill_switch, self.stressed, *self._params, out_qty, out_reason)  # fmt: skip
        changed = {symbols[i]: float(book_qty[i]) for i in np.flatnonzero(book_qty != before).tolist()}
        new_marks = {r.symbol: r.price for r in requests}
        answers = zip(requests, out_qty.tolist(), out_reason.tolist(), strict=True)
        decisions = [_decision(r.qty, abs(q), code) for r, q, code in answers]
        return decisions, changed, new_marks


@dataclass(frozen=True)
class _Pending:
    """A judged batch and its commit, kept until the commit is known to be stored."""

    requests: list[DecisionRequest]
    decisions: list[Decision]
    book: DecisionBook
    positions: dict[str, float]
    marks: dict[str, float]
    reasons: Counter
    token: str


def _decision(requested: float, approved: float, code: int) -> Decision:
    reason = DECISION_REASONS.get(code, "") if code else ""
    return Decision(approved > 0.0, min(approved, requested), reason)


def _bulk(value: bytes) -> bytes:
    return b"$%d\r\n%b\r\n" % (len(value), value)


def _resp(head: Sequence[str], n_args: int) -> bytes:
    """The RESP array header of an ``n_args`` command and its first arguments ``head``."""
    return b"*%d\r\n" % n_args + b"".join(_bulk(a.encode()) for a in head)


def _pairs(flat: list) -> dict:
    return {flat[i]: flat[i + 1] for i in range(0, len(flat), 2)}


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
