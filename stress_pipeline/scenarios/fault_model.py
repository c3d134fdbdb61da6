"""Operational faults a scenario injects into the paper run and the live state: typed per kind.

A fault names its ``kind``; its timing (``at_s``, ``duration_s``) and ``params`` are validated by the
model of that kind, so a bad fault fails when its pack loads, naming the field
(:func:`parse_faults`, :class:`FaultSpecError`). ``window_ns`` is the one rule for a fault's window.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from fractions import Fraction
from typing import Annotated, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


NS_PER_SECOND = 1_000_000_000
#: The latest a fault may start, and the longest it may last: a century keeps every window in int64 ns.
MAX_FAULT_SECONDS = 100 * 36_525 * 864  # 100 years of 365.25 days, in seconds
#: Where in its write path the writer can be made to crash.
CrashPoint = Literal["after_ledger_before_redis"]

_Seconds = Annotated[float, Field(strict=True, allow_inf_nan=False, ge=0, le=MAX_FAULT_SECONDS)]
#: At least a nanosecond: a shorter window would round to nothing.
_Duration = Annotated[float, Field(strict=True, allow_inf_nan=False, ge=1e-9, le=MAX_FAULT_SECONDS)]
_Multiplier = Annotated[float, Field(strict=True, allow_inf_nan=False, ge=0)]


def seconds_to_ns(seconds: float) -> int:
    """``seconds`` as whole nanoseconds, rounded half-even from the float's exact value (a float
    product such as ``seconds * 1e9`` would round first and can land a nanosecond off)."""
    return round(Fraction(seconds) * NS_PER_SECOND)


class FaultBase(_Strict):
    """An operational fault injected during the paper run: it starts ``at_s`` seconds of sim time
    after the first bar and lasts ``duration_s``. Each kind is a subclass with typed ``params``."""

    at_s: _Seconds
    duration_s: _Duration

    def window_ns(self, start_ns: int) -> tuple[int, int]:
        """The fault's window [begin, end) in ns for a run whose first bar is at ``start_ns``: begin is
        ``start_ns`` plus ``at_s``, end is begin plus ``duration_s``, each in whole nanoseconds. The one
        rule every consumer (exchange simulator, state-layer plan, event log) uses."""
        begin = int(start_ns) + seconds_to_ns(self.at_s)
        return begin, begin + seconds_to_ns(self.duration_s)


class NoParams(_Strict):
    """A kind without parameters (``params`` may be left out or given empty)."""


class RedisDownFault(FaultBase):
    """Redis is down for the window: the writer buffers hot-state updates on disk and flushes them after."""

    kind: Literal["redis_down"] = "redis_down"
    params: NoParams = NoParams()


class PostgresDownFault(FaultBase):
    """The ledger database is down for the window: ledger writes buffer on disk; the paper engine opens no
    position meanwhile when the policy says so (``risk.block_openings_when_ledger_down``)."""

    kind: Literal["postgres_down"] = "postgres_down"
    params: NoParams = NoParams()


class KillSwitchFault(FaultBase):
    """The KILL_SWITCH is on for the window: the paper engine's router sends no new order (rebalance,
    replacement or safety-governor flatten; a triggered stop-loss exit still goes), and routes its
    targets again once the switch is off."""

    kind: Literal["kill_switch"] = "kill_switch"
    params: NoParams = NoParams()


class WriterCrashParams(_Strict):
    point: CrashPoint = "after_ledger_before_redis"


class WriterCrashFault(FaultBase):
    """The writer dies at ``params.point`` of its write path, on its first write at or after ``at_s``.
    A crash is instantaneous: ``duration_s`` is 0 (its window is empty)."""

    kind: Literal["writer_crash"] = "writer_crash"
    duration_s: float = 0.0
    params: WriterCrashParams = WriterCrashParams()

    @field_validator("duration_s")
    @classmethod
    def _instantaneous(cls, value: float) -> float:
        if value != 0:
            raise ValueError("a writer crash is instantaneous: leave duration_s out (or 0)")
        return value


class ExchangeOutageFault(FaultBase):
    """The venue is down: orders arriving in the window are rejected, working orders do not fill."""

    kind: Literal["exchange_outage"] = "exchange_outage"
    params: NoParams = NoParams()


class RateLimitParams(_Strict):
    limit_mult: _Multiplier = 0.0  # both request limits are multiplied by this; 0 refuses every request


class RateLimitFault(FaultBase):
    """The venue's request limits shrink to ``params.limit_mult`` times their size in the window."""

    kind: Literal["rate_limit"] = "rate_limit"
    params: RateLimitParams = RateLimitParams()


