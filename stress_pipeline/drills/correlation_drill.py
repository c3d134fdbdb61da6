"""Correlation spike drill (seed 002 test 2, "Correlation spike"): the market falls as one, through
the paper engine.

On the drills' synthetic bars the three symbols usually move together only in part (their 1-minute
returns correlate about 0.6 to 0.8, from their loadings on the common factor). The drill lays a
``correlation_cascade`` scenario on them with no lag (``SPIKE``: BTCUSDT -10% over five bars, ETHUSDT
and SOLUSDT 0.9 of it in the same minutes) and paper-trades a strategy long every symbol. The
``correlation_spike`` monitor reads the market marks the run received (each bar's close, stamped at
the bar's end) and nothing the drill knows: the symbols' mean pairwise correlation over its window
jumping far above its usual level while they fall together. Its detections are the drill's alerts.

Why a drill of its own: the correlation cascade drill (``paper_drills.py``) lays the shipped pack's
cascade, whose followers fall 2 and 4 bars after BTCUSDT; minute by minute the three then move
apart (their correlation falls from about 0.8 to below 0.3), which is the cascade's point, not a spike.

The drill trades the first 12 hours of the day (``HOURS``): ten calm hours, the fall, two hours
after, so every detection it stores is about its fall or a false alarm. (Later in the day the bars
have market-wide jumps of their own, seed 0 one at 18:05 with every symbol -3% to -4% in a minute,
which the monitor rightly reports; a drill that kept them could pass the coverage on a spike it did
not make.)

Criteria: the spike detected while the market is still falling (at most the fall's five bars after
it began; never detected counts as detected at the run's end); no spike alerted in the calm hours
before it (a false alarm); one alert for the one fall. No decider is involved (the market is the
failure), so a user's decider changes nothing here.
"""

from __future__ import annotations

import pandas as pd

from stress_pipeline.drills.core import DrillConfigError, DrillRecord, DrillResult, SimClock, alert_queue
from stress_pipeline.drills.observe import detect
from stress_pipeline.drills.paper_drills import BAR_S, SYMBOLS, PaperRun, Rebalancer, drill_bars, seconds
from stress_pipeline.drills.risk_drills import DrillEnv
from stress_pipeline.monitoring.monitors import MonitorConfig
from stress_pipeline.monitoring.observation import observation_from_run
from stress_pipeline.scenarios import apply_scenario
from stress_pipeline.scenarios.model import SCENARIO_ADAPTER
from stress_pipeline.simulation.config import SimConfig
from stress_pipeline.simulation.paper import run_paper
from stress_pipeline.trading.risk.policy import TradingPolicy

FALL_BARS = 5
HOURS = 12  # the drill's morning: ten calm hours, the fall, two hours after it
#: The market falling as one, ten hours into the drill's day: a cascade without lag.
SPIKE = {
    "name": "Drill correlation spike", "type": "correlation_cascade", "severity": "major", "symbols": list(SYMBOLS),
    "seed": 14, "window": {"offset_bars": 600},
    "parameters": {"drop_pct": 0.10, "correlation": 0.9, "lag_bars": [0, 0], "duration_bars": FALL_BARS,
                   "recovery_bars": 30},
}  # fmt: skip


def correlation_spike_drill(env: DrillEnv, *, lag_bars: tuple[int, int] = (0, 0), policy: TradingPolicy | None = None,
                            config: MonitorConfig | None = None) -> DrillResult:  # fmt: skip
    """The market falls as one (no lag unless ``lag_bars`` says): the correlation spike detected during
    the fall, no false alarm before it, one alert for it."""
    if len(lag_bars) != 2 or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in lag_bars):
        raise DrillConfigError(f"correlation_spike: lag_bars {lag_bars!r}: expected two whole numbers of bars >= 0 "
                               "(ETHUSDT's and SOLUSDT's lag behind BTCUSDT)")  # fmt: skip
    config = config or MonitorConfig()
    clock = SimClock()
    record = DrillRecord("correlation_spike", clock.now, alert_queue(env.alerts_dir))
    try:
        scenario = SCENARIO_ADAPTER.validate_python({**SPIKE, "parameters": {**SPIKE["parameters"],
                                                                              "lag_bars": list(lag_bars)}})  # fmt: skip
        day = drill_bars(env.seed)
        bars = apply_scenario(scenario, day[day["ts"] < day["ts"].min() + pd.Timedelta(hours=HOURS)])
        result = run_paper(bars, Rebalancer(), SimConfig(seed=env.seed), policy=policy, scenario_name=scenario.name)
        fault_s = seconds(bars.loc[bars["stressed"], "ts"].min())
        fall_end = fault_s + FALL_BARS * BAR_S
        record.mark("fault", f"the market falls as one: BTCUSDT -10% over {FALL_BARS} bars, ETHUSDT and SOLUSDT "
                             f"0.9 of it, {list(lag_bars)} bars later", fault_s)  # fmt: skip
        observed = PaperRun(observation_from_run(result.events, result.equity, bars))
        found = detect(observed, seconds(observed.run.as_of), ["correlation_spike"], config, record,
                       "paper/correlation_spike")  # fmt: skip
        at_s = found["detected_at"].map(seconds)
        during = found[((at_s >= fault_s) & (at_s <= fall_end)).to_numpy()]
        after = at_s[at_s >= fault_s]
        end_s = seconds(observed.run.as_of)
        # a spike never detected is a miss, judged as detected at the end of the run
        first = float(after.min()) if len(after) else end_s
        record.check("correlation spike detected (s after the fall began)", first - fault_s, "<=", FALL_BARS * BAR_S,
                     f"mean pairwise correlation {during['value'].iloc[0]:.3f}" if len(during) else
                     "not detected during the fall" + ("" if len(after) else " nor by the end"))  # fmt: skip
        record.check("spike alerts before the fall (false alarms)", float((at_s < fault_s).sum()), "==", 0.0,
                     f"{fault_s / 3600:.0f} calm hours of the drill's bars")  # fmt: skip
        record.check("alerts for the fall", float(len(during)), "==", 1.0, "one onset, one alert")
        record.mark("end", "drill over", end_s)
        return record.result()
    finally:
        record.close()
