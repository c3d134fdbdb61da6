"""Every sweep spec of a folder, expanded: the points of the valid specs and the specs that were rejected.

As with stress packs, a bad spec is rejected whole and reported while the others stay usable; a sweep
name used by two files rejects the later one.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from stress_pipeline.scenarios.model import Scenario
from stress_pipeline.sweeps.spec import SweepPoint, SweepSpecError, expand_sweep, load_sweep, sweep_files
from stress_pipeline.trading.risk.policy import PolicyFileError, TradingPolicy

POINT_TABLE_COLUMNS = (
    "key", "sweep", "base", "values", "scenario", "strategy", "strategy_params", "policy", "policy_overrides", "file",
)  # fmt: skip


@dataclass(frozen=True)
class SweepCatalog:
    points: tuple[SweepPoint, ...]
    files: dict[str, str]  # point key -> the spec file (name) that defines it
    errors: tuple[SweepSpecError, ...]

    def table(self) -> pd.DataFrame:
        """One row per point (``SweepPoint.record`` plus its file), read back by ``point_from_record``."""
        rows = [{**point.record(), "file": self.files[point.key]} for point in self.points]
        return pd.DataFrame(rows, columns=list(POINT_TABLE_COLUMNS))


def build_sweeps(
    directory: str | Path, scenarios: Iterable[Scenario], *, strategy: str,
    policy_for: Callable[[str | None], TradingPolicy],
) -> SweepCatalog:  # fmt: skip
    """Expand every spec in ``directory`` against the catalog ``scenarios``; ``strategy``: the run's;
    ``policy_for(name)``: the policy a spec names (None: the run's)."""
    scenarios = list(scenarios)
    points: list[SweepPoint] = []
    files: dict[str, str] = {}
    errors: list[SweepSpecError] = []
    owners: dict[str, Path] = {}
    for path in sweep_files(directory):
        try:
            loaded = load_sweep(path)
            if loaded.spec.key in owners:
                raise loaded.error(f"sweep name already used by {owners[loaded.spec.key].name}", "sweep")
            try:
                policy = policy_for(loaded.spec.policy)
            except PolicyFileError as err:
                raise loaded.error(str(err), "policy") from None
            expanded = expand_sweep(loaded, scenarios, strategy=strategy, policy=policy)
        except SweepSpecError as err:
            errors.append(err)
            continue
        owners[loaded.spec.key] = path
        points.extend(expanded)
        files.update({point.key: path.name for point in expanded})
    return SweepCatalog(points=tuple(points), files=files, errors=tuple(errors))


def partition_changes(
    existing: Iterable[str], catalog: SweepCatalog, *, folder_exists: bool
) -> tuple[list[str], list[str]]:
    """(keys to add, keys to remove) to make the sweep partitions the catalog's points. Nothing is
    removed while a spec is rejected (its points cannot be known) or when the folder is missing (a
    wrong data directory must not empty the instance)."""
    current = list(dict.fromkeys(existing))
    wanted = [point.key for point in catalog.points]
    add = [key for key in wanted if key not in set(current)]
    if catalog.errors or not folder_exists:
        return add, []
    keep: Collection[str] = set(wanted)
    return add, [key for key in current if key not in keep]
