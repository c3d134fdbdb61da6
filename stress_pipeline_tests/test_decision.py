"""The decision contract: deciders by import path, their answers checked; the default decider, the
risk stack with its state in real Redis."""

from __future__ import annotations

import sys
import textwrap
import uuid
from collections.abc import Iterator

import pytest
import redis

from stress_pipeline.services import redis_client
from stress_pipeline.state.hot_state import HotStateNotInitialisedError
from stress_pipeline.state.risk_decisions import RiskDecisionState, RiskStackDecider
from stress_pipeline.trading.risk.decision import (
    Decision,
    DecisionContractError,
    DecisionRequest,
    DecisionRequestError,
    DecisionSpecError,
    load_decider,
)
from stress_pipeline.trading.risk.policy import GuardLimits, RiskPolicy

BTC = DecisionRequest("BTC", "BUY", 1.0, 50_000.0, 0, 1)

USER_MODULE = """
from stress_pipeline.trading.risk.decision import Decision

def allow_half(request):
    return Decision.allow(request.qty / 2, "HALF")

def returns_dict(request):
    return {"allowed": True, "qty": request.qty}

def too_much(request):
    return Decision(True, request.qty * 2, "")

def two_args(request, other):
    return Decision.allow(request.qty)

class Governor:
    def __init__(self, cap=0.5):
        self.cap = cap
    def decide(self, request):
        return Decision.allow(min(request.qty, self.cap), "CAP" if request.qty > self.cap else "")

def make_governor(cap=0.25):
    return Governor(cap)

class BadBatch:
    def decide(self, request):
        return Decision.allow(request.qty)
    def decide_batch(self, requests):
        return [Decision.allow(r.qty) for r in requests][:-1]

class Keeper:
    def __init__(self):
        self.book = {}
    def decide(self, request):
        self.book[request.symbol] = self.book.get(request.symbol, 0.0) + request.signed_qty
        return Decision.allow(request.qty)
    def positions(self):
        return self.book
    def release(self, symbol, signed_qty):
        self.book[symbol] -= signed_qty

class ListBook(Keeper):
    def positions(self):
        return [("BTC", 1.0)]

NOT_A_DECIDER = 42
"""


@pytest.fixture(scope="module")
def user_module(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("user-deciders")
    name = f"user_deciders_{uuid.uuid4().hex[:8]}"
    (root / f"{name}.py").write_text(textwrap.dedent(USER_MODULE))
    sys.path.insert(0, str(root))
    try:
        yield name
    finally:
        sys.path.remove(str(root))
        sys.modules.pop(name, None)


# ------------------------------------------------------------------------------------ by import path


def test_a_user_function_is_called_and_checked(user_module: str) -> None:
    decider = load_decider(f"{user_module}:allow_half")
    assert decider.decide(BTC) == Decision(True, 0.5, "HALF")
    batch = decider.decide_batch([BTC, BTC._replace(qty=4.0)])
    assert batch == [Decision(True, 0.5, "HALF"), Decision(True, 2.0, "HALF")]


def test_a_governor_class_and_a_factory_take_parameters(user_module: str) -> None:
    assert load_decider(f"{user_module}:Governor", cap=0.1).decide(BTC) == Decision(True, 0.1, "CAP")
    assert load_decider(f"{user_module}:Governor").decide(BTC) == Decision(True, 0.5, "CAP")
    assert load_decider(f"{user_module}:make_governor").decide(BTC) == Decision(True, 0.25, "CAP")
    with pytest.raises(DecisionSpecError, match=r"bad parameters \['limit'\]"):
        load_decider(f"{user_module}:Governor", limit=3)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("no_colon_here", r"expected 'package.module:callable'"),
        ("no_such_module_xyz:fn", r"cannot import module 'no_such_module_xyz'"),
        ("{mod}:missing", r"module '{mod}' has no attribute 'missing'"),
        ("{mod}:two_args", r"must take one argument, the DecisionRequest"),
    ],
)
def test_bad_import_paths_name_the_problem(user_module: str, spec: str, message: str) -> None:
    with pytest.raises(DecisionSpecError, match=message.format(mod=user_module)):
        load_decider(spec.format(mod=user_module))


def test_a_wrong_return_type_is_named(user_module: str) -> None:
    decider = load_decider(f"{user_module}:returns_dict")
    with pytest.raises(DecisionContractError, match=r"returned dict for request 1; expected a Decision"):
        decider.decide(BTC)


def test_an_approval_above_the_request_is_refused(user_module: str) -> None:
    with pytest.raises(DecisionContractError, match=r"request 1 asked for 1.0.*qty=2.0"):
        load_decider(f"{user_module}:too_much").decide(BTC)


