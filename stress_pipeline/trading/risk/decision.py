"""The decision contract of the system under test: one order in, allow / cut / block out.

The decision flood (``stress-pipeline bench decisions``) and the operational drills do not call the
risk stack directly: they call a *decider*, anything that turns a :class:`DecisionRequest` into a
:class:`Decision`. The project's default decider is the real risk stack (balancer, safety governor,
kill switch, pre-trade guard, limits from the policy file) over the run's hot state in Redis
(``state/risk_decisions.py``). A user plugs in their own decision function or risk governor by
import path, "package.module:callable", resolved like a strategy (``trading/import_path.py``):

* a function taking one argument, the request, and returning a :class:`Decision`;
* a class: instantiated with the parameters; the instance must have ``decide(request)`` (a risk
  governor) or be callable with the request;
* an object (module attribute) with ``decide(request)``;
* a function with no required argument: a factory, called with the parameters, that returns one
  of the above.

A decider may also answer several requests at once (``decide_batch(requests) -> list[Decision]``),
which lets one backed by a server answer a batch in one round trip; :func:`load_decider` gives every
decider that method (a loop over ``decide`` when the user's has none). Two more methods are optional,
for the drills that check the decider's own state: ``positions() -> {symbol: signed qty}``, the book
the decider has approved, compared with the venue's after an outage; and ``release(symbol,
signed_qty)``, told when an approved order was rejected by the venue or cancelled unfilled. A drill
whose criterion needs one the decider lacks records that criterion as not exercised, naming it.
What a user's decider returns is checked on every call: a wrong type, or an approved quantity above
the requested one, raises :class:`DecisionContractError` naming the decider and the request, so a
broken governor fails loudly instead of being measured as fast.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple, Protocol, runtime_checkable

from stress_pipeline.trading.import_path import call_with_params, import_object, required_arguments

BUY, SELL = "BUY", "SELL"
SIDES = (BUY, SELL)
#: The reason of a decision refused because the kill switch is on (the risk stack's other reasons are
#: the names of ``trading.risk.reasons``).
KILL_SWITCH = "KILL_SWITCH"


class DecisionRequest(NamedTuple):
    """One order the trading system wants to send, as the decider sees it."""

    symbol: str
    side: str  # BUY or SELL
    qty: float  # > 0, base units
    price: float  # > 0, the price the order expects (the current mark for a market order)
    ts_ns: int  # Unix time in ns at which the request was (scheduled to be) sent
    request_id: int = 0

    @property
    def signed_qty(self) -> float:
        """The quantity as a position change: > 0 buys, < 0 sells."""
        return self.qty if self.side == BUY else -self.qty


class Decision(NamedTuple):
    """The answer: whether the order may go, how much of it, and the rule that cut or refused it."""

    allowed: bool
    qty: float  # approved, 0 <= qty <= the requested qty; 0 when refused
    reason: str = ""  # "" when the order passed unchanged

    @classmethod
    def allow(cls, qty: float, reason: str = "") -> Decision:
        return cls(qty > 0.0, float(qty), reason)

    @classmethod
    def block(cls, reason: str) -> Decision:
        return cls(False, 0.0, reason)


@runtime_checkable
class Decider(Protocol):
    """What the flood and the drills call."""

    name: str

    def decide(self, request: DecisionRequest) -> Decision: ...

    def decide_batch(self, requests: Sequence[DecisionRequest]) -> list[Decision]: ...


def allow_all(request: DecisionRequest) -> Decision:
    """A decider that passes every order unchanged: the decision flood against it measures the load
    generator alone (``--decider stress_pipeline.trading.risk.decision:allow_all``)."""
    return Decision(True, request.qty, "")


class DecisionSpecError(ValueError):
    """A decider's import path does not resolve, or what it names does not have the decision signature."""


class DecisionRequestError(ValueError):
    """A request that no decider can judge (unknown side, quantity or price not positive and finite)."""


class DecisionContractError(TypeError):
    """A decider answered something that is not a valid :class:`Decision` for the request."""


def check_request(request: DecisionRequest) -> DecisionRequest:
    """``request`` itself when it is well formed; else a :class:`DecisionRequestError` naming the field."""
    if request.side != BUY and request.side != SELL:
        raise DecisionRequestError(f"request {request.request_id}: side must be BUY or SELL, got {request.side!r}")
    if not (0.0 < request.qty < math.inf):
        raise DecisionRequestError(
            f"request {request.request_id}: qty must be positive and finite, got {request.qty!r}"
        )
    if not (0.0 < request.price < math.inf):
        raise DecisionRequestError(
            f"request {request.request_id}: price must be positive and finite, got {request.price!r}"
        )
    if not isinstance(request.symbol, str) or not request.symbol:
        raise DecisionRequestError(f"request {request.request_id}: symbol must be a non-empty string")
    return request


def load_decider(spec: str, **params: object) -> CheckedDecider:
    """The decider at import path ``spec`` ("package.module:callable"), built with ``params``."""
    if not isinstance(spec, str) or ":" not in spec:
        raise DecisionSpecError(f"decision function {spec!r}: expected 'package.module:callable'")
    target = import_object(spec.strip(), kind="decision function", error=DecisionSpecError)
    return as_decider(target, name=spec.strip(), **params)


