"""Crafted event streams: a calm two hours of a live trading system, and the same with one failure.

Until a drill exists for a failure mode, the coverage report drives its monitor with one of these:
an :class:`~stress_pipeline.monitoring.monitors.Observation` as a live system would expose it
(health probes every 10 s, market and equity marks every 10 s, strategy webhooks every minute,
orders filled within seconds, the live state's switches polled every 10 s), with one failure
starting at a seeded moment in the second hour. The monitors see only the observation; the stream
also tells when the failure really began (``fault_at``: the first instant a perfect observer could
know), which is what detection time is measured from.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pandas as pd

from stress_pipeline.monitoring.monitors import FAILURE_MODES, MonitorConfig, Observation, empty_table
from stress_pipeline.simulation.events import EVENT_COLUMNS

START = pd.Timestamp("2026-01-05T00:00:00Z").as_unit("ns")
SPAN_S = 7200
STEP_S = 10
WEBHOOK_S = 60.0
SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
START_PRICES = (50_000.0, 3_000.0, 150.0)
STRATEGIES = ("trend", "breakout")
TARGETS = ("exchange_api", "network", "redis", "postgres")
INITIAL_EQUITY = 100_000.0
#: The longest a detection may take, from the failure's start, per failure mode (seed 002: alerts
#: within 30 s; API outage detected within 60 s; stuck exit detected within 5 minutes; a lost webhook
#: within its interval + 10%, i.e. 10% of the interval after it was due).
DETECTION_LIMITS_S = {mode: 30.0 for mode in FAILURE_MODES} | {
    "api_down": 60.0, "stuck_position": 300.0, "webhook_lost": 0.1 * WEBHOOK_S,
}  # fmt: skip


@dataclass(frozen=True)
class CraftedStream:
    """One crafted observation: its name, what it shows, when its failure began (None: calm)."""

    name: str
    failure_mode: str
    observation: Observation
    fault_at: pd.Timestamp | None


def monitor_config() -> MonitorConfig:
    """The thresholds the crafted streams are built around (the defaults, with the webhook schedule)."""
    return MonitorConfig(webhook_intervals_s=dict.fromkeys(STRATEGIES, WEBHOOK_S))


def calm_stream(seed: int = 0) -> CraftedStream:
    """Two hours in which nothing fails: every monitor must stay silent on it."""
    return CraftedStream("crafted:calm", "", _Builder(seed).observation(), None)


def crafted_stream(mode: str, seed: int = 0) -> CraftedStream:
    """The calm stream with failure ``mode`` starting at a seeded moment of the second hour."""
    if mode not in FAILURE_MODES:
        raise ValueError(f"failure mode {mode!r}: expected one of {', '.join(FAILURE_MODES)}")
    builder = _Builder(seed)
    t0 = START + pd.Timedelta(seconds=3600 + float(builder.rng.uniform(0, STEP_S)))
    fault_at = getattr(builder, f"_{mode}")(t0)
    return CraftedStream(f"crafted:{mode}", mode, builder.observation(), fault_at)


class _Builder:
    """The calm baseline, mutable until :meth:`observation`; one ``_<mode>`` method per failure."""

    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)
        self.times = (START + pd.to_timedelta(np.arange(0, SPAN_S + 1, STEP_S), unit="s")).as_unit("ns")
        n = len(self.times)
        steps = self.rng.normal(0, 5e-4, size=(n, len(SYMBOLS)))
        steps[0] = 0
        self.prices = np.asarray(START_PRICES) * np.exp(np.cumsum(steps, axis=0))
        self.fine = START + pd.to_timedelta(np.arange(0, SPAN_S + 1), unit="s")  # the equity's true path, 1 s
        self.equity_1s = INITIAL_EQUITY * np.exp(np.cumsum(self.rng.normal(0, 2e-5, len(self.fine))))
        phases = {t: float(self.rng.uniform(0, STEP_S)) for t in TARGETS}
        self.probes = pd.concat([pd.DataFrame({"ts": self.times + pd.Timedelta(seconds=p), "target": t, "ok": True,
                                               "latency_ms": self.rng.gamma(4, 5, n), "error": ""})
                                 for t, p in phases.items()], ignore_index=True)  # fmt: skip
        hooks = START + pd.to_timedelta(np.arange(WEBHOOK_S, SPAN_S, WEBHOOK_S), unit="s")
        self.webhooks = pd.concat([pd.DataFrame({"ts": hooks + pd.Timedelta(seconds=i * 7.0), "strategy": s,
                                                 "status": "received"}) for i, s in enumerate(STRATEGIES)],
                                  ignore_index=True)  # fmt: skip
        self.flags = pd.DataFrame({"ts": self.times + pd.Timedelta(seconds=3), "name": "kill_switch", "value": False})
        self.events: list[dict[str, object]] = []
        self.next_order = 1
        for i, at in enumerate(range(300, SPAN_S - 300, 300)):  # a round trip every 5 minutes
            s = i % len(SYMBOLS)
            when = START + pd.Timedelta(seconds=at + float(self.rng.uniform(0, 5)))
            qty = round(10_000 / self.mark(s, when), 6)
            self.limit_order(s, when, qty, fill_after_s=2.0)
            self.limit_order(s, when + pd.Timedelta(seconds=150), -qty, fill_after_s=2.0)

    # ------------------------------------------------------------------------------------ building

    def mark(self, s: int, when: pd.Timestamp) -> float:
        return float(self.prices[min(int((when - START).total_seconds() // STEP_S), len(self.prices) - 1), s])

    def order(self, s: int, when: pd.Timestamp, qty: float, limit: float, tif: str = "GTC") -> int:
        oid, self.next_order = self.next_order, self.next_order + 1
        kind = "market" if np.isnan(limit) else "limit"
        self._event(when, "order", s, oid, qty, limit, "REBALANCE",
                    {"attempt": 1, "latency_ms": 12.0, "tif": tif, "type": kind})  # fmt: skip
        return oid

    def fill(self, s: int, when: pd.Timestamp, oid: int, qty: float, price: float) -> None:
        self._event(when, "fill", s, oid, qty, price, "REBALANCE",
                    {"fee": abs(qty * price) * 1e-3, "fill_id": oid, "impact_cost": 0.0, "liquidity": "taker",
                     "spread_cost": 0.0})  # fmt: skip

    def limit_order(self, s: int, when: pd.Timestamp, qty: float, fill_after_s: float) -> int:
        price = self.mark(s, when)
        oid = self.order(s, when, qty, price)
        self.fill(s, when + pd.Timedelta(seconds=fill_after_s), oid, qty, price)
        return oid

    def _event(self, when, kind, s, oid, qty, price, reason, details) -> None:
        self.events.append({"ts": when, "kind": kind, "symbol": SYMBOLS[s] if s >= 0 else None, "order_id": oid,
                            "qty": qty, "price": price, "reason": reason,
                            "details": json.dumps(details, sort_keys=True)})  # fmt: skip

    def fail_probes(self, target: str, start: pd.Timestamp, seconds: float) -> pd.Timestamp:
        p = self.probes
        hit = (p["target"] == target) & (p["ts"] >= start) & (p["ts"] < start + pd.Timedelta(seconds=seconds))
        self.probes.loc[hit, ["ok", "error"]] = [False, f"{target}: connection refused"]
        return start

    def equity_path(self, start: pd.Timestamp, total_drop: float, seconds: float) -> None:
        """A linear decline of ``total_drop`` over ``seconds`` from ``start``, then flat."""
        elapsed = (self.fine - start).total_seconds().to_numpy()
        self.equity_1s = self.equity_1s * (1 - total_drop * np.clip(elapsed / seconds, 0, 1))

    def first_true_second(self, condition: np.ndarray) -> pd.Timestamp:
        return self.fine[int(np.flatnonzero(condition)[0])]

    def observation(self) -> Observation:
        events = pd.DataFrame(self.events).sort_values("ts", kind="stable").reset_index(drop=True)
        events.insert(0, "event_id", np.arange(len(events)))
        events["order_id"] = events["order_id"].astype("Int64")
        events = events[list(EVENT_COLUMNS)] if len(events) else empty_table(EVENT_COLUMNS)
        sampled = self.equity_1s[np.arange(0, SPAN_S + 1, STEP_S)]
        marks = pd.DataFrame({"ts": np.repeat(self.times, len(SYMBOLS)), "symbol": np.tile(SYMBOLS, len(self.times)),
                              "price": self.prices.reshape(-1)})  # fmt: skip
        return Observation(
            as_of=START + pd.Timedelta(seconds=SPAN_S), events=events,
            equity=pd.DataFrame({"ts": self.times, "equity": sampled}), marks=marks,
            probes=self.probes.sort_values("ts", kind="stable").reset_index(drop=True),
            webhooks=self.webhooks.sort_values("ts", kind="stable").reset_index(drop=True), flags=self.flags,
        )  # fmt: skip

    # ---------------------------------------------------------------------------------- failures

    def _api_down(self, t0: pd.Timestamp) -> pd.Timestamp:
        """Exchange API down for 15 minutes: probes fail, the order path's calls are refused."""
        end = t0 + pd.Timedelta(minutes=15)
        self.events = [e for e in self.events if not t0 <= e["ts"] < end]  # nothing fills while it is down
        oid = self.order(0, t0 + pd.Timedelta(seconds=4), 0.1, self.mark(0, t0))
        self._event(t0 + pd.Timedelta(seconds=4.2), "reject", 0, oid, 0.1, np.nan, "EXCHANGE_OUTAGE",
                    {"attempt": 1, "code": None, "retry_after_s": 60.0, "will_retry": True})  # fmt: skip
        return self.fail_probes("exchange_api", t0, 900)

    def _webhook_lost(self, t0: pd.Timestamp) -> pd.Timestamp:
        """Three webhooks of one strategy never arrive; the first was due at ``fault_at``."""
        hooks = self.webhooks
        mine = hooks.index[(hooks["strategy"] == "trend") & (hooks["ts"] >= t0)][:3]
        due = hooks.loc[mine[0], "ts"]
        self.webhooks = hooks.drop(index=mine)
        return due

    def _high_slippage(self, t0: pd.Timestamp) -> pd.Timestamp:
        """A market buy filled 1% above the mark it was sent at."""
        oid = self.order(0, t0, 0.2, np.nan, tif="IOC")
        filled = t0 + pd.Timedelta(seconds=0.4)
        self.fill(0, filled, oid, 0.2, self.mark(0, t0) * 1.01)
        return filled

    def _stuck_position(self, t0: pd.Timestamp) -> pd.Timestamp:
        """A position whose exit limit order sits unfilled on a thin book until the market fallback."""
        self.limit_order(1, t0 - pd.Timedelta(minutes=10), 3.0, fill_after_s=1.0)
        oid = self.order(1, t0, -3.0, self.mark(1, t0) * 1.002)
        self._event(t0 + pd.Timedelta(minutes=10), "cancel", 1, oid, -3.0, np.nan, "LIMIT_TIMEOUT", {})
        fallback = self.order(1, t0 + pd.Timedelta(minutes=10, seconds=1), -3.0, np.nan, tif="IOC")
        self.fill(1, t0 + pd.Timedelta(minutes=10, seconds=1.5), fallback, -3.0, self.mark(1, t0) * 0.99)
        return t0

    def _drawdown_exceeded(self, t0: pd.Timestamp) -> pd.Timestamp:
        """Equity slides 20% over half an hour: the drawdown crosses 15% on the way."""
        self.equity_path(t0, 0.20, 1800)
        peak = np.maximum.accumulate(self.equity_1s)
        return self.first_true_second(1 - self.equity_1s / peak > MonitorConfig().drawdown_limit)

    def _balance_anomaly(self, t0: pd.Timestamp) -> pd.Timestamp:
        """Equity loses 12% in 20 minutes (a drawdown still under the 15% limit)."""
        self.equity_path(t0, 0.12, 1200)
        series = pd.Series(self.equity_1s, index=self.fine)
        drop = 1 - series / series.rolling(f"{int(MonitorConfig().balance_window_s)}s").max()
        return self.first_true_second(drop.to_numpy() > MonitorConfig().balance_drop)

    def _correlation_spike(self, t0: pd.Timestamp) -> pd.Timestamp:
        """Every symbol falls together, 1% per 10 s for ten minutes."""
        first = int(self.times.searchsorted(t0))
        shocks = np.zeros_like(self.prices)
        shocks[first : first + 60] = -0.01
        self.prices = self.prices * np.exp(np.cumsum(shocks, axis=0))
        return t0

    def _order_placement_failed(self, t0: pd.Timestamp) -> pd.Timestamp:
        """An order refused three times by the rate limit (-1003); the client gives up."""
        oid = self.order(2, t0, 50.0, self.mark(2, t0))
        for attempt, at in enumerate((0.1, 1.1, 3.1), start=1):
            self._event(t0 + pd.Timedelta(seconds=at), "reject", 2, oid, 50.0, np.nan, "TOO_MANY_REQUESTS",
                        {"attempt": attempt, "code": -1003, "retry_after_s": 2.0 ** (attempt - 1),
                         "will_retry": attempt < 3})  # fmt: skip
        self._event(t0 + pd.Timedelta(seconds=3.2), "execution_failure", 2, oid, 50.0, np.nan,
                    "RATE_LIMIT_RETRIES_EXHAUSTED", {"attempts": 3, "last_code": -1003})  # fmt: skip
        return t0

    def _execution_timeout(self, t0: pd.Timestamp) -> pd.Timestamp:
        """A market order that never gets an execution report."""
        self.order(0, t0, 0.1, np.nan, tif="IOC")
        return t0

    def _connectivity_lost(self, t0: pd.Timestamp) -> pd.Timestamp:
        """The host is offline for 5 minutes: nothing outside it answers."""
        self.fail_probes("exchange_api", t0, 300)
        return self.fail_probes("network", t0, 300)

    def _redis_down(self, t0: pd.Timestamp) -> pd.Timestamp:
        return self.fail_probes("redis", t0, 120)

    def _postgres_down(self, t0: pd.Timestamp) -> pd.Timestamp:
        return self.fail_probes("postgres", t0, 120)

    def _ess_tripped(self, t0: pd.Timestamp) -> pd.Timestamp:
        """The emergency stop switch trips on an 11% drawdown."""
        self.equity_path(t0 - pd.Timedelta(minutes=5), 0.11, 300)
        self._event(t0, "ess_transition", -1, None, np.nan, np.nan, "DRAWDOWN_LIMIT",
                    {"drawdown": 0.11, "equity": INITIAL_EQUITY * 0.89, "from": "ARMED", "to": "TRIPPED"})  # fmt: skip
        return t0

    def _kill_switch_set(self, t0: pd.Timestamp) -> pd.Timestamp:
        """An operator sets the kill switch; the live state is polled every 10 s."""
        self.flags.loc[self.flags["ts"] >= t0, "value"] = True
        return t0