def test_a_batch_of_the_wrong_length_is_refused(user_module: str) -> None:
    with pytest.raises(DecisionContractError, match=r"decide_batch of 2 requests returned 1"):
        load_decider(f"{user_module}:BadBatch").decide_batch([BTC, BTC])


def test_something_neither_callable_nor_a_governor_is_refused(user_module: str) -> None:
    with pytest.raises(DecisionSpecError, match=rf"'{user_module}:NOT_A_DECIDER' is neither callable nor has decide"):
        load_decider(f"{user_module}:NOT_A_DECIDER")


def test_a_governors_book_and_release_are_reached_and_checked(user_module: str) -> None:
    keeper = load_decider(f"{user_module}:Keeper")
    assert keeper.keeps_positions and keeper.positions() == {}
    keeper.decide_batch([BTC, BTC._replace(side="SELL", qty=0.25)])
    assert keeper.positions() == {"BTC": 0.75} and keeper.answered == 2
    assert keeper.release("BTC", 0.75) and keeper.positions() == {"BTC": 0.0}
    bare = load_decider(f"{user_module}:allow_half")
    assert not bare.keeps_positions and bare.positions() is None and bare.release("BTC", 1.0) is False
    with pytest.raises(DecisionContractError, match=r"positions\(\) returned list; expected a mapping"):
        load_decider(f"{user_module}:ListBook").positions()


# ------------------------------------------------------------------------------ risk stack in Redis


@pytest.fixture
def client(external_service_urls) -> Iterator[redis.Redis]:
    connection = redis_client(external_service_urls.redis_url)
    try:
        yield connection
    finally:
        connection.close()


@pytest.fixture
def state(client: redis.Redis) -> Iterator[RiskDecisionState]:
    state = RiskDecisionState(client, "run", namespace=f"stress-test-{uuid.uuid4().hex[:12]}")
    state.init(100_000.0)
    try:
        yield state
    finally:
        state.close()
        state.clear()


def _req(symbol: str, side: str, qty: float, price: float, rid: int = 0) -> DecisionRequest:
    return DecisionRequest(symbol, side, qty, price, 0, rid)


def test_the_guard_and_balancer_cut_and_the_book_lives_in_redis(state: RiskDecisionState) -> None:
    policy = RiskPolicy(guard=GuardLimits(max_order_notional=30_000.0, max_open_positions=2))
    decider = RiskStackDecider(state, policy)
    got = decider.decide_batch([
        _req("BTC", "BUY", 1.0, 50_000.0, 1),  # cut to 30,000 notional by the order limit
        _req("BTC", "BUY", 2.0, 50_000.0, 2),  # concentration: 100,000 equity caps BTC at 2.0 -> 1.4 more, then 0.6
        _req("ETH", "SELL", 1.0, 3_000.0, 3),
        _req("SOL", "BUY", 1.0, 100.0, 4),  # a third open position: refused
        _req("BTC", "SELL", 0.5, 50_000.0, 5),  # reducing: passes
    ])  # fmt: skip
    assert got[0] == Decision(True, pytest.approx(0.6), "RISK_MAX_ORDER_NOTIONAL")
    assert got[1].reason == "RISK_MAX_ORDER_NOTIONAL" and got[1].qty == pytest.approx(0.6)
    assert got[2] == Decision(True, 1.0, "")
    assert got[3] == Decision(False, 0.0, "RISK_MAX_OPEN_POSITIONS")
    assert got[4] == Decision(True, 0.5, "")
    book = state.read()
    assert book.positions == pytest.approx({"BTC": 0.7, "ETH": -1.0})
    assert book.marks == {"BTC": 50_000.0, "ETH": 3_000.0, "SOL": 100.0}
    assert state.counts() == {"requests": 5, "PASSED": 2, "RISK_MAX_ORDER_NOTIONAL": 2, "RISK_MAX_OPEN_POSITIONS": 1}
    # a second decider on the same run starts from what the first one stored
    assert RiskStackDecider(state, policy).decide(_req("BTC", "SELL", 0.7, 50_000.0)) == Decision(True, 0.7, "")
    assert state.read().positions["BTC"] == pytest.approx(0.0)


def test_the_risk_stack_shows_its_redis_book_and_takes_releases(state: RiskDecisionState) -> None:
    decider = RiskStackDecider(state)
    assert decider.decide(_req("ETH", "BUY", 2.0, 2_000.0)) == Decision(True, 2.0, "")
    assert decider.positions() == {"ETH": 2.0}
    decider.release("ETH", 2.0)  # the venue rejected it: off the book, and the next batch reads the new one
    assert state.read().positions == {"ETH": 0.0} and state.counts()["released"] == 1
    assert decider.decide(_req("ETH", "BUY", 1.0, 2_000.0)) == Decision(True, 1.0, "")
    assert decider.positions() == {"ETH": 1.0} and decider.conflicts == 0


