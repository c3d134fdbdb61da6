"""The invariants check catches what it promises to: broken OHLC, a wrong drop, tampering, missed corruption."""

from __future__ import annotations

import pandas as pd
import pytest

from stress_pipeline.market.synthetic import generate_bars
from stress_pipeline.scenarios.invariants import check_stressed_bars, ohlc_violations
from stress_pipeline.scenarios.model import SCENARIO_ADAPTER
from stress_pipeline.scenarios.stress_run import stress_scenario


@pytest.fixture(scope="module")
def base() -> pd.DataFrame:
    return generate_bars(symbols=("BTCUSDT", "ETHUSDT"), days=2)


def scenario(kind: str, parameters: dict, symbols=("BTCUSDT",)):
    return SCENARIO_ADAPTER.validate_python(
        {"name": f"t {kind}", "type": kind, "symbols": list(symbols), "seed": 4, "parameters": parameters}
    )


def test_clean_stress_passes(base: pd.DataFrame) -> None:
    crash = scenario("flash_crash", {"drop_pct": 0.3})
    run = stress_scenario(crash, base)
    report = check_stressed_bars(crash, base, run.stressed)
    assert report.passed, report.failures
    realised = pytest.approx(0.3, abs=1e-9)
    assert report.drops == [{"symbol": "BTCUSDT", "expected": 0.3, "realised": realised, "ok": True}]


def test_broken_ohlc_outside_corrupted_rows_fails(base: pd.DataFrame) -> None:
    crash = scenario("flash_crash", {"drop_pct": 0.3})
    stored = stress_scenario(crash, base).stressed.copy()
    stored.loc[10, "high"] = stored.loc[10, "low"] * 0.5
    assert ohlc_violations(stored)["high >= max(open, close)"] == 1
    report = check_stressed_bars(crash, base, stored)
    assert not report.passed
    assert "1 row(s) outside corrupted rows break high >= max(open, close)" in report.failures
    stored.loc[10, "corrupted"] = True  # flagged rows are exempt from OHLC rules
    assert ohlc_violations(stored)["high >= max(open, close)"] == 0


def test_tampered_or_stale_output_is_not_reproducible(base: pd.DataFrame) -> None:
    spread = scenario("spread_explosion", {"spread_mult": 4.0})
    stored = stress_scenario(spread, base).stressed.copy()
    stored.loc[5, "spread_bps"] += 1.0
    report = check_stressed_bars(spread, base, stored)
    assert "the stored bars differ from a fresh application of the scenario (not reproducible)" in report.failures


def test_corrupted_rows_the_quality_suite_misses_fail(base: pd.DataFrame) -> None:
    feed = scenario("data_corruption", {"corruption_pct": 0.02, "corruption_types": ["nan", "spike", "gap"]})
    stored = stress_scenario(feed, base).stressed
    assert check_stressed_bars(feed, base, stored).passed
    flagged = stored.copy()
    clean_row = flagged.index[~flagged["corrupted"]][700]
    flagged.loc[clean_row, "corrupted"] = True  # claims a corruption nobody can see
    failures = check_stressed_bars(feed, base, flagged).failures
    assert any(f.startswith("BTCUSDT: the quality suite missed 1 of") for f in failures)
