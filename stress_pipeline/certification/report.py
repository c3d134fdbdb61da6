"""The certification report: one self-contained HTML file a person can send.

Verdict and gates first, then the readiness checklist, the scenario table (pass/fail, alerting
events, circuit breakers, recovery), one drill-down per scenario (equity and drawdown of backtest
and paper around the stress window, the failed criteria, the event log of the window) and the
divergence report of the unstressed baseline (metrics, equity comparison, the explanation).

Rendered with Jinja2 from ``templates/``; plots are PNGs inlined as ``data:`` URIs and the styles are
in the page, so the file loads nothing from anywhere: no script, no font, no stylesheet, no image
from a network or from disk.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import jinja2
import numpy as np
import pandas as pd

from stress_pipeline.certification.decide import Certification
from stress_pipeline.plots import downsample, stacked_plot_png
from stress_pipeline.scenarios.catalog import BASELINE_KEY
from stress_pipeline.simulation.divergence import bias_check
from stress_pipeline.simulation.result import SimResult
from stress_pipeline.verdicts.table import EXERCISED, scenario_outcomes, validate_verdict_table

TEMPLATES_DIR = Path(__file__).with_name("templates")
TEMPLATE = "report.html.j2"
#: Event kinds counted in the scenario table.
ALERTING_KINDS = ("ess_transition", "execution_failure")
BREAKER_KINDS = ("ess_transition", "risk_block", "stop_loss")
RECOVERY_CRITERIA = ("max_recovery_s", "time_to_recover_s", "recovery_s")
MAX_EVENT_ROWS = 200
_MARGIN = 0.25  # share of the window's length shown on each side of it


@dataclass(frozen=True)
class ScenarioRuns:
    """What the pipeline stored for one scenario (any part may be missing)."""

    paper: SimResult | None = None
    backtest: SimResult | None = None
    reconciliation: pd.DataFrame | None = None


@dataclass(frozen=True)
class History:
    """The certification's place in the history (None fields when it was not recorded)."""

    certification_id: int | None
    streak: int
    certified: bool
    required: int
    code_version: str
    data_fingerprint: str


