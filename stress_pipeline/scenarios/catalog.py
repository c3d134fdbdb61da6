"""The scenario catalog: every valid pack's scenarios as one table, and the packs that were rejected.

A bad pack is rejected whole and reported; the others stay usable, so one typo in a dropped-in file
does not stop the nightly suite.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from stress_pipeline.scenarios.model import SCENARIO_ADAPTER, Scenario
from stress_pipeline.scenarios.packs import Pack, ScenarioPackError, load_pack, pack_files
from stress_pipeline.settings import DEFAULT_SCENARIO_MEMORY_BYTES

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


def build_catalog(
    directory: Path, *, known_symbols: Iterable[str] | None = None,
    memory_budget: int | None = DEFAULT_SCENARIO_MEMORY_BYTES,
) -> Catalog:
    """Load every pack in ``directory``; a pack that fails, reuses a name, or holds a scenario over
    ``memory_budget`` (bytes of generated bars), is rejected whole."""
    known = None if known_symbols is None else list(known_symbols)
    packs: list[Pack] = []
    errors: list[ScenarioPackError] = []
    seen: dict[str, Path] = {}
    for path in pack_files(directory):
        try:
            pack = load_pack(path, known_symbols=known, memory_budget=memory_budget)
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


@dataclass(frozen=True)
class PartitionSync:
    """How the scenario partitions follow the packs on disk.

    ``add``: keys to create, in catalog order; ``remove`` and ``keep``: keys the catalog no longer has,
    each with the reason it goes or stays; ``owners``: the pack file (name) that defines each key, to be
    remembered for the next sync.
    """

    add: tuple[str, ...]
    remove: Mapping[str, str]
    keep: Mapping[str, str]
    owners: Mapping[str, str]


def sync_partitions(
    existing: Iterable[str],
    owners: Mapping[str, str],
    catalog: Catalog,
    packs_on_disk: Collection[str] | None,
) -> PartitionSync:
    """Which scenario partitions to add and which to remove, given the packs on disk.

    ``existing``: the partition keys now; ``owners``: key -> pack file name, as recorded by the last sync;
    ``packs_on_disk``: the names of the pack files in the folder, or None when the folder does not exist.
    A key the catalog no longer has is removed only when the pack that defined it was removed, or was
    read and no longer defines it. It stays when that pack is on disk but rejected (its scenarios cannot
    be known), when the pack folder is missing (a wrong data directory must not empty the instance), and
    when no pack is recorded for it. ``baseline`` always exists.
    """
    wanted = [BASELINE_KEY, *(scenario.key for scenario in catalog.scenarios)]
    current = list(dict.fromkeys(existing))
    present = set(current)
    new_owners = {scenario.key: pack.path.name for pack in catalog.packs for scenario in pack.scenarios}
    rejected = {Path(err.path).name for err in catalog.errors}
    remove: dict[str, str] = {}
    keep: dict[str, str] = {}
    for key in current:
        if key in wanted:
            continue
        owner = owners.get(key)
        if packs_on_disk is None:
            keep[key] = "the stress pack folder does not exist"
        elif owner is None:
            keep[key] = "no record of the pack that defined it"
        elif owner not in packs_on_disk:
            remove[key] = f"its pack {owner} was removed"
        elif owner in rejected:
            keep[key] = f"its pack {owner} is rejected"
        else:
            remove[key] = f"{owner} no longer defines it"
        if key in keep and owner is not None:
            new_owners[key] = owner
    return PartitionSync(
        add=tuple(key for key in wanted if key not in present),
        remove=remove,
        keep=keep,
        owners=dict(sorted(new_owners.items())),
    )


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