def test_the_kill_switch_and_the_governor_stop_the_next_batch(state: RiskDecisionState) -> None:
    decider = RiskStackDecider(state)
    assert decider.decide(_req("BTC", "BUY", 1.0, 50_000.0)).allowed
    state.hot.set_ess_state("TRIPPED")  # set by another process: the decider's copy is stale
    assert decider.decide(_req("BTC", "BUY", 0.1, 50_000.0)) == Decision(False, 0.0, "ESS_BLOCKED")
    assert decider.decide(_req("BTC", "SELL", 0.5, 50_000.0)) == Decision(True, 0.5, "")  # reducing passes
    state.hot.set_ess_state("HALTED")
    assert decider.decide(_req("ETH", "BUY", 0.1, 3_000.0)) == Decision(False, 0.0, "ESS_HALTED")
    state.hot.set_ess_state("ARMED")
    state.hot.set_kill_switch(True)
    assert decider.decide(_req("BTC", "SELL", 0.1, 50_000.0)) == Decision(False, 0.0, "KILL_SWITCH")
    state.hot.set_kill_switch(False)
    assert decider.decide(_req("BTC", "SELL", 0.1, 50_000.0)) == Decision(True, 0.1, "")
    assert decider.conflicts == 4  # each control change was seen at commit and the batch judged again
    assert state.read().positions["BTC"] == pytest.approx(0.4)


def test_two_deciders_never_lose_each_others_orders(state: RiskDecisionState) -> None:
    a, b = RiskStackDecider(state), RiskStackDecider(state)
    for i in range(20):
        (a if i % 2 else b).decide(_req("ETH", "BUY", 0.25, 2_000.0, i))
    assert state.read().positions["ETH"] == pytest.approx(5.0)
    assert state.counts()["requests"] == 20


def test_bad_requests_and_missing_state_are_errors(state: RiskDecisionState, client: redis.Redis) -> None:
    decider = RiskStackDecider(state)
    with pytest.raises(DecisionRequestError, match=r"request 7: side must be BUY or SELL"):
        decider.decide(DecisionRequest("BTC", "HOLD", 1.0, 1.0, 0, 7))
    with pytest.raises(DecisionRequestError, match=r"request 0: qty must be positive"):
        decider.decide(_req("BTC", "BUY", -1.0, 1.0))
    assert state.counts() == {}  # nothing judged, nothing counted
    client.delete(state.hot.keys.equity)
    with pytest.raises(HotStateNotInitialisedError, match=r"is not initialised"):
        RiskStackDecider(state).decide(_req("BTC", "BUY", 1.0, 1.0))


def test_a_commit_sent_again_under_its_token_is_stored_once(state: RiskDecisionState) -> None:
    book = state.read()
    args = ({"BTC": 1.0}, {"BTC": 50_000.0}, {"requests": 1, "PASSED": 1})
    assert state.commit(book, *args, decider_id="d1", token="t1") is None
    assert state.commit(book, *args, decider_id="d1", token="t1") is None  # the reply was lost: sent again
    assert state.counts() == {"requests": 1, "PASSED": 1} and state.read().version == 1
    assert state.commit(book, *args, decider_id="d1", token="t2") is not None  # a new batch on a stale book: refused


def test_a_batch_whose_reply_was_lost_is_decided_once(state: RiskDecisionState, monkeypatch) -> None:
    from stress_pipeline.services.errors import ServiceUnavailableError

    decider = RiskStackDecider(state)
    batch = [_req("ETH", "BUY", 1.0, 3_000.0, 1), _req("ETH", "BUY", 2.0, 3_000.0, 2)]
    real_commit = state.commit

    def stored_then_cut(*args, **kwargs):
        real_commit(*args, **kwargs)
        raise ServiceUnavailableError("Redis", "redis://127.0.0.1:6379/0", "connection reset")

    monkeypatch.setattr(state, "commit", stored_then_cut)
    with pytest.raises(ServiceUnavailableError):
        decider.decide_batch(batch)
    monkeypatch.setattr(state, "commit", real_commit)
    again = decider.decide_batch(batch)  # the caller repeats the batch after the reconnect
    assert again == [Decision(True, 1.0, ""), Decision(True, 2.0, "")]
    assert state.counts()["requests"] == 2 and state.read().positions["ETH"] == pytest.approx(3.0)
    decider.decide(_req("ETH", "SELL", 3.0, 3_000.0, 3))
    assert state.counts()["requests"] == 3 and state.read().positions["ETH"] == pytest.approx(0.0)
