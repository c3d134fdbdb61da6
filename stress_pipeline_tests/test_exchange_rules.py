"""Equity and futures rules: the opening gap, limit-up/limit-down bands and market-wide circuit breakers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from stress_pipeline.market.synthetic import generate_bars
from stress_pipeline.scenarios import run_scenario
from stress_pipeline.scenarios.exchange_rules import ExchangeRuleError
from stress_pipeline.scenarios.model import SCENARIO_ADAPTER
from stress_pipeline.scenarios.windows import WindowError


@pytest.fixture(scope="module")
def equity():
    return generate_bars(["NVDA", "SPY"], start="2023-10-02", days=14, calendar="XNYS")


def scenario(**fields):
    return SCENARIO_ADAPTER.validate_python({"name": "Test", "symbols": ["NVDA"], "seed": 7, **fields})


def frame(result, symbol):
    bars = result.bars.to_frame()
    return bars[bars["symbol"] == symbol].reset_index(drop=True)


def test_an_opening_gap_moves_the_session_open_exactly_and_the_level_persists(equity):
    s = scenario(type="opening_gap", window={"start": "2023-10-10T00:00:00Z"},
                 parameters={"gap_pct": -0.08, "duration_bars": "30min"})  # fmt: skip
    result = run_scenario(s, equity, "XNYS")
    nvda = frame(result, "NVDA")
    base = equity[equity["symbol"] == "NVDA"].reset_index(drop=True)
    row = int(np.flatnonzero(nvda["ts"] == pd.Timestamp("2023-10-10 13:30", tz="UTC"))[0])
    assert nvda["open"][row] == pytest.approx(base["close"][row - 1] * 0.92, rel=1e-12)
    after = nvda["close"][row:] / base["close"][row:]
    assert np.allclose(after, after.iloc[0], rtol=1e-9)  # one level shift, persisting
    assert (nvda["close"][:row] == base["close"][:row]).all()
    assert nvda["volume"][row] == pytest.approx(3 * base["volume"][row])
    assert int(nvda["stressed"][row : row + 30].sum()) == 30
    assert result.expected_drop["NVDA"] == pytest.approx(0.08)


def test_an_opening_gap_needs_session_bars():
    crypto = generate_bars(["BTCUSDT"], days=3)
    s = SCENARIO_ADAPTER.validate_python({"name": "Gap", "type": "opening_gap", "symbols": ["BTCUSDT"],
                                          "parameters": {"gap_pct": -0.05}})  # fmt: skip
    with pytest.raises(WindowError, match="hold no session open"):
        run_scenario(s, crypto)


def crash(drop, bars=10, rules=None, symbols=("NVDA",), start="2023-10-10T15:00:00Z"):
    params = {"drop_pct": drop, "duration_bars": bars, "recovery_bars": 0, "recovery": "none"}
    fields = {"type": "flash_crash", "symbols": list(symbols), "window": {"start": start}, "parameters": params}
    if symbols[0] != "NVDA" or len(symbols) > 1:
        fields["type"] = "correlation_cascade"
        fields["parameters"] = {**fields["parameters"], "correlation": 1.0, "lag_bars": 0}
        fields["parameters"].pop("recovery")
    if rules:
        fields["exchange_rules"] = rules
    return scenario(**fields)


def test_luld_bands_cap_each_leg_and_pause_five_minutes(equity):
    free = run_scenario(crash(0.30, bars=12), equity, "XNYS")
    ruled = run_scenario(crash(0.30, bars=12, rules={"luld_tier": 1}), equity, "XNYS")
    bars = frame(ruled, "NVDA")
    halted = bars["halted"].to_numpy()
    assert ruled.rules["luld_pauses"]["NVDA"] == 2  # one per leg: a 5-minute pause, then a lower reopening
    # Each pause is 5 one-minute bars, frozen at the band price, no volume.
    runs = np.diff(np.concatenate([[0], halted.astype(int), [0]]))
    lengths = np.flatnonzero(runs == -1) - np.flatnonzero(runs == 1)
    assert set(lengths.tolist()) == {5}
    frozen = bars[halted]
    assert (frozen["volume"] == 0).all() and (frozen["high"] == frozen["low"]).all()
    # No print outside 5% of the reference: every bar's low is within the band of the 5 closes before it.
    i = int(np.flatnonzero(halted)[0]) - 1  # the bar that closed at the band
    reference = bars["close"][i - 5 : i].mean()
    assert bars["close"][i] == pytest.approx(reference * 0.95, rel=1e-12)
    assert bars["low"][i] >= reference * 0.95 - 1e-9
    # The bands never deepen a fall, and after the last pause the bars are the stressed path's again.
    free_bars = frame(free, "NVDA")
    assert bars["low"].min() >= free_bars["low"].min()
    last = int(np.flatnonzero(halted)[-1]) + 1
    assert np.array_equal(bars["close"][last + 1 :], free_bars["close"][last + 1 :])
    assert "NVDA" not in ruled.expected_drop  # the bands changed the promised drop
    assert (bars["stressed"] | ~bars["halted"]).all()


def test_a_small_move_inside_the_bands_is_left_alone(equity):
    free = run_scenario(crash(0.02, bars=20), equity, "XNYS")
    ruled = run_scenario(crash(0.02, bars=20, rules={"luld_tier": 1}), equity, "XNYS")
    assert ruled.rules["luld_pauses"]["NVDA"] == 0
    assert frame(ruled, "NVDA").equals(frame(free, "NVDA"))
    assert ruled.expected_drop == free.expected_drop


@pytest.mark.parametrize(("drop", "levels"), [(0.05, []), (0.09, [1]), (0.15, [1, 2]), (0.25, [1, 2, 3])])
def test_circuit_breakers_halt_the_market_at_7_13_and_20_percent(equity, drop, levels):
    s = crash(drop, bars=30, rules={"circuit_breaker_index": "spy"}, symbols=("SPY", "NVDA"))
    result = run_scenario(s, equity, "XNYS")
    halts = result.rules["circuit_breaker_halts"]
    assert [h["level"] for h in halts] == levels
    spy, nvda = frame(result, "SPY"), frame(result, "NVDA")
    for halt in halts:
        begin, end = pd.Timestamp(halt["start"]), pd.Timestamp(halt["end"])
        inside = (spy["ts"] >= begin) & (spy["ts"] < end)
        if halt["level"] < 3:
            assert int(inside.sum()) == 15 and halt["minutes"] == 15.0
        else:  # level 3: the rest of the session, 16:00 New York = 20:00 UTC in October
            assert end == pd.Timestamp("2023-10-10 20:00", tz="UTC")
        assert spy["halted"][inside].all() and nvda["halted"][inside.to_numpy()].all()  # market-wide
        assert (spy["volume"][inside] == 0).all()


def test_level_1_does_not_halt_late_in_the_session(equity):
    late = crash(0.09, bars=5, rules={"circuit_breaker_index": "SPY"}, symbols=("SPY", "NVDA"),
                 start="2023-10-10T19:40:00Z")  # fmt: skip  (15:40 New York, after 15:25)
    assert run_scenario(late, equity, "XNYS").rules["circuit_breaker_halts"] == []


def test_rules_that_the_bars_cannot_carry_are_errors():
    with pytest.raises(ValueError, match="circuit_breaker_index: QQQ is not one of the scenario's symbols"):
        crash(0.1, rules={"circuit_breaker_index": "QQQ"})
    crypto = generate_bars(["BTCUSDT"], days=2)
    s = SCENARIO_ADAPTER.validate_python(
        {"name": "C", "type": "flash_crash", "symbols": ["BTCUSDT"], "parameters": {"drop_pct": 0.1},
         "exchange_rules": {"circuit_breaker_index": "BTCUSDT"}}
    )  # fmt: skip
    with pytest.raises(ExchangeRuleError, match="a 24/7 market has no circuit breaker"):
        run_scenario(s, crypto)


def test_a_slow_decline_moves_the_reference_with_it_and_never_pauses(equity):
    ruled = run_scenario(crash(0.20, bars=40, rules={"luld_tier": 1}), equity, "XNYS")
    assert ruled.rules["luld_pauses"]["NVDA"] == 0  # 0.5% a minute: the 5-minute reference trails by ~1.5%
    tier1 = run_scenario(crash(0.40, bars=15, rules={"luld_tier": 1}), equity, "XNYS")
    tier2 = run_scenario(crash(0.40, bars=15, rules={"luld_tier": 2}), equity, "XNYS")
    assert 1 <= tier2.rules["luld_pauses"]["NVDA"] < tier1.rules["luld_pauses"]["NVDA"]  # 10% bands pause less
