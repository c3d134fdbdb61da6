"""Prometheus metrics: names by convention, values from the tables, textfile and a Pushgateway push."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families

from stress_pipeline.monitoring.metrics import ResultMetrics, previous_runs, push, write_textfile


class PushgatewayStandIn:
    """A tiny real HTTP server standing in for a Pushgateway: records each PUT/POST path and body."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, str]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def _record(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                owner.requests.append((self.command, self.path, body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_PUT = do_POST = _record

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def pushgateway() -> Iterator[PushgatewayStandIn]:
    gateway = PushgatewayStandIn()
    yield gateway
    gateway.close()


def _metrics(runs: float = 1.0) -> ResultMetrics:
    coverage = pd.DataFrame({"failure_mode": ["api_down", "redis_down", "kill_switch_set"],
                             "monitored": [True, True, False], "drill": ["crafted:api_down"] * 3,
                             "fired": [True, True, False], "detection_s": [15.0, 45.0, np.nan],
                             "outcome": ["pass", "fail", "fail"]})  # fmt: skip
    delivery = pd.DataFrame({"alert": ["a", "b", "c", "d"], "degraded": [False, True, True, False],
                             "delivered": [True, True, True, False], "delivery_s": [0.01, 0.3, 1.5, np.nan],
                             "incidents": [1, 1, 2, 0]})  # fmt: skip
    verdicts = pd.DataFrame({"scenario": ["s1", "s1", "s2"], "criterion": ["max_drawdown", "exercised", "max_drawdown"],
                             "outcome": ["fail", "pass", "fail"]})  # fmt: skip
    drills = pd.DataFrame({"drill": ["api_outage", "api_outage", "api_outage", "ess"],
                           "criterion": ["a", "b", "recovery_s", "c"], "value": [1.0, 2.0, 65.0, np.nan],
                           "outcome": ["pass", "fail", "pass", "not_exercised"]})  # fmt: skip
    detections = pd.DataFrame({"drill": ["api_outage", "broker", "broker"], "failure_mode": ["api_down", "redis_down",
                               "redis_down"], "detection_s": [10.0, 0.5, 0.7]})  # fmt: skip
    return ResultMetrics(runs_total=runs, verdicts=verdicts, coverage=coverage, delivery=delivery, drills=drills,
                         drill_detections=detections, drill_runs={"api_outage": 4, "ess": 1},
                         decision_latencies_s=np.array([2e-4, 4e-4, 9e-4, 3e-3]))  # fmt: skip


def _samples(text: str) -> dict[tuple[str, tuple], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for f in text_string_to_metric_families(text) for s in f.samples}  # fmt: skip