def render_report(
    certification: Certification, *, partition: str, generated_at: str, history: History | None,
    verdicts: pd.DataFrame | None, runs: Mapping[str, ScenarioRuns], divergence: Mapping[str, pd.DataFrame],
    initial_capital: float,
) -> str:  # fmt: skip
    """The report as one HTML document."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR), autoescape=True, undefined=jinja2.StrictUndefined
    )
    env.filters["num"] = _num
    verdict_table = None if verdicts is None else validate_verdict_table(verdicts)
    scenarios = _scenarios(verdict_table, runs)
    return env.get_template(TEMPLATE).render(
        partition=partition, generated_at=generated_at, certification=certification, history=history,
        gates=[gate.row() for gate in certification.gates], readiness=certification.readiness.to_dict("records"),
        scenarios=scenarios, verdicts_missing=verdict_table is None,
        divergence=_divergence(divergence, runs.get(BASELINE_KEY), initial_capital),
    )  # fmt: skip


def _scenarios(verdicts: pd.DataFrame | None, runs: Mapping[str, ScenarioRuns]) -> list[dict[str, object]]:
    keys = list(dict.fromkeys([*([] if verdicts is None else verdicts["scenario"]), *runs]))
    outcomes = pd.DataFrame() if verdicts is None else scenario_outcomes(verdicts).set_index("scenario")
    out = []
    for key in keys:
        rows = pd.DataFrame() if verdicts is None else verdicts[verdicts["scenario"] == key]
        run = runs.get(key, ScenarioRuns())
        window = _window(rows)
        events = _window_events(run.paper, window)
        counts = {} if events is None else events["kind"].value_counts().to_dict()
        recovery = _recovery(rows, run.reconciliation)
        criteria = rows[rows["criterion"] != EXERCISED] if len(rows) else rows
        out.append({
            "key": key, "anchor": "scenario-" + "".join(c if c.isalnum() else "-" for c in key),
            "outcome": outcomes.loc[key, "outcome"] if key in outcomes.index else "no verdict",
            "failed": outcomes.loc[key, "failed"] if key in outcomes.index else "",
            "type": rows["scenario_type"].iloc[0] if len(rows) else "",
            "severity": rows["severity"].iloc[0] if len(rows) else "",
            "window": "" if window is None else f"{window[0]:%Y-%m-%d %H:%M} to {window[1]:%Y-%m-%d %H:%M} UTC",
            "alerts": None if events is None else int(sum(counts.get(k, 0) for k in ALERTING_KINDS)),
            "breakers": None if events is None else int(sum(counts.get(k, 0) for k in BREAKER_KINDS)),
            "ess": None if events is None else int(counts.get("ess_transition", 0)),
            "recovery": recovery,
            "criteria": criteria.to_dict("records"),
            "exercised": rows.loc[rows["criterion"] == EXERCISED, "detail"].tolist() if len(rows) else [],
            "plot": _scenario_plot(key, run, window),
            "events": None if events is None else _event_rows(events),
            "events_total": 0 if events is None else len(events),
        })  # fmt: skip
    return out


def _window(rows: pd.DataFrame) -> tuple[pd.Timestamp, pd.Timestamp] | None:
    if rows.empty:
        return None
    starts, ends = rows["window_start"].dropna(), rows["window_end"].dropna()
    if starts.empty or ends.empty:
        return None
    return starts.min(), ends.max()


def _view(index: pd.DatetimeIndex, window: tuple[pd.Timestamp, pd.Timestamp] | None) -> np.ndarray:
    """Mask of the times around ``window`` (the window plus a margin on each side), all when no window."""
    if window is None:
        return np.ones(len(index), bool)
    margin = max((window[1] - window[0]) * _MARGIN, pd.Timedelta(hours=1))
    return np.asarray((index >= window[0] - margin) & (index <= window[1] + margin))


def _window_events(paper: SimResult | None, window) -> pd.DataFrame | None:
    if paper is None or paper.events is None:
        return None
    events = paper.events
    ts = pd.to_datetime(events["ts"].to_numpy(np.int64), utc=True)
    inside = np.ones(len(events), bool) if window is None else np.asarray((ts >= window[0]) & (ts <= window[1]))
    return events.loc[inside].assign(time=ts[inside])


def _event_rows(events: pd.DataFrame) -> list[dict[str, object]]:
    shown = events.head(MAX_EVENT_ROWS)
    return [
        {"time": f"{row.time:%Y-%m-%d %H:%M:%S}", "kind": row.kind, "symbol": row.symbol, "qty": row.qty,
         "price": row.price, "reason": row.reason, "details": row.details}
        for row in shown.itertuples(index=False)
    ]  # fmt: skip


def _recovery(rows: pd.DataFrame, reconciliation: pd.DataFrame | None) -> str:
    if len(rows):
        measured = rows[rows["criterion"].isin(RECOVERY_CRITERIA) & rows["value"].notna()]
        if len(measured):
            return f"{float(measured['value'].max()):,.1f} s ({measured['criterion'].iloc[0]})"
    if reconciliation is not None and "outages_recovered" in reconciliation.columns:
        n = int(reconciliation["outages_recovered"].sum())
        if n:
            mean = float(reconciliation["recovery_s_sum"].sum()) / n
            return f"{mean:,.1f} s mean over {n} outage(s)"
        return "no outage"
    return "not measured"


def _scenario_plot(key: str, run: ScenarioRuns, window) -> str | None:
    equity, drawdown = {}, {}
    for label, result in (("paper", run.paper), ("backtest", run.backtest)):
        if result is None or result.equity.empty:
            continue
        frame = result.equity
        frame = frame.loc[_view(pd.DatetimeIndex(frame.index), window)]
        if frame.empty:
            continue
        equity[label] = downsample(frame["equity"])
        drawdown[label] = downsample(-100.0 * frame["drawdown"])
    if not equity:
        return None
    title = f"{key}: equity and drawdown" + (" around the stress window" if window is not None else "")
    return _png_uri(stacked_plot_png([(equity, "equity"), (drawdown, "drawdown %")], title=title))


def _divergence(
    tables: Mapping[str, pd.DataFrame], baseline: ScenarioRuns | None, initial_capital: float
) -> dict[str, object]:
    table = tables.get(BASELINE_KEY)
    pairs = []
    for frame in tables.values():
        pnl = frame[frame["metric"] == "total_pnl"]
        if len(pnl):
            pairs.append((float(pnl["backtest"].iloc[0]), float(pnl["paper"].iloc[0])))
    bias = bias_check(pairs, initial_capital=initial_capital) if pairs else None
    plot = None
    if baseline is not None and baseline.paper is not None and baseline.backtest is not None:
        series = {"backtest": downsample(baseline.backtest.equity["equity"]),
                  "paper": downsample(baseline.paper.equity["equity"])}  # fmt: skip
        plot = _png_uri(stacked_plot_png([(series, "equity")], title=f"{BASELINE_KEY}: backtest vs paper equity"))
    columns = ("metric", "backtest", "paper", "divergence", "passed")
    rows = [] if table is None else [{c: record.get(c) for c in columns} for record in table.to_dict("records")]
    explanation = _explain(table, bias) + _cost_lines(baseline)
    return {"rows": rows, "plot": plot, "explanation": explanation, "missing": table is None}


def _cost_lines(baseline: ScenarioRuns | None) -> list[str]:
    """Where the PnL gap comes from (seed 002 US-003: slippage, fees, execution timing), from the two
    runs' metrics: fees, slippage (spread and impact in paper) and the rest (timing, fills, risk)."""
    if baseline is None or baseline.paper is None or baseline.backtest is None:
        return [f"No stored {BASELINE_KEY} simulations: the PnL gap cannot be broken down."]
    paper, backtest = baseline.paper.metrics, baseline.backtest.metrics
    try:
        values = {k: (float(paper[k]), float(backtest[k])) for k in ("total_pnl", "fees", "slippage_cost")}
    except (KeyError, TypeError, ValueError):
        return ["The stored simulations lack fees or slippage metrics: the PnL gap cannot be broken down."]
    (pnl_p, pnl_b), (fee_p, fee_b), (slip_p, slip_b) = values.values()
    gap = pnl_p - pnl_b
    rest = gap + (fee_p - fee_b) + (slip_p - slip_b)
    return [
        f"PnL gap (paper - backtest): {_num(gap)}, of which:",
        f"fees: {_num(-(fee_p - fee_b))} (paper paid {_num(fee_p)}, the backtest {_num(fee_b)})",
        f"slippage (spread and market impact): {_num(-(slip_p - slip_b))} (paper {_num(slip_p)}, "
        f"the backtest's fixed slippage {_num(slip_b)})",
        f"execution timing, partial and rejected fills, risk blocks (the rest): {_num(rest)}",
    ]


