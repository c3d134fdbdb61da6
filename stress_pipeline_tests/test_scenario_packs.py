"""Stress packs: the shipped library loads; every kind of bad pack is rejected whole with one clear message."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stress_pipeline.cli import main
from stress_pipeline.scenarios import SCENARIO_TYPES, ScenarioPackError, load_pack, load_packs, scenario_key
from stress_pipeline.scenarios.catalog import build_catalog, find_scenario

ROOT = Path(__file__).resolve().parents[1]
PACKS = ROOT / "data" / "stress_packs"
SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "NVDA", "SPY", "MES", "MNQ", "M2K")

GOOD = """
scenarios:
  - name: Test Crash
    type: flash_crash
    symbols: [BTCUSDT]
    parameters: {drop_pct: 0.2, duration_bars: 5}
"""


def pack(tmp_path: Path, text: str, name: str = "pack.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def error_for(path: Path) -> ScenarioPackError:
    with pytest.raises(ScenarioPackError) as info:
        load_pack(path, known_symbols=SYMBOLS)
    return info.value


def test_shipped_library_loads_with_every_type_and_the_named_scenarios() -> None:
    scenarios = load_packs(PACKS, known_symbols=SYMBOLS)
    names = {s.name for s in scenarios}
    assert {"BTC Flash Crash 2021", "ETH Liquidity Collapse", "SOL Volatility Explosion", "Black Swan Combo",
            "flash_crash_lite"} <= names
    assert set(SCENARIO_TYPES) == {s.type for s in scenarios}
    btc = next(s for s in scenarios if s.name == "BTC Flash Crash 2021")
    assert (btc.parameters.drop_pct, btc.parameters.duration_bars, btc.parameters.recovery_bars) == (0.30, 5, 15)
    lite = next(s for s in scenarios if s.name == "flash_crash_lite")
    assert lite.parameters.price_shock_pct == -0.03 and lite.parameters.spread_mult == 3.0
    assert lite.parameters.duration_sec == 60 and lite.parameters.recovery_type == "linear"
    assert lite.expect == {"max_drawdown_pct": 0.05, "max_var_multiplier": 2.0, "max_position_delta": 0.10}


def test_library_entry_has_the_listing_shape() -> None:
    scenario = load_pack(PACKS / "core_crypto.yaml").scenarios[0]
    entry = scenario.library_entry
    assert entry == {
        "name": "BTC Flash Crash 2021",
        "type": "flash_crash",
        "severity": "catastrophic",
        "description": entry["description"],
        "symbols": ["BTCUSDT"],
        "parameters": {"drop_pct": 0.3, "duration_bars": 5, "recovery_bars": 15, "recovery": "linear",
                       "volume_mult": 5.0, "spread_mult": 5.0},
    }


def test_single_scenario_mapping_is_a_pack(tmp_path: Path) -> None:
    path = pack(tmp_path, "name: One\ntype: spread_explosion\nsymbols: [ETHUSDT]\nparameters: {spread_mult: 4}\n")
    (scenario,) = load_pack(path).scenarios
    assert scenario.key == "one" and scenario.parameters.duration_bars == 10


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (GOOD.replace("flash_crash", "flash_crashh"),
         "scenario #1 'Test Crash': field type: unknown scenario type 'flash_crashh'; expected one of"),
        (GOOD.replace("drop_pct: 0.2, ", ""),
         "scenario #1 'Test Crash': field parameters.drop_pct: missing (required)"),
        (GOOD.replace("0.2", "1.5"),
         "scenario #1 'Test Crash': field parameters.drop_pct: Input should be less than 1 (got 1.5)"),
        (GOOD.replace("duration_bars: 5", "duration_bars: 0"),
         "scenario #1 'Test Crash': field parameters.duration_bars: must be 1 to 10,000 bars, or a time such as 15min, "
         "4h, 1d (got 0)"),
        (GOOD.replace("duration_bars: 5", "duration_bars: 5 fortnights"),
         "scenario #1 'Test Crash': field parameters.duration_bars: '5 fortnights' is not a bar count or a time"),
        (GOOD.replace("duration_bars: 5", "duraton_bars: 5"),
         "scenario #1 'Test Crash': field parameters.duraton_bars: unknown field"),
        (GOOD.replace("[BTCUSDT]", "[DOGEUSDT]"),
         "scenario #1 'Test Crash': field symbols: unknown symbol(s) DOGEUSDT (market data has BTCUSDT, ETHUSDT,"),
        (GOOD.replace("    type: flash_crash\n", "    type: flash_crash\n    severity: apocalyptic\n"),
         "scenario #1 'Test Crash': field severity: Input should be 'minor', 'major' or 'catastrophic'"),
        (GOOD + GOOD.split("scenarios:\n")[1],
         "scenario #2 'Test Crash': field name: duplicate name (same key 'test_crash'"),
        ("scenarios:\n  - name: [oops\n", "not valid YAML: line 3, column 1:"),
        ("", "the file is empty"),
        ("scenarios: []\n", "field scenarios: 'scenarios' must be a non-empty list"),
        ("- 1\n- 2\n", "expected a mapping with a 'scenarios' list"),
        (GOOD.replace("scenarios:", "scenarioz: 1\nscenarios:"), "field scenarioz: unknown top-level key(s) scenarioz"),
    ],
)
def test_bad_pack_messages_name_file_scenario_and_field(tmp_path: Path, body: str, expected: str) -> None:
    path = pack(tmp_path, body)
    err = error_for(path)
    assert str(err).startswith(f"{path}: ")
    assert expected in str(err), str(err)


def test_cross_field_errors_name_the_field(tmp_path: Path) -> None:
    cascade = GOOD.replace("flash_crash", "correlation_cascade")
    assert "field symbols: a cascade needs at least two symbols" in str(error_for(pack(tmp_path, cascade)))
    mixed = GOOD.replace("flash_crash", "mixed_custom").replace("drop_pct: 0.2, ", "")
    assert "field parameters: Value error" not in str(error_for(pack(tmp_path, mixed, "m.yaml")))
    assert "set at least one of flash_crash_drop_pct" in str(error_for(pack(tmp_path, mixed, "m.yaml")))
    replay = GOOD.replace("flash_crash", "historical_replay").replace(
        "{drop_pct: 0.2, duration_bars: 5}", "{start: '2024-01-02', end: '2024-01-01'}"
    )
    assert "end must be after start" in str(error_for(pack(tmp_path, replay, "r.yaml")))


def test_a_bad_pack_is_rejected_whole_and_the_others_stay(tmp_path: Path) -> None:
    pack(tmp_path, GOOD, "a_good.yaml")
    bad = GOOD.replace("Test Crash", "Other").replace("0.2", "7") + GOOD.split("scenarios:\n")[1].replace(
        "Test Crash", "Fine"
    )
    pack(tmp_path, bad, "b_bad.yaml")
    catalog = build_catalog(tmp_path, known_symbols=SYMBOLS)
    assert [s.name for s in catalog.scenarios] == ["Test Crash"]  # nothing of b_bad.yaml, not even "Fine"
    (err,) = catalog.errors
    assert err.path.endswith("b_bad.yaml") and err.field == "parameters.drop_pct"
    with pytest.raises(ScenarioPackError):
        load_packs(tmp_path, known_symbols=SYMBOLS)


def test_duplicate_name_across_packs(tmp_path: Path) -> None:
    pack(tmp_path, GOOD, "a.yaml")
    pack(tmp_path, GOOD.replace("Test Crash", "test crash"), "b.yaml")
    expected = r"b.yaml: scenario 'test crash': field name: duplicate name: 'test crash' is already defined in .*a.yaml"
    with pytest.raises(ScenarioPackError, match=expected):
        load_packs(tmp_path)


def test_catalog_round_trips_scenarios() -> None:
    catalog = build_catalog(PACKS, known_symbols=SYMBOLS)
    table = catalog.table()
    assert table["key"].is_unique and len(table) == len(catalog.scenarios)
    for scenario in catalog.scenarios:
        assert find_scenario(table, scenario.key) == scenario


def test_scenario_key() -> None:
    assert scenario_key("BTC Flash Crash 2021") == "btc_flash_crash_2021"
    assert scenario_key("flash_crash_lite exponential 5m") == "flash_crash_lite_exponential_5m"


def test_cli_validate_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = pack(tmp_path, GOOD, "good.yaml")
    assert main(["scenarios", "validate", str(good)]) == 0
    assert "good.yaml: ok (1 scenario(s): Test Crash)" in capsys.readouterr().out
    bad = pack(tmp_path, GOOD.replace("0.2", "2"), "bad.yaml")
    assert main(["scenarios", "validate", str(good), str(bad)]) == 2
    assert "bad.yaml: scenario #1 'Test Crash': field parameters.drop_pct" in capsys.readouterr().err


def test_cli_list_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scenarios", "list", "--json", "--dir", str(PACKS)]) == 0
    entries = json.loads(capsys.readouterr().out)
    assert {"name", "type", "severity", "description", "parameters"} <= set(entries[0])
    assert len(entries) == len(load_packs(PACKS))