def test_textfile_holds_every_metric_with_conventional_names(tmp_path) -> None:
    path = write_textfile(_metrics(runs=3.0), tmp_path / "metrics" / "stress_pipeline.prom")
    samples = _samples(path.read_text())
    assert samples[("stress_runs_total", ())] == 3.0
    assert samples[("stress_breaches_total", (("criterion", "max_drawdown"), ("source", "scenario_verdicts")))] == 2
    assert samples[("stress_breaches_total", (("criterion", "redis_down"), ("source", "monitoring_coverage")))] == 1
    assert samples[("stress_breaches_total", (("criterion", "duplicate_incident"), ("source", "alert_delivery")))] == 1
    assert samples[("stress_breaches_total", (("criterion", "b"), ("source", "drills")))] == 1
    assert samples[("stress_drill_runs_total", (("drill", "api_outage"),))] == 4
    assert samples[("stress_drill_runs_total", (("drill", "ess"),))] == 1
    assert samples[("stress_drill_passed", (("drill", "api_outage"),))] == 0  # criterion b failed
    assert samples[("stress_drill_passed", (("drill", "ess"),))] == 0  # not exercised is not a pass
    assert samples[("stress_drill_criterion_passed", (("criterion", "a"), ("drill", "api_outage")))] == 1
    assert samples[("stress_drill_criterion_passed", (("criterion", "b"), ("drill", "api_outage")))] == 0
    assert samples[("stress_drill_criterion_passed", (("criterion", "c"), ("drill", "ess")))] == 0
    assert samples[("stress_drill_recovery_seconds", (("drill", "api_outage"),))] == 65.0
    assert ("stress_drill_recovery_seconds", (("drill", "ess"),)) not in samples
    assert samples[("stress_drill_detection_seconds", (("drill", "broker"), ("failure_mode", "redis_down")))] == 0.7
    assert samples[("stress_monitoring_coverage_ratio", ())] == pytest.approx(1 / 3)
    assert samples[("stress_failure_detection_seconds", (("failure_mode", "redis_down"),))] == 45.0
    assert ("stress_failure_detection_seconds", (("failure_mode", "kill_switch_set"),)) not in samples
    assert samples[("stress_alert_delivery_seconds_bucket", (("le", "0.25"),))] == 1
    assert samples[("stress_alert_delivery_seconds_bucket", (("le", "2.0"),))] == 3
    assert samples[("stress_alert_delivery_seconds_count", ())] == 3
    assert samples[("stress_alert_delivery_seconds_sum", ())] == pytest.approx(1.81)
    assert samples[("stress_alerts_undelivered", ())] == 1 and samples[("stress_alert_duplicate_incidents", ())] == 1
    assert samples[("stress_decision_latency_seconds_bucket", (("le", "0.001"),))] == 3
    names = {name for name, _ in samples}
    counters = {n for n in names if "runs" in n or "breaches" in n}
    assert all(n.endswith("_total") for n in counters)
    assert all(n.endswith(("_seconds", "_seconds_bucket", "_seconds_count", "_seconds_sum"))
               for n in names if "latency" in n or "delivery_seconds" in n or "detection" in n)  # fmt: skip
    assert previous_runs(path) == 3.0 and previous_runs(tmp_path / "none.prom") == 0.0
    assert not list(path.parent.glob("*.tmp*"))  # replaced atomically, nothing left beside it


def test_push_puts_the_snapshot_to_the_pushgateway(pushgateway: PushgatewayStandIn) -> None:
    push(_metrics(runs=7.0), pushgateway.url, job="stress_pipeline")
    [(method, path, body)] = pushgateway.requests
    assert method == "PUT" and path == "/metrics/job/stress_pipeline"
    assert _samples(body)[("stress_runs_total", ())] == 7.0


def test_push_to_a_gateway_that_is_not_there_raises(tmp_path) -> None:
    gateway = PushgatewayStandIn()
    url = gateway.url
    gateway.close()
    with pytest.raises(OSError):
        push(_metrics(), url, timeout_s=2.0)


def test_decision_flood_table_gives_quantiles_in_seconds(tmp_path) -> None:
    flood = pd.DataFrame([{"rate_per_s": 1000.0, "seconds": 10.0, "decisions": 10_000, "p50_ms": 0.2, "p99_ms": 0.9,
                           "p999_ms": 2.5, "max_ms": 7.0, "rss_slope_mb_per_min": 0.0}])  # fmt: skip
    text = write_textfile(ResultMetrics(decision_flood=flood), tmp_path / "m.prom").read_text()
    samples = _samples(text)
    assert samples[("stress_decision_latency_seconds", (("quantile", "0.99"),))] == pytest.approx(0.0009)
    assert samples[("stress_decision_latency_seconds_count", ())] == 10_000
    assert samples[("stress_decision_latency_max_seconds", ())] == pytest.approx(0.007)
    assert "# TYPE stress_decision_latency_seconds summary" in text


def test_tables_left_out_leave_their_metrics_out(tmp_path) -> None:
    samples = _samples(write_textfile(ResultMetrics(runs_total=1.0), tmp_path / "m.prom").read_text())
    assert set(name for name, _ in samples) == {"stress_runs_total"}
