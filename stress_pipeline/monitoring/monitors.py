"""Monitors: each failure mode of the checklist detected from what a live system sees.

A monitor reads the :class:`Observation` of a trading system — its event log (orders, rejects,
fills, cancels, ESS transitions, execution failures, in the columns of
:data:`stress_pipeline.simulation.events.EVENT_COLUMNS`), its equity marks, the market marks it
receives, its health probes, the strategy webhooks it received and the switches of its live state —
and nothing else: never what a drill knows it injected. Each returns its detections in
:data:`DETECTION_COLUMNS`, one row per onset (a failure that starts, not every sample of it), with
the time of the first evidence and the time the rule could first conclude (``detected_at``), so
detection delay is measurable. All rules work on whole columns (pandas/numpy), no per-row Python.

=========================  =================================================================================
failure mode               rule (thresholds in :class:`MonitorConfig`)
=========================  =================================================================================
api_down                   ``api_down_failures`` consecutive failed exchange observations (probes of
                           ``exchange_api``, order rejects EXCHANGE_OUTAGE; a fill or a passing probe is a success)
webhook_lost               a strategy's webhook not received within its interval + ``webhook_tolerance``,
                           or received with status ``failed``
high_slippage              a fill worse than its expected price (the limit, else the last mark before the order)
                           by more than ``slippage_limit``
stuck_position             an exit order (against the position) not filled nor cancelled ``stuck_after_s`` after it
drawdown_exceeded          equity below its running peak by more than ``drawdown_limit``
correlation_spike          mean pairwise correlation of the symbols' returns over ``correlation_window`` marks
                           above ``correlation_limit`` and ``correlation_jump`` above its level over the last
                           ``correlation_baseline`` marks, while they fall together by more than
                           ``correlation_move`` (a cascade, not assets that always move together)
balance_anomaly            equity below its highest mark of the last ``balance_window_s`` by more than ``balance_drop``
order_placement_failed     an execution failure (the client gave up) or a reject that will not be retried
execution_timeout          a market or IOC order with no fill, reject or cancel within ``execution_timeout_s``
connectivity_lost          ``probe_failures`` consecutive failed ``network`` probes
redis_down                 ``probe_failures`` consecutive failed ``redis`` probes
postgres_down              ``probe_failures`` consecutive failed ``postgres`` probes
ess_tripped                an ESS transition to TRIPPED or HALTED
kill_switch_set            the ``kill_switch`` flag of the live state turning true
=========================  =================================================================================
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from stress_pipeline.monitoring.alerts import Alert, trigger
from stress_pipeline.simulation.events import EVENT_COLUMNS

FAILURE_MODES = (
    "api_down", "webhook_lost", "high_slippage", "stuck_position", "drawdown_exceeded", "correlation_spike",
    "balance_anomaly", "order_placement_failed", "execution_timeout", "connectivity_lost", "redis_down",
    "postgres_down", "ess_tripped", "kill_switch_set",
)  # fmt: skip
DETECTION_COLUMNS = ("failure_mode", "subject", "evidence_at", "detected_at", "severity", "summary", "value")
SEVERITY = {
    "api_down": "critical", "webhook_lost": "error", "high_slippage": "warning", "stuck_position": "error",
    "drawdown_exceeded": "critical", "correlation_spike": "warning", "balance_anomaly": "critical",
    "order_placement_failed": "error", "execution_timeout": "error", "connectivity_lost": "critical",
    "redis_down": "critical", "postgres_down": "critical", "ess_tripped": "critical", "kill_switch_set": "critical",
}  # fmt: skip
PROBE_COLUMNS = ("ts", "target", "ok", "latency_ms", "error")
EQUITY_COLUMNS = ("ts", "equity")
MARK_COLUMNS = ("ts", "symbol", "price")
WEBHOOK_COLUMNS = ("ts", "strategy", "status")
FLAG_COLUMNS = ("ts", "name", "value")
WEBHOOK_STATUSES = ("received", "processed", "failed")


@dataclass(frozen=True)
class MonitorConfig:
    """Thresholds, from the seeds' pass criteria where they give one."""

    api_down_failures: int = 3
    probe_failures: int = 2
    webhook_intervals_s: Mapping[str, float] = field(default_factory=dict)  # strategy -> expected interval
    webhook_tolerance: float = 0.10
    slippage_limit: float = 0.005
    stuck_after_s: float = 300.0
    drawdown_limit: float = 0.15
    correlation_window: int = 20
    correlation_baseline: int = 200  # marks of the usual level the spike is measured against
    correlation_limit: float = 0.9
    correlation_jump: float = 0.2
    correlation_move: float = 0.02  # the joint fall over the window that makes co-movement a cascade
    balance_drop: float = 0.10
    balance_window_s: float = 3600.0
    execution_timeout_s: float = 15.0

    def __post_init__(self) -> None:
        for name in ("api_down_failures", "probe_failures", "correlation_window"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"MonitorConfig.{name}: expected >= 1, got {getattr(self, name)!r}")
        if self.correlation_baseline <= self.correlation_window:
            raise ValueError(f"MonitorConfig.correlation_baseline: expected more marks than correlation_window "
                             f"({self.correlation_window}), got {self.correlation_baseline!r}")  # fmt: skip
        for name in ("slippage_limit", "drawdown_limit", "balance_drop", "correlation_limit", "correlation_jump",
                     "correlation_move", "webhook_tolerance"):  # fmt: skip
            if not 0 < getattr(self, name) <= 1:
                raise ValueError(f"MonitorConfig.{name}: expected a fraction in (0, 1], got {getattr(self, name)!r}")
        for name in ("stuck_after_s", "balance_window_s", "execution_timeout_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"MonitorConfig.{name}: expected seconds > 0, got {getattr(self, name)!r}")
        for strategy, interval in self.webhook_intervals_s.items():
            if not interval > 0:
                raise ValueError(f"MonitorConfig.webhook_intervals_s[{strategy!r}]: expected > 0, got {interval!r}")


@dataclass(frozen=True)
class Observation:
    """What the system under watch exposed up to ``as_of`` (tables may be empty, never None)."""

    as_of: pd.Timestamp
    events: pd.DataFrame
    equity: pd.DataFrame
    marks: pd.DataFrame
    probes: pd.DataFrame
    webhooks: pd.DataFrame
    flags: pd.DataFrame

    def __post_init__(self) -> None:
        for name, columns in _TABLES.items():
            table = getattr(self, name)
            missing = [c for c in columns if c not in table.columns]
            if missing:
                raise ValueError(f"Observation.{name}: missing column(s) {', '.join(missing)}")
            if len(table) and not isinstance(table["ts"].dtype, pd.DatetimeTZDtype):
                raise ValueError(f"Observation.{name}.ts: expected UTC timestamps, got {table['ts'].dtype}")
            if len(table) and table["ts"].isna().any():
                row = int(np.flatnonzero(table["ts"].isna().to_numpy())[0])
                raise ValueError(f"Observation.{name}.ts: missing timestamp in row {row}")
            if len(table):  # one resolution, so tables join on time
                object.__setattr__(self, name, table.assign(ts=table["ts"].dt.as_unit("ns")))
        bad = ~self.webhooks["status"].isin(WEBHOOK_STATUSES)
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise ValueError(f"Observation.webhooks.status: {self.webhooks['status'].iloc[row]!r} in row {row} "
                             f"is not one of {', '.join(WEBHOOK_STATUSES)}")  # fmt: skip


def empty_table(columns: tuple[str, ...]) -> pd.DataFrame:
    """A table with ``columns`` and no rows (``ts`` typed as UTC timestamps)."""
    table = pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
    if "ts" in columns:
        table["ts"] = pd.Series(dtype="datetime64[ns, UTC]")
    return table


def run_monitors(
    observation: Observation, config: MonitorConfig | None = None,
    monitors: Mapping[str, Callable[[Observation, MonitorConfig], pd.DataFrame]] | None = None,
) -> pd.DataFrame:  # fmt: skip
    """``monitors`` (default: every one of :data:`MONITORS`) on ``observation``: all detections,
    ordered by detection time."""
    config = config or MonitorConfig()
    chosen = MONITORS if monitors is None else monitors
    frames = [frame for frame in (monitor(observation, config) for monitor in chosen.values()) if len(frame)]
    if not frames:
        return _detections("", [], [], [], [], [])
    out = pd.concat(frames, ignore_index=True)
    return out.sort_values(["detected_at", "failure_mode"], kind="stable").reset_index(drop=True)


def alerts_for(detections: pd.DataFrame, *, source: str, subject_prefix: str = "") -> list[Alert]:
    """One PagerDuty trigger per detection; the dedup key is the failure mode and ``prefix/subject``."""
    alerts = []
    for row in detections.itertuples(index=False):  # one alert object each: not a hot path
        subject = f"{subject_prefix}/{row.subject}" if subject_prefix else str(row.subject)
        details = {"evidence_at": row.evidence_at.isoformat(), "detected_at": row.detected_at.isoformat(),
                   "value": None if pd.isna(row.value) else float(row.value)}  # fmt: skip
        moment = row.detected_at.floor("us").to_pydatetime()
        alerts.append(trigger(row.failure_mode, subject, row.summary, severity=row.severity, source=source,
                              timestamp=moment, custom_details=details))  # fmt: skip
    return alerts


# ---------------------------------------------------------------------------------------- monitors


def api_down(obs: Observation, config: MonitorConfig) -> pd.DataFrame:
    probes = obs.probes.loc[obs.probes["target"] == "exchange_api", ["ts", "ok"]]
    events = obs.events
    outage = events.loc[(events["kind"] == "reject") & (events["reason"] == "EXCHANGE_OUTAGE"), ["ts"]]
    answered = events.loc[events["kind"] == "fill", ["ts"]]
    seen = pd.concat([probes, outage.assign(ok=False), answered.assign(ok=True)], ignore_index=True)
    seen["subject"] = "exchange_api"
    return _failure_runs("api_down", seen, config.api_down_failures, "exchange API unreachable: {n} failed calls")


def _probe_monitor(mode: str, target: str) -> Callable[[Observation, MonitorConfig], pd.DataFrame]:
    def monitor(obs: Observation, config: MonitorConfig) -> pd.DataFrame:
        probes = obs.probes.loc[obs.probes["target"] == target, ["ts", "ok"]].assign(subject=target)
        return _failure_runs(mode, probes, config.probe_failures, f"{target} down: {{n}} failed health probes")

    monitor.__name__ = mode
    return monitor


def webhook_lost(obs: Observation, config: MonitorConfig) -> pd.DataFrame:
    hooks = obs.webhooks.sort_values("ts", kind="stable")
    failed = hooks[hooks["status"] == "failed"]
    out = [_detections("webhook_lost", failed["strategy"], failed["ts"], failed["ts"],
                       "webhook received but failed to process", np.nan)]  # fmt: skip
    received = hooks  # a webhook that arrived but failed is alerted above, not also as a gap
    intervals = pd.Series(config.webhook_intervals_s, dtype=float)
    received = received[received["strategy"].isin(intervals.index)]
    if len(received):
        interval_s = received["strategy"].map(intervals).to_numpy()
        following = received.groupby("strategy", sort=False)["ts"].shift(-1).fillna(obs.as_of)
        due = received["ts"] + pd.to_timedelta(interval_s, unit="s")
        deadline = received["ts"] + pd.to_timedelta(interval_s * (1 + config.webhook_tolerance), unit="s")
        late = (following > deadline).to_numpy() & (deadline <= obs.as_of).to_numpy()
        gap = (following - received["ts"]).dt.total_seconds().to_numpy()
        out.append(_detections("webhook_lost", received["strategy"][late], due[late], deadline[late],
                               "expected webhook not received", gap[late]))  # fmt: skip
    return _concat(out)


def high_slippage(obs: Observation, config: MonitorConfig) -> pd.DataFrame:
    events = obs.events
    orders = events.loc[events["kind"] == "order", ["ts", "symbol", "order_id", "price"]]
    fills = events.loc[events["kind"] == "fill", ["ts", "symbol", "order_id", "qty", "price"]]
    if not len(fills):
        return _detections("high_slippage", [], [], [], "", [])
    orders = orders.rename(columns={"ts": "order_ts", "price": "limit"}).drop_duplicates("order_id", keep="last")
    joined = fills.merge(orders[["order_id", "order_ts", "limit"]], on="order_id", how="left")
    joined["order_ts"] = joined["order_ts"].fillna(joined["ts"])
    expected = joined["limit"].to_numpy(dtype=float)
    if np.isnan(expected).any() and len(obs.marks):
        marks = obs.marks.sort_values("ts", kind="stable").rename(columns={"ts": "order_ts", "price": "mark"})
        probe = joined[["order_ts", "symbol"]].reset_index().sort_values("order_ts", kind="stable")
        asof = pd.merge_asof(probe, marks[["order_ts", "symbol", "mark"]], on="order_ts", by="symbol")
        mark = asof.set_index("index")["mark"].reindex(joined.index).to_numpy(dtype=float)
        expected = np.where(np.isnan(expected), mark, expected)
    price = joined["price"].to_numpy(dtype=float)
    adverse = np.sign(joined["qty"].to_numpy(dtype=float)) * (price - expected) / expected
    hit = np.nan_to_num(adverse, nan=0.0) > config.slippage_limit
    summaries = [f"slippage {x:.2%} on a fill" for x in adverse[hit]]
    return _detections("high_slippage", joined["symbol"][hit], joined["ts"][hit], joined["ts"][hit], summaries,
                       adverse[hit])  # fmt: skip


def stuck_position(obs: Observation, config: MonitorConfig) -> pd.DataFrame:
    events = obs.events
    orders = events.loc[events["kind"] == "order", ["ts", "symbol", "order_id", "qty"]].sort_values("ts")
    fills = events.loc[events["kind"] == "fill", ["ts", "symbol", "order_id", "qty"]].sort_values("ts")
    if not len(orders):
        return _detections("stuck_position", [], [], [], "", [])
    held = fills.assign(position=fills.groupby("symbol")["qty"].cumsum())[["ts", "symbol", "position"]]
    before = pd.merge_asof(orders, held, on="ts", by="symbol", allow_exact_matches=False)
    position = before["position"].fillna(0.0).to_numpy()
    exits = (position != 0) & (np.sign(before["qty"].to_numpy(dtype=float)) == -np.sign(position))
    deadline = before["ts"] + pd.to_timedelta(config.stuck_after_s, unit="s")
    open_at = _open_at_deadline(events, before["order_id"], before["qty"], deadline)
    stuck = exits & open_at & (deadline <= obs.as_of).to_numpy()
    return _detections("stuck_position", before["symbol"][stuck], before["ts"][stuck], deadline[stuck],
                       f"exit order unfilled after {config.stuck_after_s:.0f} s: position stuck",
                       position[stuck])  # fmt: skip


def execution_timeout(obs: Observation, config: MonitorConfig) -> pd.DataFrame:
    events = obs.events
    orders = events.loc[events["kind"] == "order", ["ts", "symbol", "order_id", "qty", "price", "details"]]
    immediate = orders["price"].isna() | orders["details"].str.contains('"tif": "IOC"', regex=False)
    orders = orders[immediate.to_numpy()]
    deadline = orders["ts"] + pd.to_timedelta(config.execution_timeout_s, unit="s")
    answered = events[events["kind"].isin(("fill", "reject", "cancel", "execution_failure"))]
    answer = answered.groupby("order_id", as_index=False)["ts"].min().rename(columns={"ts": "first"})
    first = orders[["order_id"]].merge(answer, on="order_id", how="left")["first"].set_axis(orders.index)
    late = (first.isna() | (first > deadline)).to_numpy() & (deadline <= obs.as_of).to_numpy()
    return _detections("execution_timeout", orders["symbol"][late], orders["ts"][late], deadline[late],
                       f"no execution report within {config.execution_timeout_s:.0f} s", np.nan)  # fmt: skip


def order_placement_failed(obs: Observation, config: MonitorConfig) -> pd.DataFrame:
    events = obs.events
    final_reject = (events["kind"] == "reject") & events["details"].str.contains('"will_retry": false', regex=False)
    failed = events[(events["kind"] == "execution_failure") | final_reject]
    summaries = ("order placement failed: " + failed["reason"].astype(str)).tolist()
    return _detections("order_placement_failed", failed["symbol"], failed["ts"], failed["ts"], summaries,
                       failed["qty"].to_numpy(dtype=float))  # fmt: skip


def drawdown_exceeded(obs: Observation, config: MonitorConfig) -> pd.DataFrame:
    equity = obs.equity.sort_values("ts", kind="stable")
    values = equity["equity"].to_numpy(dtype=float)
    drawdown = 1.0 - values / np.maximum.accumulate(values) if len(values) else values
    return _onsets("drawdown_exceeded", equity["ts"], drawdown > config.drawdown_limit, drawdown,
                   "portfolio drawdown {v:.1%} exceeds the limit")  # fmt: skip


def balance_anomaly(obs: Observation, config: MonitorConfig) -> pd.DataFrame:
    equity = obs.equity.sort_values("ts", kind="stable")
    series = pd.Series(equity["equity"].to_numpy(dtype=float), index=pd.DatetimeIndex(equity["ts"]))
    window = f"{int(config.balance_window_s * 1000)}ms"
    drop = (1.0 - series / series.rolling(window).max()).to_numpy()
    return _onsets("balance_anomaly", equity["ts"], drop > config.balance_drop, drop,
                   "balance dropped {v:.1%} within the window")  # fmt: skip


def correlation_spike(obs: Observation, config: MonitorConfig) -> pd.DataFrame:
    marks = obs.marks.pivot_table(index="ts", columns="symbol", values="price", aggfunc="last").sort_index()
    n, w, baseline = marks.shape[1], config.correlation_window, config.correlation_baseline
    if n < 2 or len(marks) <= baseline + w:
        return _detections("correlation_spike", [], [], [], "", [])
    returns = np.diff(np.log(marks.ffill().to_numpy(dtype=float)), axis=0)
    # At each mark from baseline + w on: the last w returns against the baseline returns before them.
    recent = _mean_correlation(returns, w)[baseline:]
    usual = _mean_correlation(returns, baseline)[: len(recent)]
    cumulative = np.concatenate([np.zeros((1, n)), np.cumsum(returns, axis=0)])
    move = (cumulative[w:] - cumulative[:-w]).mean(axis=1)[baseline:]  # the symbols' joint move (log)
    spike = ((recent > config.correlation_limit) & (recent - usual > config.correlation_jump)
             & (move < -config.correlation_move))  # fmt: skip
    return _onsets("correlation_spike", pd.Series(marks.index[baseline + w :]), spike, recent,
                   "mean pairwise correlation {v:.2f} across symbols, far above its usual level")  # fmt: skip


def _mean_correlation(returns: np.ndarray, window: int) -> np.ndarray:
    """Mean pairwise correlation of the columns of ``returns`` over each sliding ``window`` of rows."""
    n = returns.shape[1]
    windows = np.lib.stride_tricks.sliding_window_view(returns, window, axis=0)  # (T - window + 1, n, window)
    centred = windows - windows.mean(axis=2, keepdims=True)
    scale = np.sqrt((centred**2).sum(axis=2))
    with np.errstate(invalid="ignore", divide="ignore"):
        unit = centred / scale[..., None]
        corr = np.einsum("tiw,tjw->tij", unit, unit)
    return (np.nansum(corr, axis=(1, 2)) - n) / (n * (n - 1))


def ess_tripped(obs: Observation, config: MonitorConfig) -> pd.DataFrame:
    events = obs.events
    tripped = events[(events["kind"] == "ess_transition")
                     & events["details"].str.contains(r'"to": "(?:TRIPPED|HALTED)"', regex=True)]  # fmt: skip
    return _detections("ess_tripped", "ess", tripped["ts"], tripped["ts"], "emergency stop switch tripped: "
                       + tripped["reason"].astype(str), np.nan)  # fmt: skip


def kill_switch_set(obs: Observation, config: MonitorConfig) -> pd.DataFrame:
    flags = obs.flags[obs.flags["name"] == "kill_switch"].sort_values("ts", kind="stable")
    value = flags["value"].astype(bool).to_numpy()
    return _onsets("kill_switch_set", flags["ts"], value, value.astype(float), "kill switch set")


MONITORS: dict[str, Callable[[Observation, MonitorConfig], pd.DataFrame]] = {
    "api_down": api_down, "webhook_lost": webhook_lost, "high_slippage": high_slippage,
    "stuck_position": stuck_position, "drawdown_exceeded": drawdown_exceeded, "correlation_spike": correlation_spike,
    "balance_anomaly": balance_anomaly, "order_placement_failed": order_placement_failed,
    "execution_timeout": execution_timeout, "connectivity_lost": _probe_monitor("connectivity_lost", "network"),
    "redis_down": _probe_monitor("redis_down", "redis"), "postgres_down": _probe_monitor("postgres_down", "postgres"),
    "ess_tripped": ess_tripped, "kill_switch_set": kill_switch_set,
}  # fmt: skip
assert tuple(MONITORS) == FAILURE_MODES


# ----------------------------------------------------------------------------------------- helpers


def _failure_runs(mode: str, seen: pd.DataFrame, needed: int, summary: str) -> pd.DataFrame:
    """Onsets of ``needed`` consecutive failures per subject in ``seen`` (ts, ok, subject)."""
    seen = seen.sort_values(["subject", "ts"], kind="stable").reset_index(drop=True)
    ok = seen["ok"].astype(bool).to_numpy()
    subject = seen["subject"].to_numpy()
    new_run = np.ones(len(seen), dtype=bool)
    new_run[1:] = (ok[1:] != ok[:-1]) | (subject[1:] != subject[:-1])
    run = np.cumsum(new_run)
    position = seen.groupby(run).cumcount().to_numpy()
    hit = ~ok & (position == needed - 1)
    starts = seen["ts"].groupby(run).transform("first")
    return _detections(mode, seen["subject"][hit], starts[hit], seen["ts"][hit], summary.format(n=needed),
                       float(needed))  # fmt: skip


def _onsets(mode: str, ts: pd.Series, condition: np.ndarray, value: np.ndarray, summary: str) -> pd.DataFrame:
    """Rows where ``condition`` turns true (subject ``portfolio`` unless the mode names its own)."""
    condition = np.asarray(condition, dtype=bool)
    rising = condition & ~np.concatenate([[False], condition[:-1]])
    values = np.asarray(value, dtype=float)[rising]
    summaries = [summary.format(v=v) for v in values]
    subject = "kill_switch" if mode == "kill_switch_set" else "portfolio"
    stamps = ts.to_numpy()[rising]
    return _detections(mode, subject, stamps, stamps, summaries, values)


def _open_at_deadline(events: pd.DataFrame, order_id: pd.Series, qty: pd.Series, deadline: pd.Series) -> np.ndarray:
    """Whether each order is neither fully filled nor cancelled at its deadline."""
    frame = pd.DataFrame({"order_id": order_id.to_numpy(), "deadline": deadline.to_numpy()})
    done = events[events["kind"].isin(("fill", "cancel"))][["order_id", "kind", "ts", "qty"]]
    done = done.merge(frame, on="order_id")
    done = done[done["ts"] <= done["deadline"]]
    filled = done[done["kind"] == "fill"].groupby("order_id")["qty"].sum()
    cancelled = set(done.loc[done["kind"] == "cancel", "order_id"])
    got = order_id.map(filled).fillna(0.0).to_numpy(dtype=float)
    complete = np.abs(got) >= np.abs(qty.to_numpy(dtype=float)) * (1 - 1e-9)
    return ~complete & ~order_id.isin(cancelled).to_numpy()


def _detections(mode, subject, evidence_at, detected_at, summary, value) -> pd.DataFrame:
    detected = _utc(detected_at)
    n = len(detected)
    frame = pd.DataFrame({
        "failure_mode": pd.Series([mode] * n, dtype=object),
        "subject": _column(subject, n),
        "evidence_at": _utc(evidence_at),
        "detected_at": detected,
        "severity": SEVERITY.get(mode, "error"),
        "summary": _column(summary, n),
        "value": np.broadcast_to(np.asarray(value, dtype=float), (n,)) if n else np.zeros(0),
    })  # fmt: skip
    return frame.astype({"subject": str, "summary": str})


def _utc(values) -> pd.DatetimeIndex:
    values = values.to_numpy() if isinstance(values, pd.Series) else values
    return pd.DatetimeIndex(pd.to_datetime(values, utc=True))


def _column(values, n: int) -> np.ndarray:
    if isinstance(values, str):
        return np.array([values] * n, dtype=object)
    if isinstance(values, pd.Series | pd.Index):
        return values.to_numpy()
    return np.asarray(values)


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    return pd.concat(frames, ignore_index=True)


def details_json(detections: pd.DataFrame) -> list[dict[str, object]]:
    """The detections as JSON-able rows (for metadata)."""
    return json.loads(detections.to_json(orient="records", date_format="iso"))


_TABLES = {
    "events": EVENT_COLUMNS, "equity": EQUITY_COLUMNS, "marks": MARK_COLUMNS, "probes": PROBE_COLUMNS,
    "webhooks": WEBHOOK_COLUMNS, "flags": FLAG_COLUMNS,
}  # fmt: skip
