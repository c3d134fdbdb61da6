"""Alert delivery over real HTTP: bounded retries with exponential backoff, from the durable queue.

:class:`AlertSender` posts each queued alert to the Events API v2 endpoint it was configured with
(PagerDuty's, or the embedded receiver's) with the standard library's ``urllib``: no dependency, and
the same request a real PagerDuty takes. PagerDuty's documented retry rules decide what a response
means: 202 (any 2xx) is delivered; 429, any 5xx and network errors (refused, reset, timed out) are
retried after a backoff of ``base_delay_s * 2**n`` (capped at ``max_delay_s``), at most
``max_attempts`` times per round; any other 4xx is the event's fault, so it is not retried: it is
dropped from the queue as ``rejected`` and reported.

Alerts go out strictly in queue order: when a round's retries run out, the alert and everything
behind it stay queued and the next round (:meth:`AlertSender.deliver_pending`, called again after
the path is back, or by :class:`AlertDispatcher` every ``reconnect_s``) starts from it. A process
that dies with alerts queued leaves them on disk; the next sender on the same queue directory sends
them first.

The routing key is added to the body at the moment of posting and appears nowhere else: log lines,
errors and :class:`Delivery` records carry :func:`~stress_pipeline.monitoring.alerts.mask_routing_key`.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from stress_pipeline.monitoring.alerts import Alert, check_event, mask_routing_key
from stress_pipeline.monitoring.queue import DELIVERED, REJECTED, AlertQueue, QueuedAlert
from stress_pipeline.services.urls import mask_url

#: Header naming the queue entry a request carries; the embedded receiver records it to count
#: redeliveries. PagerDuty ignores headers it does not know.
ALERT_ID_HEADER = "X-Stress-Alert-Id"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetryPolicy:
    """How hard one round tries an alert before leaving it queued for the next round."""

    max_attempts: int = 4
    base_delay_s: float = 0.25
    max_delay_s: float = 4.0
    timeout_s: float = 5.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts: expected >= 1, got {self.max_attempts!r}")
        for name in ("base_delay_s", "max_delay_s", "timeout_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name}: expected > 0, got {getattr(self, name)!r}")

    def delay_s(self, attempt: int) -> float:
        """The wait after failed attempt number ``attempt`` (1-based) of a round."""
        return min(self.max_delay_s, self.base_delay_s * 2 ** (attempt - 1))


@dataclass(frozen=True)
class Endpoint:
    """Where alerts go: an Events API v2 URL and the routing key (never shown: see ``__repr__``)."""

    url: str
    routing_key: str

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"alert url: expected an http(s) URL, got {mask_url(self.url)!r}")

    def __repr__(self) -> str:
        return f"Endpoint(url={mask_url(self.url)!r}, routing_key={mask_routing_key(self.routing_key)!r})"

    __str__ = __repr__


@dataclass(frozen=True)
class Response:
    """What one POST got back: an HTTP status (0 for a network error) and the decoded body or error."""

    status: int
    body: dict[str, Any]
    error: str = ""

    @property
    def accepted(self) -> bool:
        return 200 <= self.status < 300

    @property
    def retryable(self) -> bool:
        return self.status == 0 or self.status == 429 or self.status >= 500


@dataclass(frozen=True)
class Delivery:
    """The outcome of one queued alert: when it was raised, first sent and delivered, after how many
    attempts (over every round), and ``delivered`` or ``rejected`` (with the receiver's reason)."""

    seq: int
    alert_id: str
    dedup_key: str
    event_action: str
    enqueued_at: float
    first_attempt_at: float
    finished_at: float
    attempts: int
    outcome: str
    status: int
    error: str = ""

    @property
    def delivered(self) -> bool:
        return self.outcome == DELIVERED

    @property
    def latency_s(self) -> float:
        """From the moment the alert was raised to the receiver's answer."""
        return self.finished_at - self.enqueued_at


def post_event(url: str, body: dict[str, Any], *, timeout_s: float, alert_id: str = "") -> Response:
    """POST one event as JSON; any failure becomes a :class:`Response` (status 0 for the network)."""
    data = json.dumps(body, separators=(",", ":")).encode()
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if alert_id:
        headers[ALERT_ID_HEADER] = alert_id
    request = urllib.request.Request(url, data=data, headers=headers, method="POST")
    try:
        with _opener(url).open(request, timeout=timeout_s) as answer:
            return Response(answer.status, _json(answer.read()))
    except urllib.error.HTTPError as err:
        with err:
            return Response(err.code, _json(err.read()), f"HTTP {err.code} {err.reason}")
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        return Response(0, {}, f"{type(reason).__name__}: {reason}")


class AlertSender:
    """Sends the alerts of one durable queue to one endpoint, in order, with bounded retries."""

    def __init__(
        self, endpoint: Endpoint, queue: AlertQueue, policy: RetryPolicy | None = None, *,
        sleep: Callable[[float], None] = time.sleep,
    ):  # fmt: skip
        self.endpoint = endpoint
        self.queue = queue
        self.policy = policy or RetryPolicy()
        self._sleep = sleep
        self._attempts: dict[int, tuple[int, float]] = {}  # seq -> (attempts so far, first attempt time)
        self._lock = threading.Lock()  # one round at a time

    def enqueue(self, alert: Alert) -> QueuedAlert:
        """Check ``alert`` with this endpoint's routing key, then queue it durably."""
        check_event(alert.body(self.endpoint.routing_key))
        return self.queue.put(alert.unrouted_body())

    def send(self, alert: Alert) -> list[Delivery]:
        """Queue ``alert`` and run a delivery round (which sends anything queued before it first)."""
        self.enqueue(alert)
        return self.deliver_pending()

    def send_all(self, alerts: list[Alert]) -> list[Delivery | None]:
        """Queue ``alerts`` in order, run one delivery round; each alert's delivery (None: still queued)."""
        ids = [self.enqueue(alert).alert_id for alert in alerts]
        done = {d.alert_id: d for d in self.deliver_pending()}
        return [done.get(alert_id) for alert_id in ids]

    def deliver_pending(self) -> list[Delivery]:
        """One round: deliver queued alerts oldest first until the queue is empty or one cannot be
        delivered within the retry policy (it and the rest stay queued). Returns what finished."""
        finished: list[Delivery] = []
        with self._lock:
            while (queued := self.queue.head()) is not None:
                delivery = self._deliver(queued)
                if delivery is None:
                    break
                self.queue.ack(queued.seq, delivery.outcome)
                finished.append(delivery)
            if not len(self.queue):
                self.queue.compact()
        return finished

    def _deliver(self, queued: QueuedAlert) -> Delivery | None:
        body = {**queued.event, "routing_key": self.endpoint.routing_key}
        attempts, first = self._attempts.get(queued.seq, (0, 0.0))
        for attempt in range(1, self.policy.max_attempts + 1):
            first = first or time.time()
            attempts += 1
            response = post_event(self.endpoint.url, body, timeout_s=self.policy.timeout_s, alert_id=queued.alert_id)
            if response.accepted or not response.retryable:
                self._attempts.pop(queued.seq, None)
                return self._finished(queued, first, attempts, response)
            log.info(
                "alert %s (%s) attempt %d to %s failed: %s", queued.seq, queued.event.get("dedup_key"), attempts,
                mask_url(self.endpoint.url), response.error or f"HTTP {response.status}",
            )  # fmt: skip
            if attempt < self.policy.max_attempts:
                self._sleep(self.policy.delay_s(attempt))
        self._attempts[queued.seq] = (attempts, first)
        log.warning(
            "alert %s (%s) still queued after %d attempt(s); %d alert(s) wait for the path to %s",
            queued.seq, queued.event.get("dedup_key"), attempts, len(self.queue), mask_url(self.endpoint.url),
        )  # fmt: skip
        return None

    def _finished(self, queued: QueuedAlert, first: float, attempts: int, response: Response) -> Delivery:
        outcome = DELIVERED if response.accepted else REJECTED
        error = "" if response.accepted else _rejection(response)
        if error:
            log.error("alert %s (%s) rejected by %s: %s", queued.seq, queued.event.get("dedup_key"),
                      mask_url(self.endpoint.url), error)  # fmt: skip
        return Delivery(
            seq=queued.seq, alert_id=queued.alert_id, dedup_key=str(queued.event.get("dedup_key", "")),
            event_action=str(queued.event.get("event_action", "")), enqueued_at=queued.enqueued_at,
            first_attempt_at=first, finished_at=time.time(), attempts=attempts, outcome=outcome,
            status=response.status, error=error,
        )  # fmt: skip


class AlertDispatcher:
    """A background thread that keeps a sender's queue draining: at once when an alert is raised,
    and every ``reconnect_s`` while alerts wait for the path to come back."""

    def __init__(self, sender: AlertSender, *, reconnect_s: float = 1.0):
        if not reconnect_s > 0:
            raise ValueError(f"reconnect_s: expected > 0, got {reconnect_s!r}")
        self.sender = sender
        self.reconnect_s = reconnect_s
        self.deliveries: list[Delivery] = []
        self._wake = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="alert-dispatcher", daemon=True)
        self._thread.start()

    def raise_alert(self, alert: Alert) -> QueuedAlert:
        """Queue ``alert`` durably and wake the thread; returns at once."""
        queued = self.sender.enqueue(alert)
        with self._wake:
            self._wake.notify()
        return queued

    def wait_empty(self, timeout_s: float) -> bool:
        """Wait until every queued alert finished; False if some still wait after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while len(self.sender.queue) and time.monotonic() < deadline:
            time.sleep(0.02)
        return not len(self.sender.queue)

    def close(self) -> None:
        """Stop the thread (queued alerts stay on disk for the next sender)."""
        with self._wake:
            self._stopping = True
            self._wake.notify()
        self._thread.join()

    def _run(self) -> None:
        while True:
            with self._wake:
                if self._stopping:
                    return
                if not len(self.sender.queue):
                    self._wake.wait()
            self.deliveries.extend(self.sender.deliver_pending())
            with self._wake:
                if len(self.sender.queue) and not self._stopping:
                    self._wake.wait(self.reconnect_s)


def _rejection(response: Response) -> str:
    errors = response.body.get("errors")
    detail = "; ".join(str(e) for e in errors) if isinstance(errors, list) else response.body.get("message", "")
    return f"HTTP {response.status}: {detail or response.error}"


def _json(raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw or b"{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _opener(url: str) -> urllib.request.OpenerDirector:
    """The default opener, but never through an HTTP proxy for a loopback receiver."""
    host = urlsplit(url).hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    return _DIRECT if loopback else _DEFAULT


_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))
_DEFAULT = urllib.request.build_opener()
