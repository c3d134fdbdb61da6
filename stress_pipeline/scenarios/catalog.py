"""The scenario catalog: every valid pack's scenarios as one table, and the packs that were rejected.

A bad pack is rejected whole and reported; the others stay usable, so one typo in a dropped-in file
does not stop the nightly suite.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from stress_pipeline.scenarios.model import SCENARIO_ADAPTER, Scenario
from stress_pipeline.scenarios.packs import Pack, ScenarioPackError, load_pack, pack_files

BASELINE_KEY = "baseline"
CATALOG_COLUMNS = (
    "key", "name", "type", "severity", "description", "symbols", "pack", "file", "seed", "parameters",
    "expect", "faults", "definition",
)  # fmt: skip


@dataclass(frozen=True)
class Catalog:
    packs: tuple[Pack, ...]
    errors: tuple[ScenarioPackError, ...]

    @property
    def scenarios(self) -> list[Scenario]:
        return [scenario for pack in self.packs for scenario in pack.scenarios]

    def table(self) -> pd.DataFrame:
        """One row per scenario; ``definition`` is the scenario as JSON, read back by :func:`scenario_from_row`."""
        rows = [
            {
                "key": scenario.key,
                "name": scenario.name,
                "type": scenario.type,
                "severity": scenario.severity,
                "description": scenario.description,
                "symbols": ",".join(scenario.symbols),
                "pack": pack.title,
                "file": pack.path.name,
                "seed": scenario.seed,
                "parameters": json.dumps(scenario.parameters.model_dump(mode="json", exclude_none=True)),
                "expect": json.dumps(scenario.expect),
                "faults": len(scenario.faults),
                "definition": SCENARIO_ADAPTER.dump_json(scenario).decode(),
            }
            for pack in self.packs
            for scenario in pack.scenarios
        ]
        return pd.DataFrame(rows, columns=list(CATALOG_COLUMNS))


def build_catalog(directory: Path, *, known_symbols: Iterable[str] | None = None) -> Catalog:
    """Load every pack in ``directory``; a pack that fails, or reuses a name, is rejected whole."""
    known = None if known_symbols is None else list(known_symbols)
    packs: list[Pack] = []
    errors: list[ScenarioPackError] = []
    seen: dict[str, Path] = {}
    for path in pack_files(directory):
        try:
            pack = load_pack(path, known_symbols=known)
        except ScenarioPackError as err:
            errors.append(err)
            continue
        clash = next((s for s in pack.scenarios if s.key in seen), None)
        if clash is not None:
            errors.append(
                ScenarioPackError(
                    path, f"duplicate name: '{clash.name}' is already defined in {seen[clash.key].name}",
                    scenario=f"'{clash.name}'", field="name",
                )
            )
            continue
        seen.update({s.key: path for s in pack.scenarios})
        packs.append(pack)
    return Catalog(packs=tuple(packs), errors=tuple(errors))


def scenario_from_row(row: pd.Series | dict) -> Scenario:
    """The scenario a catalog row describes."""
    return SCENARIO_ADAPTER.validate_json(row["definition"])


def find_scenario(table: pd.DataFrame, key: str) -> Scenario:
    match = table[table["key"] == key]
    if match.empty:
        raise KeyError(f"no scenario '{key}' in the catalog (have {', '.join(table['key']) or 'none'})")
    return scenario_from_row(match.iloc[0])


def baseline_scenario(symbols) -> Scenario:
    """The unstressed data of ``symbols``, whole: the reference every stressed run is compared with."""
    return SCENARIO_ADAPTER.validate_python(
        {
            "name": BASELINE_KEY,
            "type": "historical_replay",
            "severity": "minor",
            "description": "The ingested bars, unchanged: the baseline every scenario is compared with.",
            "symbols": sorted(symbols),
            "parameters": {"start": "1970-01-01T00:00:00Z", "end": "2262-01-01T00:00:00Z"},
        }
    )


def scenario_for_key(table: pd.DataFrame, key: str, symbols) -> Scenario:
    """The scenario of a partition key; ``baseline`` is every symbol's unstressed data."""
    return baseline_scenario(symbols) if key == BASELINE_KEY else find_scenario(table, key)
