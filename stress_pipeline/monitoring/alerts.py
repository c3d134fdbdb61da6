"""PagerDuty Events API v2 alert events: built, validated and masked in one place.

An alert leaves the project as the JSON body PagerDuty's ``POST /v2/enqueue`` takes, so a real
PagerDuty integration works unchanged and the embedded receiver
(:mod:`~stress_pipeline.monitoring.receiver`) judges events by the very same rule
(:func:`event_errors`) as the sender does before anything is queued.

The shape, from PagerDuty's Events API v2 documentation:

* ``routing_key`` (required): the integration key, 32 characters;
* ``event_action`` (required): ``trigger``, ``acknowledge`` or ``resolve``;
* ``dedup_key``: at most 255 characters; required for acknowledge and resolve; a trigger without
  one always opens a new alert, so every alert here carries a deterministic key per failure and
  subject (:func:`dedup_key`), and a repeated trigger of an open alert is not a new incident;
* ``payload`` (required for a trigger): ``summary`` (at most 1024 characters), ``source``,
  ``severity`` (``critical``, ``error``, ``warning``, ``info``), optional ``timestamp`` (ISO 8601),
  ``component``, ``group``, ``class`` and ``custom_details`` (an object).

The routing key is a credential: it appears in the body that is posted and nowhere else. Events in
the durable queue, log lines, errors and metadata carry :func:`mask_routing_key` instead.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

#: PagerDuty's Events API v2 endpoint; a configured URL of this shape works unchanged.
DEFAULT_ENDPOINT = "https://events.pagerduty.com/v2/enqueue"
SEVERITIES = ("critical", "error", "warning", "info")
EVENT_ACTIONS = ("trigger", "acknowledge", "resolve")
TRIGGER, ACKNOWLEDGE, RESOLVE = EVENT_ACTIONS
ROUTING_KEY_LENGTH = 32
MAX_DEDUP_KEY = 255
MAX_SUMMARY = 1024
#: PagerDuty's size limit of one event body.
MAX_BODY_BYTES = 512 * 1024
MASK = "***"

_PAYLOAD_TEXT = ("summary", "source", "component", "group", "class")
_ISO_8601 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?$")
_KEY_PART = re.compile(r"[^A-Za-z0-9_.:-]+")


class AlertError(ValueError):
    """An event PagerDuty would refuse; the message names every offending field."""

    def __init__(self, errors: list[str]):
        self.errors = list(errors)
        super().__init__("invalid PagerDuty event: " + "; ".join(self.errors))


@dataclass(frozen=True)
class Alert:
    """One event to send, without its routing key (which the sender adds when it posts).

    ``event_action`` is trigger, acknowledge or resolve; ``summary``, ``source`` and ``severity`` are
    required for a trigger and ignored otherwise.
    """

    event_action: str
    dedup_key: str
    summary: str = ""
    source: str = ""
    severity: str = ""
    timestamp: str = ""
    component: str = ""
    group: str = ""
    event_class: str = ""
    custom_details: Mapping[str, Any] = field(default_factory=dict)

    def body(self, routing_key: str) -> dict[str, Any]:
        """The Events API v2 JSON body for ``routing_key``, validated (:class:`AlertError` if not)."""
        body = self.unrouted_body()
        body["routing_key"] = routing_key
        check_event(body)
        return body

    def unrouted_body(self) -> dict[str, Any]:
        """The body without ``routing_key``: what the durable queue stores."""
        body: dict[str, Any] = {"event_action": self.event_action, "dedup_key": self.dedup_key}
        if self.event_action == TRIGGER:
            payload: dict[str, Any] = {"summary": self.summary, "source": self.source, "severity": self.severity}
            optional = {"timestamp": self.timestamp, "component": self.component, "group": self.group,
                        "class": self.event_class}  # fmt: skip
            payload.update({name: value for name, value in optional.items() if value})
            if self.custom_details:
                payload["custom_details"] = dict(self.custom_details)
            body["payload"] = payload
        return body


def trigger(
    failure: str,
    subject: str,
    summary: str,
    *,
    severity: str,
    source: str,
    timestamp: datetime | None = None,
    component: str = "",
    group: str = "",
    custom_details: Mapping[str, Any] | None = None,
) -> Alert:
    """A trigger for ``failure`` on ``subject``; its dedup key is :func:`dedup_key` of the two.

    Checked at once (without a routing key), so a bad severity fails where the alert is made.
    """
    alert = Alert(
        TRIGGER, dedup_key(failure, subject), summary=summary, source=source, severity=severity,
        timestamp=iso_timestamp(timestamp or datetime.now(UTC)), component=component, group=group,
        event_class=failure, custom_details=dict(custom_details or {}),
    )  # fmt: skip
    check_event(alert.unrouted_body(), routed=False)
    return alert


def acknowledge(failure: str, subject: str) -> Alert:
    """Acknowledge the alert of ``failure`` on ``subject``."""
    return Alert(ACKNOWLEDGE, dedup_key(failure, subject))


def resolve(failure: str, subject: str) -> Alert:
    """Resolve the alert of ``failure`` on ``subject``."""
    return Alert(RESOLVE, dedup_key(failure, subject))


def dedup_key(failure: str, subject: str) -> str:
    """``stress-pipeline/<failure>/<subject>``: the same failure of the same subject always gives the
    same key, so PagerDuty folds repeats into one open alert and resolve finds it.

    Characters outside ``[A-Za-z0-9_.:-]`` become ``-``; a key over 255 characters keeps its head and
    ends with a digest of the whole, so two long subjects never share a key.
    """
    for name, value in (("failure", failure), ("subject", subject)):
        if not isinstance(value, str) or not value.strip():
            raise AlertError([f"dedup_key: {name} must be a non-empty string, got {value!r}"])
    key = f"stress-pipeline/{_KEY_PART.sub('-', failure.strip())}/{_KEY_PART.sub('-', subject.strip())}"
    if len(key) <= MAX_DEDUP_KEY:
        return key
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return f"{key[: MAX_DEDUP_KEY - 17]}~{digest}"


def iso_timestamp(moment: datetime) -> str:
    """``moment`` as ISO 8601 with milliseconds, in UTC (naive times are taken as UTC)."""
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).isoformat(timespec="milliseconds")


def mask_routing_key(key: object) -> str:
    """What logs and metadata show for a routing key: never any of its characters."""
    return "<unset>" if not key else MASK


def routing_key_fingerprint(key: str) -> str:
    """A short one-way digest of a routing key: tells integrations apart without revealing one."""
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def check_event(body: object, *, routed: bool = True) -> None:
    """Raise :class:`AlertError` naming every field of ``body`` PagerDuty would refuse."""
    errors = event_errors(body, routed=routed)
    if errors:
        raise AlertError(errors)


def event_errors(body: object, *, routed: bool = True) -> list[str]:
    """Every problem of an Events API v2 body, each naming its field (empty: valid).

    Fields PagerDuty does not define are left alone, as PagerDuty leaves them.

    ``routed=False`` checks a body without its routing key (an alert before it is sent).
    """
    if not isinstance(body, Mapping):
        return [f"event: expected a JSON object, got {type(body).__name__}"]
    errors = _routing_key_errors(body.get("routing_key")) if routed else []
    action = body.get("event_action")
    if action not in EVENT_ACTIONS:
        errors.append(f"event_action: {action!r} is not one of {', '.join(EVENT_ACTIONS)}")
    key = body.get("dedup_key")
    if key is None:
        if action in (ACKNOWLEDGE, RESOLVE):
            errors.append(f"dedup_key: required for {action}")
    elif not isinstance(key, str) or not key:
        errors.append(f"dedup_key: expected a non-empty string, got {key!r}")
    elif len(key) > MAX_DEDUP_KEY:
        errors.append(f"dedup_key: {len(key)} characters, at most {MAX_DEDUP_KEY}")
    payload = body.get("payload")
    if action == TRIGGER or payload is not None:
        errors += _payload_errors(payload)
    return errors


def _routing_key_errors(key: object) -> list[str]:
    if key is None or key == "":
        return ["routing_key: missing (the integration key of the PagerDuty service)"]
    if not isinstance(key, str):
        return [f"routing_key: expected a string, got {type(key).__name__}"]
    if len(key) != ROUTING_KEY_LENGTH:
        # The key itself is never quoted, only its length.
        return [f"routing_key: {len(key)} characters, expected {ROUTING_KEY_LENGTH}"]
    return []


def _payload_errors(payload: object) -> list[str]:
    if not isinstance(payload, Mapping):
        return [f"payload: required for a trigger, expected an object, got {type(payload).__name__}"]
    errors = []
    for name in ("summary", "source"):
        if not isinstance(payload.get(name), str) or not payload.get(name, "").strip():
            errors.append(f"payload.{name}: required, a non-empty string")
    summary = payload.get("summary")
    if isinstance(summary, str) and len(summary) > MAX_SUMMARY:
        errors.append(f"payload.summary: {len(summary)} characters, at most {MAX_SUMMARY}")
    severity = payload.get("severity")
    if severity not in SEVERITIES:
        errors.append(f"payload.severity: {severity!r} is not one of {', '.join(SEVERITIES)}")
    for name in _PAYLOAD_TEXT[2:]:
        if name in payload and not isinstance(payload[name], str):
            errors.append(f"payload.{name}: expected a string, got {type(payload[name]).__name__}")
    stamp = payload.get("timestamp")
    if stamp is not None and (not isinstance(stamp, str) or not _ISO_8601.match(stamp)):
        errors.append(f"payload.timestamp: {stamp!r} is not an ISO 8601 timestamp")
    details = payload.get("custom_details")
    if details is not None and not isinstance(details, Mapping):
        errors.append(f"payload.custom_details: expected an object, got {type(details).__name__}")
    return errors
