"""The scheduled suites: which assets and which scenario partitions each suite job runs.

``data/suites.yaml`` defines them, so "core" is written down once, where a user can read and change
it: the nightly core suite takes every major or catastrophic scenario except Monte Carlo, plus the
unstressed baseline; the weekly full sweep takes every scenario. A suite whose file entry is
malformed is an error naming the file, the suite and the field.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from stress_pipeline.scenarios.catalog import BASELINE_KEY
from stress_pipeline.scenarios.model import SCENARIO_TYPES, Scenario

SUITES_FILE = "suites.yaml"
SEVERITIES = ("minor", "major", "catastrophic")


class SuiteError(ValueError):
    """A suites file that cannot be used; the message names the file, the suite and the field."""


@dataclass(frozen=True)
class Suite:
    """One suite job: the asset selection it materialises and the scenario partitions it covers.

    ``severities`` None means every scenario (``scenarios: all``).
    """

    name: str
    description: str
    select: str
    severities: tuple[str, ...] | None = None
    exclude_types: tuple[str, ...] = ()
    baseline: bool = True

    @property
    def every_scenario(self) -> bool:
        return self.severities is None

    def scenario_keys(self, scenarios: Iterable[Scenario]) -> list[str]:
        """The partition keys this suite runs among ``scenarios`` (the baseline first when it is in)."""
        keys = [BASELINE_KEY] if self.baseline else []
        for scenario in scenarios:
            if self.severities is not None and scenario.severity not in self.severities:
                continue
            if scenario.type in self.exclude_types:
                continue
            keys.append(scenario.key)
        return keys


def load_suites(path: Path) -> dict[str, Suite]:
    """Every suite of ``path`` (a suites.yaml), validated."""
    try:
        document = yaml.safe_load(path.read_text())
    except OSError as err:
        raise SuiteError(f"{path}: cannot read the suites file: {err.strerror}") from err
    except yaml.YAMLError as err:
        raise SuiteError(f"{path}: not valid YAML: {err}") from err
    entries = document.get("suites") if isinstance(document, Mapping) else None
    if not isinstance(entries, Mapping) or not entries:
        raise SuiteError(f"{path}: expected a mapping `suites:` of suite name -> definition")
    return {str(name): _suite(path, str(name), entry) for name, entry in entries.items()}


def suite_named(path: Path, name: str) -> Suite:
    suites = load_suites(path)
    if name not in suites:
        raise SuiteError(f"{path}: no suite {name!r} (defined: {', '.join(sorted(suites))})")
    return suites[name]


def _suite(path: Path, name: str, entry: object) -> Suite:
    where = f"{path}: suite {name!r}"
    if not isinstance(entry, Mapping):
        raise SuiteError(f"{where}: expected a mapping with select and scenarios")
    unknown = sorted(set(entry) - {"description", "select", "scenarios"})
    if unknown:
        raise SuiteError(f"{where}: unknown field(s) {', '.join(unknown)}")
    select = entry.get("select")
    if not isinstance(select, str) or not select.strip():
        raise SuiteError(f"{where}, field select: expected a Dagster asset selection, got {select!r}")
    description = str(entry.get("description") or "").strip()
    scenarios = entry.get("scenarios", "all")
    if scenarios == "all":
        return Suite(name, description, select.strip())
    if not isinstance(scenarios, Mapping):
        raise SuiteError(f"{where}, field scenarios: expected `all` or a mapping, got {scenarios!r}")
    unknown = sorted(set(scenarios) - {"severities", "exclude_types", "baseline"})
    if unknown:
        raise SuiteError(f"{where}, field scenarios: unknown key(s) {', '.join(unknown)}")
    severities = scenarios.get("severities", list(SEVERITIES))
    if not isinstance(severities, list) or not severities or any(s not in SEVERITIES for s in severities):
        raise SuiteError(f"{where}, field scenarios.severities: expected a list of {', '.join(SEVERITIES)}, "
                         f"got {severities!r}")  # fmt: skip
    exclude = scenarios.get("exclude_types", [])
    if not isinstance(exclude, list) or any(t not in SCENARIO_TYPES for t in exclude):
        raise SuiteError(f"{where}, field scenarios.exclude_types: expected a list of scenario types "
                         f"({', '.join(SCENARIO_TYPES)}), got {exclude!r}")
    baseline = scenarios.get("baseline", True)
    if not isinstance(baseline, bool):
        raise SuiteError(f"{where}, field scenarios.baseline: expected true or false, got {baseline!r}")
    return Suite(name, description, select.strip(), tuple(severities), tuple(exclude), baseline)
