"""The embedded alert receiver: PagerDuty's ``POST /v2/enqueue`` on loopback, recording into PostgreSQL.

Without a configured PagerDuty endpoint, alerts still travel over real HTTP to a real service: this
one. It answers as PagerDuty's Events API v2 does, so the sender cannot tell the two apart:

* ``202 {"status": "success", "message": "Event processed", "dedup_key": ...}`` for a valid event,
  once it is committed to PostgreSQL (:func:`~stress_pipeline.monitoring.alert_store.record_event`
  applies PagerDuty's incident rules and records the delivery);
* ``400 {"status": "invalid event", "message": "Event object is invalid", "errors": [...]}`` when
  the body is not JSON or breaks the Events API v2 rules (the sender's own check,
  :func:`~stress_pipeline.monitoring.alerts.event_errors`);
* ``500`` when the database is unreachable: a server error, which a sender retries;
* ``GET /health``: 200 while it serves.

A :class:`FailurePlan` makes the next N requests fail with a chosen status (503, 429, ...) before
anything is recorded, so retries are exercised against the real server. The server is a
``ThreadingHTTPServer``: each request has its own thread, the database serialises what must be.
Request bodies are never logged (they hold the routing key); only the method, path and status are.

``python -m stress_pipeline.monitoring.receiver`` runs it as a process: a JSON object on standard
input gives ``database_url``, ``schema``, ``host`` and ``port`` (standard input, so a database
password never shows in the process list); it serves until SIGTERM. The services layer
(:mod:`stress_pipeline.services.alert_receiver`) starts it like the embedded servers.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import sqlalchemy as sa

from stress_pipeline.monitoring.alert_store import DEFAULT_SCHEMA, AlertTables, alert_tables, migrate, record_event
from stress_pipeline.monitoring.alerts import MAX_BODY_BYTES, event_errors
from stress_pipeline.monitoring.delivery import ALERT_ID_HEADER
from stress_pipeline.services.connections import postgres_engine
from stress_pipeline.services.errors import ServiceUnavailableError

ENQUEUE_PATH = "/v2/enqueue"
HEALTH_PATH = "/health"
HOST = "127.0.0.1"

log = logging.getLogger(__name__)


class FailurePlan:
    """The next ``count`` requests to ``/v2/enqueue`` are answered with ``status`` and not recorded."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._left = 0
        self._status = 503
        self.failed = 0

    def fail_next(self, count: int, status: int = 503) -> None:
        if count < 0 or not 400 <= status <= 599:
            raise ValueError(f"fail_next: expected count >= 0 and a 4xx/5xx status, got {count!r}, {status!r}")
        with self._lock:
            self._left, self._status = count, status

    def take(self) -> int | None:
        """The status to fail this request with, or None to serve it."""
        with self._lock:
            if self._left <= 0:
                return None
            self._left -= 1
            self.failed += 1
            return self._status


class AlertReceiver:
    """The receiver on ``host:port`` (0: a free port), recording into ``schema`` of ``database_url``."""

    def __init__(self, database_url: str, *, schema: str = DEFAULT_SCHEMA, host: str = HOST, port: int = 0):
        self.database_url = database_url
        self.tables: AlertTables = alert_tables(schema)
        self.failures = FailurePlan()
        self._host, self._port = host, port
        self._engine: sa.Engine | None = None
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def engine(self) -> sa.Engine:
        if self._engine is None:
            self._engine = postgres_engine(self.database_url, pool_size=8, max_overflow=8)
        return self._engine

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the alert receiver is not serving: start it first")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """The Events API v2 endpoint of this receiver."""
        return f"http://{self._host}:{self.port}{ENQUEUE_PATH}"

    def start(self) -> AlertReceiver:
        """Migrate the tables, listen, and serve from a background thread."""
        migrate(self.engine, self.tables.schema)
        self._server = _Server((self._host, self._port), _Handler, self)
        self._thread = threading.Thread(target=self._server.serve_forever, name="alert-receiver", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Migrate, listen and serve in this thread until :meth:`stop` (from a signal handler)."""
        migrate(self.engine, self.tables.schema)
        self._server = _Server((self._host, self._port), _Handler, self)
        self._server.serve_forever()

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            if self._thread is not None:
                server.shutdown()
                self._thread.join()
                self._thread = None
            server.server_close()
        if self._engine is not None:
            self._engine.dispose()

    def __enter__(self) -> AlertReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def handle_event(self, raw: bytes, alert_id: str) -> tuple[int, dict[str, Any]]:
        """The HTTP status and JSON answer for one enqueue request body."""
        failure = self.failures.take()
        if failure is not None:
            return failure, {"status": "unavailable", "message": f"injected failure {failure}"}
        try:
            body = json.loads(raw)
        except ValueError:
            return 400, _invalid(["event: the body is not valid JSON"])
        errors = event_errors(body)
        if errors:
            return 400, _invalid(errors)
        try:
            recorded = record_event(self.engine, self.tables, body, alert_id)
        except ServiceUnavailableError as err:
            return 500, {"status": "error", "message": f"alerts could not be recorded: {err.cause}"}
        return 202, {"status": "success", "message": "Event processed", "dedup_key": recorded.dedup_key}


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A sender that hung up before its answer (a timeout, a cut path) is routine: one log line."""
        error = sys.exc_info()[1]
        if isinstance(error, ConnectionError):
            log.info("%s hung up before its answer: %s", client_address, type(error).__name__)
        else:
            log.exception("request from %s failed", client_address)

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], receiver: AlertReceiver):
        self.receiver = receiver
        super().__init__(address, handler)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        if self.path.split("?", 1)[0] != ENQUEUE_PATH:
            self._answer(404, {"status": "not found", "message": f"POST {ENQUEUE_PATH} only"})
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            self._answer(413, _invalid([f"event: {length} bytes, at most {MAX_BODY_BYTES}"]))
            return
        raw = self.rfile.read(length)
        status, answer = self.server.receiver.handle_event(raw, self.headers.get(ALERT_ID_HEADER, ""))
        self._answer(status, answer)

    def do_GET(self) -> None:
        if self.path == HEALTH_PATH:
            self._answer(200, {"status": "ok"})
        else:
            self._answer(404, {"status": "not found", "message": f"GET {HEALTH_PATH} only"})

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status, HTTPStatus(status).phrase)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)


def _invalid(errors: list[str]) -> dict[str, Any]:
    return {"status": "invalid event", "message": "Event object is invalid", "errors": errors}


def main() -> int:
    """Serve with the configuration read from standard input until SIGTERM or SIGINT."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = json.loads(sys.stdin.read())
    receiver = AlertReceiver(
        config["database_url"], schema=config.get("schema", DEFAULT_SCHEMA), host=config.get("host", HOST),
        port=int(config.get("port", 0)),
    )  # fmt: skip

    def _stop(signum: int, frame: object) -> None:
        # shutdown() waits for serve_forever, which runs in this very thread: ask from another one.
        threading.Thread(target=lambda: receiver._server and receiver._server.shutdown(), daemon=True).start()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    log.info("alert receiver on %s:%s, schema %s", receiver._host, receiver._port, receiver.tables.schema)
    receiver.serve_forever()
    receiver.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