def _explain(table: pd.DataFrame | None, bias) -> list[str]:
    """Sentences saying where paper trading departs from the backtest and which way."""
    if table is None:
        return [f"divergence_report has no {BASELINE_KEY} partition: nothing to compare"]
    lines = []
    for row in table.sort_values("divergence", ascending=False).itertuples(index=False):
        direction = "higher" if row.paper > row.backtest else "lower" if row.paper < row.backtest else "equal"
        floor = getattr(row, "floor", None)
        basis = f" of max(|backtest|, floor {_num(floor)})" if floor is not None else ""
        lines.append(
            f"{row.metric}: paper {_num(row.paper)} vs backtest {_num(row.backtest)} ({direction} in paper), "
            f"divergence {100 * float(row.divergence):.1f}%{basis}"
        )
    if bias is not None:
        lines.append(f"Optimistic bias check: {bias.reason}; {'no bias' if bias.passed else 'paper is optimistic'}.")
    return lines


def _png_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _num(value: object) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    try:
        number = float(value)
    except (TypeError, ValueError):
        return html.escape(str(value))
    if np.isnan(number):
        return "–"
    if number == int(number) and abs(number) < 1e15:
        return f"{int(number):,}"
    return f"{number:,.4g}" if abs(number) < 1 else f"{number:,.2f}"