class LatencySpikeParams(_Strict):
    mult: _Multiplier = 10.0  # latency is multiplied by this


class LatencySpikeFault(FaultBase):
    """Order latency is ``params.mult`` times its normal value in the window."""

    kind: Literal["latency_spike"] = "latency_spike"
    params: LatencySpikeParams = LatencySpikeParams()


class DuplicateFillsParams(_Strict):
    rate: Annotated[float, Field(strict=True, ge=0, le=1)] = 0.1  # probability a fill is delivered twice


class DuplicateFillsFault(FaultBase):
    """Fills whose time falls in the window are delivered twice with probability ``params.rate``."""

    kind: Literal["duplicate_fills"] = "duplicate_fills"
    params: DuplicateFillsParams = DuplicateFillsParams()


class OutOfOrderFillsParams(_Strict):
    window: Annotated[int, Field(strict=True, ge=1, le=1_000_000)] = 5  # fills permuted within blocks of this many


class OutOfOrderFillsFault(FaultBase):
    """Fills whose time falls in the window are permuted within consecutive blocks of ``params.window``."""

    kind: Literal["out_of_order_fills"] = "out_of_order_fills"
    params: OutOfOrderFillsParams = OutOfOrderFillsParams()


FaultSpec = Annotated[
    RedisDownFault
    | PostgresDownFault
    | WriterCrashFault
    | ExchangeOutageFault
    | RateLimitFault
    | LatencySpikeFault
    | DuplicateFillsFault
    | OutOfOrderFillsFault
    | KillSwitchFault,
    Field(discriminator="kind"),
]
FAULT_ADAPTER: TypeAdapter[FaultSpec] = TypeAdapter(FaultSpec)
FAULT_TYPES: dict[str, type[FaultBase]] = {
    cls.model_fields["kind"].default: cls for cls in get_args(get_args(FaultSpec)[0])
}
FAULT_KINDS: tuple[str, ...] = tuple(FAULT_TYPES)


class FaultSpecError(ValueError):
    """A fault that does not validate; the message names the fault and the field."""


def parse_faults(faults: Iterable[FaultBase | Mapping]) -> tuple[FaultSpec, ...]:
    """``faults`` (specs, or mappings as in a stress pack) as typed specs; a bad one raises
    :class:`FaultSpecError` naming its position, kind and field, e.g.
    ``faults[1] (duplicate_fills): params.rate: Input should be less than or equal to 1 (got 1.5)``."""
    specs = []
    for index, fault in enumerate(faults):
        if isinstance(fault, FaultBase):
            specs.append(fault)
            continue
        try:
            specs.append(FAULT_ADAPTER.validate_python(fault))
        except ValidationError as exc:
            kind = fault.get("kind") if isinstance(fault, Mapping) else None
            raise FaultSpecError(f"faults[{index}] ({kind}): {_fault_error(exc)}") from None
    return tuple(specs)


def _fault_error(exc: ValidationError) -> str:
    """The first error as ``field: message (got value)``."""
    error = exc.errors()[0]
    if error["type"] in ("union_tag_invalid", "union_tag_not_found", "model_attributes_type", "model_type"):
        return f"kind: expected one of {', '.join(FAULT_KINDS)}"
    field = ".".join(str(part) for part in error["loc"][1:])  # drop the union tag
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "missing":
        return f"{field}: missing (required)"
    if error["type"] == "extra_forbidden":
        return f"{field}: unknown field"
    return f"{field}: {message} (got {error['input']!r})"
