"""The certification report: rendered from crafted stored tables, then opened in headless Chromium.

The browser test drives Debian's ``chromium`` through the DevTools protocol (a websocket): it loads the
file with the network cut (a proxy on a closed port, every host name unresolvable), records every
request the page makes, and checks that the page rendered, that each plot decoded into an image with
a size, and that nothing but the file itself and its inline ``data:`` images was requested.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from stress_pipeline.certification.decide import certify
from stress_pipeline.certification.report import History, ScenarioRuns, render_report
from stress_pipeline.simulation.result import SimResult
from stress_pipeline_tests.test_certification_gates import (
    GOOD_VERDICTS,
    all_attested,
    divergence_table,
    full_sources,
    reconciliation_row,
    verdict_rows,
    verdict_table,
)

START = pd.Timestamp("2024-03-01", tz="UTC")
WINDOW = (pd.Timestamp("2024-03-09", tz="UTC"), pd.Timestamp("2024-03-10", tz="UTC"))


def sim_result(kind: str, name: str, drop: float = 0.1) -> SimResult:
    index = pd.date_range(START, periods=24 * 20, freq="h", name="ts")
    equity = 100_000 * (1 + 0.0001 * np.arange(len(index)))
    crash = (index >= WINDOW[0]) & (index < WINDOW[1])
    equity[crash] *= 1 - drop
    peak = np.maximum.accumulate(equity)
    frame = pd.DataFrame({"equity": equity, "cash": equity, "gross_exposure": 0.5 * equity,
                          "drawdown": 1 - equity / peak}, index=index)  # fmt: skip
    events = None
    if kind == "paper":
        times = [WINDOW[0] + pd.Timedelta(hours=h) for h in (1, 2, 3, 30 * 24)]
        events = pd.DataFrame({
            "event_id": range(4), "ts": [t.value for t in times],
            "kind": ["ess_transition", "risk_block", "fill", "fill"], "symbol": ["BTCUSDT"] * 4,
            "order_id": [-1, 7, 7, 8], "qty": [np.nan, 1.0, 0.5, 0.5], "price": [np.nan, 50_000.0, 49_000.0, 1.0],
            "reason": ["drawdown", "max_exposure", "", ""],
            "details": ['{"from": "normal", "to": "halted"}', "{}", "{}", '{"outside": true}'],
        })  # fmt: skip
    metrics = ({"total_pnl": 800.0, "fees": 30.0, "slippage_cost": 20.0} if kind == "paper"
               else {"total_pnl": 1000.0, "fees": 25.0, "slippage_cost": 10.0})  # fmt: skip
    return SimResult(kind, name, pd.DataFrame(), pd.DataFrame(), frame, metrics, events)


@pytest.fixture(scope="module")
def report_file(tmp_path_factory) -> Path:
    failing = verdict_rows("crash_<b>lite</b>", [("max_drawdown_pct", "<=", 5, 6.58, "fail")])
    failing.loc[1, "detail"] = "max drawdown 6.58% > 5%"
    verdicts = verdict_table(GOOD_VERDICTS, failing)
    for frame in (verdicts,):
        frame.loc[:, "window_start"], frame.loc[:, "window_end"] = WINDOW
    certification = certify(full_sources(verdicts=verdicts), attestations=all_attested())
    runs = {
        "crash_a": ScenarioRuns(sim_result("paper", "crash_a"), sim_result("backtest", "crash_a", 0.05),
                                reconciliation_row()),
        "baseline": ScenarioRuns(sim_result("paper", "baseline", 0.0), sim_result("backtest", "baseline", 0.0)),
    }  # fmt: skip
    html = render_report(
        certification, partition="2026-12-06", generated_at="2026-12-06T12:00:00+00:00",
        history=History(7, 3, False, 100, "git v1-2-gabc", "f" * 64), verdicts=verdicts, runs=runs,
        divergence={"baseline": divergence_table(1000, 800, 0.2).assign(floor=1000.0, passed=False)},
        initial_capital=100_000,
    )  # fmt: skip
    path = tmp_path_factory.mktemp("report") / "certification.html"
    path.write_text(html)
    return path


def test_report_puts_the_verdict_and_gates_first(report_file):
    html = report_file.read_text()
    assert "<title>Certification 2026-12-06: NO-GO</title>" in html
    order = [html.index(marker) for marker in ('id="verdict"', 'id="gates"', 'id="readiness"', 'id="scenarios"',
                                                'id="scenario-crash-a"', 'id="divergence"')]  # fmt: skip
    assert order == sorted(order)
    assert "stress_scenarios_passed_pct" in html and "max drawdown 6.58% &gt; 5%" in html
    assert "core suite streak 3 of 100" in html and "git v1-2-gabc" in html


def test_report_escapes_what_it_shows_and_loads_nothing(report_file):
    html = report_file.read_text()
    assert "crash_<b>lite</b>" not in html and "crash_&lt;b&gt;lite&lt;/b&gt;" in html
    assert "http://" not in html and "https://" not in html and "<script" not in html and "<link" not in html
    assert html.count('src="data:image/png;base64,') == 3  # two scenarios with runs, one baseline comparison


def test_report_counts_only_events_inside_the_window(report_file):
    html = report_file.read_text()
    row = html[html.index('<a href="#scenario-crash-a">') :].split("</tr>")[0]
    cells = [c.split(">")[-1] for c in row.split("</td>")]
    # alerting events 1 (ESS), breakers 2 (ESS + risk block), ESS 1, recovery from its reconciliation
    assert cells[4:8] == ["1", "2", "1", "5.0 s mean over 2 outage(s)"]
    assert '{"outside": true}' not in html


def test_explanation_names_the_direction_and_the_bias(report_file):
    html = report_file.read_text()
    assert "PnL gap (paper - backtest): -200, of which:" in html
    assert "fees: -5 (paper paid 30, the backtest 25)" in html
    assert "slippage (spread and market impact): -10 (paper 20, the backtest&#39;s fixed slippage 10)" in html
    assert "execution timing, partial and rejected fills, risk blocks (the rest): -185" in html
    assert "total_pnl: paper 800 vs backtest 1,000 (lower in paper), divergence 20.0%" in html
    assert "Optimistic bias check: paper beat the backtest in 0 of 1 scenarios" in html


# ------------------------------------------------------------------------------------- headless Chromium


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class DevTools:
    """A minimal DevTools protocol client over the browser's page websocket."""

    def __init__(self, url: str):
        from websockets.sync.client import connect

        self.ws = connect(url, max_size=None, open_timeout=10)
        self.next_id = 0
        self.events: list[dict] = []

    def call(self, method: str, **params) -> dict:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv(timeout=30))
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]
            self.events.append(message)

    def wait_for(self, method: str, timeout: float = 30) -> dict:
        deadline = time.monotonic() + timeout
        for event in self.events:
            if event.get("method") == method:
                return event
        while time.monotonic() < deadline:
            message = json.loads(self.ws.recv(timeout=deadline - time.monotonic()))
            self.events.append(message)
            if message.get("method") == method:
                return message
        raise TimeoutError(method)


