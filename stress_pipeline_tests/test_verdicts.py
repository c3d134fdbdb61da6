"""Scenario verdicts on crafted runs: not exercised, breaches that fail with their value, passes that pass."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from stress_pipeline.scenarios.model import SCENARIO_ADAPTER
from stress_pipeline.scenarios.packs import ScenarioPackError, load_pack
from stress_pipeline.simulation.result import SimResult
from stress_pipeline.trading.risk.policy import TradingPolicy
from stress_pipeline.verdicts.criteria import criteria_for
from stress_pipeline.verdicts.judge import judge_scenario
from stress_pipeline.verdicts.report import verdict_lines
from stress_pipeline.verdicts.table import scenario_outcomes
from stress_pipeline.verdicts.window import stress_window

START = pd.Timestamp("2024-01-01", tz="UTC")
N = 200
SHOCK = slice(100, 105)  # the flagged bars
TS = pd.date_range(START, periods=N, freq="1min")


def scenario(kind: str = "flash_crash", expect: dict | None = None, tail_s: float = 3600.0):
    params = {
        "flash_crash": {"drop_pct": 0.3, "duration_bars": 5, "recovery_bars": 5},
        "correlation_cascade": {"drop_pct": 0.3, "duration_bars": 5},
    }[kind]
    return SCENARIO_ADAPTER.validate_python(
        {
            "name": "crafted",
            "type": kind,
            "severity": "catastrophic",
            "symbols": ["BTCUSDT", "ETHUSDT"] if kind == "correlation_cascade" else ["BTCUSDT"],
            "parameters": params,
            "window": {"recovery_tail_s": tail_s},
            "expect": expect or {},
        }
    )


def stressed_frame() -> pd.DataFrame:
    flags = np.zeros(N, dtype=bool)
    flags[SHOCK] = True
    return pd.DataFrame(
        {"ts": TS, "symbol": "BTCUSDT", "close": 100.0, "stressed": flags, "corrupted": False, "halted": False}
    )


def run(equity, exposure, fills=(), events=()) -> SimResult:
    equity = np.asarray(equity, dtype=float)
    peak = np.maximum.accumulate(equity)
    frame = pd.DataFrame(
        {
            "equity": equity,
            "cash": equity,
            "gross_exposure": np.asarray(exposure, dtype=float),
            "pnl": equity - equity[0],
            "drawdown": 1 - equity / peak,
        },
        index=pd.DatetimeIndex(TS, name="ts"),
    )
    fill_rows = [{"ts": TS[i], "symbol": "BTCUSDT", "qty": q, "price": p} for i, q, p in fills]
    event_rows = [
        {"ts": TS[i], "kind": kind, "symbol": "BTCUSDT", "details": json.dumps(details)} for i, kind, details in events
    ]
    return SimResult(
        kind="paper",
        scenario_name="crafted",
        trades=pd.DataFrame(),
        fills=pd.DataFrame(fill_rows, columns=["ts", "symbol", "qty", "price"]),
        equity=frame,
        metrics={},
        events=pd.DataFrame(event_rows, columns=["ts", "kind", "symbol", "details"]),
    )


def flat_run() -> SimResult:
    return run(np.full(N, 100_000.0), np.zeros(N))


def crash_run(loss: float, *, exposure: float = 50_000.0, flatten_at: int | None = 110, recover_at: int | None = None):
    equity = np.full(N, 100_000.0)
    equity[SHOCK.start :] = 100_000.0 * (1 - loss)
    if recover_at is not None:
        equity[recover_at:] = 100_000.0
    held = np.full(N, exposure)
    if flatten_at is not None:
        held[flatten_at:] = 0.0
    return run(equity, held)


def judge(sc, paper, baseline=None, backtest=None):
    baseline = baseline or flat_run()
    return judge_scenario(sc, stressed_frame(), paper, backtest or paper, baseline, TradingPolicy())


def rows(verdict) -> dict[str, pd.Series]:
    return {row.criterion: row for _, row in verdict.table.iterrows()}


def test_a_crash_while_flat_is_not_exercised_never_a_pass() -> None:
    verdict = judge(scenario(), flat_run())
    assert verdict.outcome == "not_exercised"
    found = rows(verdict)
    assert found["exercised"]["value"] == 0 and found["exercised"]["outcome"] == "not_exercised"
    assert "no position at the shock and no trade" in found["exercised"]["detail"]
    assert set(verdict.table["outcome"]) == {"not_exercised"}
    assert scenario_outcomes(verdict.table)["outcome"].tolist() == ["not_exercised"]


def test_entering_during_the_shock_while_flat_is_exercised() -> None:
    paper = run(np.full(N, 100_000.0), np.zeros(N), fills=[(102, 1.0, 100.0)])
    verdict = judge(scenario(), paper)
    assert rows(verdict)["exercised"]["outcome"] == "pass"


def test_a_drawdown_breach_fails_with_its_value() -> None:
    verdict = judge(scenario(), crash_run(0.2))  # flash crash default: max_drawdown_pct 0.15
    assert verdict.outcome == "fail"
    found = rows(verdict)["max_drawdown_pct"]
    assert found["outcome"] == "fail" and found["value"] == pytest.approx(0.2) and found["threshold"] == 0.15
    assert "20.00% (limit <= 15.00%)" in found["detail"] and "inside the stress window" in found["detail"]
    assert verdict.failed == [found["detail"]]
    assert any("max_drawdown_pct: 20.00%" in line for line in verdict_lines(verdict.table))


def test_a_contained_crash_passes() -> None:
    verdict = judge(scenario(), crash_run(0.05))
    assert verdict.outcome == "pass", verdict.failed
    found = rows(verdict)
    assert set(found) == {"exercised", "hard_limit_breaches", "max_drawdown_pct", "flat_after", "no_stuck_positions"}
    assert found["max_drawdown_pct"]["value"] == pytest.approx(0.05)
    assert found["flat_after"]["value"] == 1


def test_a_book_never_flattened_fails_flat_after() -> None:
    verdict = judge(scenario(), crash_run(0.05, flatten_at=None))
    found = rows(verdict)["flat_after"]
    assert found["outcome"] == "fail" and found["value"] == 0


def test_pack_expect_overrides_type_defaults_and_adds_criteria() -> None:
    sc = scenario(expect={"max_drawdown_pct": 0.25, "max_loss_pct": 0.04, "max_recovery_s": 600})
    assert criteria_for("flash_crash", sc.expect)["max_drawdown_pct"] == 0.25
    verdict = judge(sc, crash_run(0.05))
    found = rows(verdict)
    assert found["max_drawdown_pct"]["outcome"] == "pass"
    assert found["max_loss_pct"]["outcome"] == "fail" and found["max_loss_pct"]["value"] == pytest.approx(0.05)
    # Never back at the pre-shock equity inside the window: fails, with no value rather than a made-up one.
    assert found["max_recovery_s"]["outcome"] == "fail" and math.isnan(found["max_recovery_s"]["value"])
    assert "not recovered within the window" in found["max_recovery_s"]["detail"]


def test_recovery_time_is_measured_from_the_trough() -> None:
    verdict = judge(scenario(expect={"max_recovery_s": 600}), crash_run(0.05, recover_at=108))
    found = rows(verdict)["max_recovery_s"]
    assert found["value"] == pytest.approx((108 - 100) * 60) and found["outcome"] == "pass"


def test_correlation_cascade_must_halt_above_fifteen_percent() -> None:
    sc = scenario("correlation_cascade")
    unhalted = judge(sc, crash_run(0.18))
    found = rows(unhalted)
    assert found["halt_above_drawdown_pct"]["outcome"] == "fail"
    assert found["halt_above_drawdown_pct"]["value"] == pytest.approx(0.18)
    assert found["max_loss_pct"]["outcome"] == "pass"

    equity = np.full(N, 100_000.0)
    equity[100:102] = 90_000.0  # the stop trips at 10%, then the fall goes on to 18% while halted
    equity[102:] = 82_000.0
    tripped = run(equity, np.where(np.arange(N) < 103, 50_000.0, 0.0),
                  events=[(101, "ess_transition", {"from": "ARMED", "to": "TRIPPED"})])  # fmt: skip
    found = rows(judge(sc, tripped))
    assert found["halt_above_drawdown_pct"]["value"] == pytest.approx(0.10)
    assert found["halt_above_drawdown_pct"]["outcome"] == "pass"


def test_ess_must_trip_and_execution_failures_and_stuck_positions() -> None:
    sc = scenario(expect={"ess_must_trip": True, "max_execution_failures": 0})
    paper = run(
        np.full(N, 100_000.0) * np.where(np.arange(N) < 100, 1.0, 0.97),
        np.full(N, 40_000.0),
        fills=[(50, 1.0, 40_000.0)],
        events=[(103, "execution_failure", {})],
    )
    found = rows(judge(sc, paper))
    assert found["ess_must_trip"]["outcome"] == "fail" and found["ess_must_trip"]["value"] == 0
    assert found["max_execution_failures"]["value"] == 1 and found["max_execution_failures"]["outcome"] == "fail"
    assert found["no_stuck_positions"]["value"] == 1 and found["no_stuck_positions"]["outcome"] == "fail"


def test_hard_limit_breaches_count_episodes_above_the_guard() -> None:
    exposure = np.full(N, 50_000.0)
    exposure[20:25] = 160_000.0  # 1.6 x equity > 1.5
    exposure[120:122] = 151_000.0
    found = rows(judge(scenario(), run(np.full(N, 100_000.0), exposure)))["hard_limit_breaches"]
    assert found["value"] == 2 and found["outcome"] == "fail"


def test_stress_impact_is_the_stressed_run_minus_the_baseline() -> None:
    verdict = judge(scenario(), crash_run(0.05), baseline=crash_run(0.01))
    assert verdict.impact["pnl"] == pytest.approx(-4_000.0)
    assert verdict.impact["stress_drawdown_pct"] == pytest.approx(0.04)
    figures = verdict.figures_table().set_index("figure")
    assert figures.loc["pnl", "baseline"] == pytest.approx(-1_000.0)


def test_window_is_the_flagged_bars_plus_the_tail_else_the_faults_else_the_whole_run() -> None:
    window = stress_window(stressed_frame(), tail_s=600)
    assert window.start == TS[100] and window.shock_end_ns == TS[105].value
    assert window.end == TS[105] + pd.Timedelta(minutes=10) and window.source == "bars"
    clipped = stress_window(stressed_frame(), tail_s=10**6)
    assert clipped.end == TS[-1] + pd.Timedelta(minutes=1)
    plain = stressed_frame().assign(stressed=False)
    fault = SCENARIO_ADAPTER.validate_python(
        {"name": "f", "type": "historical_replay", "symbols": ["BTCUSDT"],
         "parameters": {"start": "2024-01-01T00:00:00Z", "end": "2024-01-02T00:00:00Z"},
         "faults": [{"kind": "exchange_outage", "at_s": 600, "duration_s": 300}]}
    ).faults  # fmt: skip
    by_faults = stress_window(plain, tail_s=60, faults=fault)
    assert by_faults.source == "faults" and by_faults.start == TS[10] and by_faults.end == TS[16]
    assert stress_window(plain, tail_s=60).source == "whole run"


def test_unknown_expect_key_names_file_scenario_and_key(tmp_path: Path) -> None:
    pack = tmp_path / "bad.yaml"
    pack.write_text(
        "scenarios:\n  - name: Typo Crash\n    type: flash_crash\n    symbols: [BTCUSDT]\n"
        "    parameters: {drop_pct: 0.3, duration_bars: 5, recovery_bars: 5}\n"
        "    expect: {max_drawdwn_pct: 0.1}\n"
    )
    with pytest.raises(ScenarioPackError) as err:
        load_pack(pack)
    text = str(err.value)
    assert "bad.yaml" in text and "Typo Crash" in text and "max_drawdwn_pct" in text


@pytest.mark.parametrize(
    ("expect", "message"),
    [
        ({"max_drawdown_pct": 5}, "fraction between 0 and 1"),
        ({"flat_after": "yes"}, "true or false"),
        ({"hard_limit_breaches": 0.5}, "whole number"),
        ({"max_recovery_s": -1}, "number >= 0"),
    ],
)
def test_bad_expect_values_are_refused(expect: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        scenario(expect=expect)


def test_shipped_packs_load_with_an_anchored_scenario() -> None:
    packs = Path(__file__).resolve().parents[1] / "data" / "stress_packs"
    scenarios = [s for path in sorted(packs.glob("*.yaml")) for s in load_pack(path).scenarios]
    anchored = [s for s in scenarios if s.window is not None and s.window.at is not None]
    assert anchored and anchored[0].window.at == "max_exposure"
    lite = [s for s in scenarios if s.type == "flash_crash_lite"]
    assert all(s.expect["max_drawdown_pct"] == 0.05 for s in lite)
