"""Scenario packs are rejected at load when a scenario's generated bars would exceed the memory budget;
the size settings are validated by name."""

from __future__ import annotations

from pathlib import Path

import pytest

from stress_pipeline.scenarios.budget import GENERATED_BAR_BYTES, memory_needed
from stress_pipeline.scenarios.catalog import build_catalog
from stress_pipeline.scenarios.packs import ScenarioPackError, load_pack, load_packs
from stress_pipeline.settings import (
    DEFAULT_MAX_FILE_BYTES,
    DEFAULT_SCENARIO_MEMORY_BYTES,
    SettingsError,
    get_settings,
    make_settings,
)

ROOT = Path(__file__).resolve().parents[1]


def mc_pack(tmp_path: Path, n_paths: int, horizon: int, symbols: str = "[BTCUSDT]", name: str = "mc.yaml") -> Path:
    path = tmp_path / name
    path.write_text(
        "scenarios:\n"
        "  - name: Calm\n    type: spread_explosion\n    symbols: [BTCUSDT]\n"
        "    parameters: {spread_mult: 4, duration_bars: 10}\n"
        f"  - name: Huge MC\n    type: monte_carlo\n    symbols: {symbols}\n"
        f"    parameters: {{n_paths: {n_paths}, horizon_bars: {horizon}}}\n"
    )
    return path


def test_the_reported_pack_is_rejected_at_load_naming_scenario_field_and_figures(tmp_path: Path) -> None:
    path = mc_pack(tmp_path, 100_000, 10_000_000)
    with pytest.raises(ScenarioPackError) as info:
        load_pack(path)
    err = info.value
    assert (err.scenario, err.field) == ("#2 'Huge MC'", "parameters.n_paths")
    assert str(err) == (
        f"{path}: scenario #2 'Huge MC': field parameters.n_paths: needs about 71.9 TiB for its generated bars "
        f"(n_paths 100,000 x horizon_bars 10,000,000 x 1 symbol(s) x {GENERATED_BAR_BYTES} bytes), over the memory "
        "budget of 8.0 GiB (scenario_memory_bytes): lower n_paths or horizon_bars"
    )


def test_the_budget_counts_symbols_and_its_edge_is_exact(tmp_path: Path) -> None:
    path = mc_pack(tmp_path, 10, 1_000, symbols="[BTCUSDT, ETHUSDT]")
    (scenario,) = [s for s in load_pack(path, memory_budget=None).scenarios if s.type == "monte_carlo"]
    needed = memory_needed(scenario)
    assert needed == 10 * 1_000 * 2 * GENERATED_BAR_BYTES
    assert len(load_pack(path, memory_budget=needed).scenarios) == 2
    with pytest.raises(ScenarioPackError, match=r"x 2 symbol\(s\)"):
        load_pack(path, memory_budget=needed - 1)


def test_a_pack_over_budget_is_rejected_whole_and_the_others_load(tmp_path: Path) -> None:
    mc_pack(tmp_path, 1_000, 100_000, name="big.yaml")
    mc_pack(tmp_path, 5, 100, name="small.yaml").write_text(
        (tmp_path / "small.yaml").read_text().replace("Calm", "Calm 2").replace("Huge MC", "Small MC")
    )
    catalog = build_catalog(tmp_path, memory_budget=100 * 1024**2)
    assert [s.name for s in catalog.scenarios] == ["Calm 2", "Small MC"]
    (error,) = catalog.errors
    assert error.path == str(tmp_path / "big.yaml") and "over the memory budget of 100.0 MiB" in str(error)
    with pytest.raises(ScenarioPackError, match=r"big\.yaml"):
        load_packs(tmp_path, memory_budget=100 * 1024**2)


def test_the_shipped_library_fits_the_default_budget() -> None:
    assert load_packs(ROOT / "data" / "stress_packs")  # raises if any shipped scenario is over it


@pytest.mark.parametrize("name", ["STRESS_MAX_FILE_BYTES", "STRESS_SCENARIO_MEMORY_BYTES"])
@pytest.mark.parametrize("raw", ["0", "-5", "1.5", "lots"])
def test_size_settings_reject_bad_values_by_name(name: str, raw: str) -> None:
    with pytest.raises(SettingsError) as info:
        get_settings({name: raw})
    assert str(info.value) == f"{name}={raw!r}: expected a whole number of bytes > 0"


def test_size_settings_defaults_and_values() -> None:
    settings = get_settings({})
    assert (settings.max_file_bytes, settings.scenario_memory_bytes) == (
        DEFAULT_MAX_FILE_BYTES, DEFAULT_SCENARIO_MEMORY_BYTES
    )
    settings = get_settings({"STRESS_MAX_FILE_BYTES": "1000", "STRESS_SCENARIO_MEMORY_BYTES": "2048"})
    assert (settings.max_file_bytes, settings.scenario_memory_bytes) == (1000, 2048)
    with pytest.raises(SettingsError, match="max_file_bytes=True"):
        make_settings(max_file_bytes=True)