def as_decider(obj: object, *, name: str | None = None, **params: object) -> CheckedDecider:
    """Any accepted form of decider (see the module docstring) as a :class:`Decider` whose answers are checked."""
    label = str(name or getattr(obj, "name", None) or getattr(obj, "__name__", type(obj).__name__))
    if isinstance(obj, CheckedDecider):
        return obj
    if inspect.isclass(obj):
        return as_decider(_build(obj, params, label), name=label)
    decide = getattr(obj, "decide", None)
    if decide is not None and callable(decide):
        if params:
            raise DecisionSpecError(
                f"decision function {label!r} is an instance: it takes no parameters ({', '.join(params)})"
            )
        _check_one_argument(decide, label)
        optional = {m: getattr(obj, m, None) for m in ("decide_batch", "positions", "release")}
        return CheckedDecider(label, decide, **{m: f for m, f in optional.items() if callable(f)})
    if not callable(obj):
        raise DecisionSpecError(f"decision function {label!r} is neither callable nor has decide(request)")
    if required_arguments(obj) == 0:
        return as_decider(_build(obj, params, label), name=label)
    if params:
        raise DecisionSpecError(
            f"decision function {label!r} takes the request only, not parameters ({', '.join(params)})"
        )
    _check_one_argument(obj, label)
    return CheckedDecider(label, obj, None)


class CheckedDecider:
    """A user's decider with a batch method and every answer checked against the contract;
    ``answered`` counts the requests it has answered."""

    def __init__(
        self, name: str, decide: Callable[[DecisionRequest], object],
        decide_batch: Callable[[Sequence[DecisionRequest]], object] | None = None,
        positions: Callable[[], Mapping[str, float]] | None = None,
        release: Callable[[str, float], object] | None = None,
    ) -> None:  # fmt: skip
        self.name = name
        self._decide = decide
        self._decide_batch = decide_batch
        self._positions = positions
        self._release = release
        self.answered = 0

    def decide(self, request: DecisionRequest) -> Decision:
        answer = self._checked(self._decide(request), request)
        self.answered += 1
        return answer

    def decide_batch(self, requests: Sequence[DecisionRequest]) -> list[Decision]:
        if self._decide_batch is None:
            answers = [self._checked(self._decide(request), request) for request in requests]
            self.answered += len(answers)
            return answers
        raw = self._decide_batch(requests)
        if not isinstance(raw, list | tuple) or len(raw) != len(requests):
            got = len(raw) if isinstance(raw, list | tuple) else type(raw).__name__
            raise DecisionContractError(
                f"decision function {self.name!r}: decide_batch of {len(requests)} requests returned {got}"
            )
        answers = [self._checked(answer, request) for answer, request in zip(raw, requests, strict=True)]
        self.answered += len(answers)
        return answers

    @property
    def keeps_positions(self) -> bool:
        return self._positions is not None

    def positions(self) -> dict[str, float] | None:
        """The book the decider has approved ({symbol: signed qty}); None when it does not say."""
        if self._positions is None:
            return None
        book = self._positions()
        if not isinstance(book, Mapping):
            raise DecisionContractError(
                f"decision function {self.name!r}: positions() returned {type(book).__name__}; expected a mapping "
                "of symbol to signed quantity"
            )
        return {str(symbol): float(qty) for symbol, qty in book.items()}

    def release(self, symbol: str, signed_qty: float) -> bool:
        """Tell the decider an approved order did not fill (rejected, cancelled); False when it does not listen."""
        if self._release is None:
            return False
        self._release(symbol, signed_qty)
        return True

    def _checked(self, answer: object, request: DecisionRequest) -> Decision:
        if type(answer) is not Decision:
            raise DecisionContractError(
                f"decision function {self.name!r} returned {type(answer).__name__} for request "
                f"{request.request_id}; expected a Decision (stress_pipeline.trading.risk.decision.Decision)"
            )
        if not (0.0 <= answer.qty <= request.qty) or answer.allowed != (answer.qty > 0.0):
            raise DecisionContractError(
                f"decision function {self.name!r}: request {request.request_id} asked for {request.qty}, the "
                f"decision says allowed={answer.allowed} qty={answer.qty} (expected 0 <= qty <= {request.qty}, "
                "allowed exactly when qty > 0)"
            )
        return answer


def _build(factory: Callable[..., object], params: dict[str, object], label: str) -> object:
    return call_with_params(factory, params, label, kind="decision function", error=DecisionSpecError)


def _check_one_argument(fn: Callable[..., object], label: str) -> None:
    """Refuse a callable that cannot be called with exactly one positional argument, the request."""
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):  # no signature to inspect (builtins): the first call decides
        return
    try:
        signature.bind(None)
    except TypeError:
        raise DecisionSpecError(
            f"decision function {label!r} must take one argument, the DecisionRequest; its signature is {signature}"
        ) from None