@pytest.fixture
def chromium():
    binary = shutil.which("chromium")
    if binary is None:
        pytest.fail("Debian's chromium is not installed (apt-get install chromium)")
    closed = _free_port()  # nothing listens here: any proxied request fails
    port = _free_port()
    profile = tempfile.mkdtemp(prefix="report-chromium-")
    process = subprocess.Popen(
        [binary, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", f"--user-data-dir={profile}",
         f"--remote-debugging-port={port}", f"--proxy-server=127.0.0.1:{closed}",
         "--host-resolver-rules=MAP * ~NOTFOUND", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        import urllib.request

        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=2) as response:
                    pages = [p for p in json.load(response) if p["type"] == "page"]
                if pages:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("chromium did not open its DevTools port")
            time.sleep(0.2)
        tools = DevTools(pages[0]["webSocketDebuggerUrl"])
        yield tools
        tools.ws.close()
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        shutil.rmtree(profile, ignore_errors=True)


def _evaluate(tools: DevTools, expression: str):
    result = tools.call("Runtime.evaluate", expression=expression, returnByValue=True)
    return result["result"].get("value")


def test_report_renders_in_chromium_with_its_plots_and_no_network(report_file, chromium):
    chromium.call("Network.enable")
    chromium.call("Page.enable")
    chromium.call("Page.navigate", url=report_file.as_uri())
    chromium.wait_for("Page.loadEventFired")
    assert _evaluate(chromium, "document.getElementById('verdict').textContent") == "NO-GO"
    assert _evaluate(chromium, "document.querySelectorAll('#gates tr').length") == 14  # header + 13 gates
    images = _evaluate(chromium, "[...document.images].map(i => [i.complete, i.naturalWidth, i.naturalHeight])")
    assert len(images) == 3 and all(done and w > 300 and h > 100 for done, w, h in images)
    requests = [
        e["params"]["request"]["url"] for e in chromium.events if e.get("method") == "Network.requestWillBeSent"
    ]
    assert requests and requests[0] == report_file.as_uri()
    assert all(url == report_file.as_uri() or url.startswith("data:image/png;base64,") for url in requests), requests
    failed = [e for e in chromium.events if e.get("method") == "Network.loadingFailed"]
    assert failed == []


def test_the_browser_test_catches_a_network_request(tmp_path, chromium):
    """The same check on a page that asks for a remote image: the request is seen and it fails."""
    page = tmp_path / "leaky.html"
    page.write_text('<!DOCTYPE html><html><body><img src="http://example.com/x.png"></body></html>')
    chromium.call("Network.enable")
    chromium.call("Page.enable")
    chromium.call("Page.navigate", url=page.as_uri())
    chromium.wait_for("Page.loadEventFired")
    requests = [
        e["params"]["request"]["url"] for e in chromium.events if e.get("method") == "Network.requestWillBeSent"
    ]
    assert "http://example.com/x.png" in requests
    assert _evaluate(chromium, "document.images[0].naturalWidth") == 0
