"""Stress packs: YAML files of scenarios under data/stress_packs/, validated whole.

A pack is a mapping with a ``scenarios`` list (and an optional ``pack`` title, and ``recovery_tail_s``,
the verdicts' recovery tail for its scenarios that set none), or a single scenario mapping. Any
problem rejects the whole pack with one message naming the file, the scenario and the field. Users
add scenarios by dropping files into the folder.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import ValidationError

from stress_pipeline.scenarios.budget import over_budget
from stress_pipeline.scenarios.model import SCENARIO_ADAPTER, SCENARIO_TYPES, Scenario, scenario_key
from stress_pipeline.settings import DEFAULT_SCENARIO_MEMORY_BYTES

PACK_SUFFIXES = (".yaml", ".yml")


class ScenarioPackError(ValueError):
    """A stress pack is invalid; the message names file, scenario and field."""

    def __init__(self, path: str | Path, problem: str, *, scenario: str | None = None, field: str | None = None):
        self.path = str(path)
        self.scenario = scenario
        self.field = field
        self.problem = problem
        parts = [self.path]
        if scenario is not None:
            parts.append(f"scenario {scenario}")
        if field is not None:
            parts.append(f"field {field}")
        super().__init__(": ".join(parts) + f": {problem}")


@dataclass(frozen=True)
class Pack:
    path: Path
    title: str
    scenarios: tuple[Scenario, ...]


def pack_files(directory: Path) -> list[Path]:
    """Pack files in ``directory`` (not recursive), sorted by name; hidden files are skipped."""
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.suffix in PACK_SUFFIXES and not p.name.startswith("."))


def load_pack(
    path: str | Path, *, known_symbols: Iterable[str] | None = None,
    memory_budget: int | None = DEFAULT_SCENARIO_MEMORY_BYTES,
) -> Pack:
    """Read and validate one pack file; raise :class:`ScenarioPackError` on the first problem.

    A scenario whose generated bars would need more than ``memory_budget`` bytes (see
    :mod:`~stress_pipeline.scenarios.budget`) is such a problem; None checks no budget."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ScenarioPackError(path, f"cannot be read: {exc.strerror or exc}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ScenarioPackError(path, f"not valid YAML: {where}{problem}") from None
    if raw is None:
        raise ScenarioPackError(path, "the file is empty")
    if isinstance(raw, dict) and "scenarios" in raw:
        extra = set(raw) - {"scenarios", "pack", "description", "recovery_tail_s"}
        if extra:
            keys = ", ".join(sorted(extra))
            raise ScenarioPackError(path, f"unknown top-level key(s) {keys}", field=sorted(extra)[0])
        entries = raw["scenarios"]
        title = str(raw.get("pack") or path.stem)
    elif isinstance(raw, dict):
        entries, title = [raw], path.stem
    else:
        raise ScenarioPackError(path, "expected a mapping with a 'scenarios' list, or one scenario mapping")
    if not isinstance(entries, list) or not entries:
        raise ScenarioPackError(path, "'scenarios' must be a non-empty list", field="scenarios")
    known = None if known_symbols is None else {s.upper() for s in known_symbols}
    scenarios: list[Scenario] = []
    seen: dict[str, str] = {}
    for number, entry in enumerate(entries, start=1):
        label = _label(entry, number)
        if not isinstance(entry, dict):
            raise ScenarioPackError(path, "expected a mapping", scenario=label)
        scenario = validate_scenario_entry(path, _with_pack_tail(entry, raw), label)
        if scenario.key in seen:
            raise ScenarioPackError(
                path, f"duplicate name (same key '{scenario.key}' as '{seen[scenario.key]}')", scenario=label,
                field="name",
            )
        seen[scenario.key] = scenario.name
        if known is not None:
            unknown = [s for s in scenario.symbols if s not in known]
            if unknown:
                raise ScenarioPackError(
                    path,
                    f"unknown symbol(s) {', '.join(unknown)} (market data has {', '.join(sorted(known)) or 'none'})",
                    scenario=label,
                    field="symbols",
                )
        problem = over_budget(scenario, memory_budget) if memory_budget is not None else None
        if problem:
            raise ScenarioPackError(path, problem, scenario=label, field="parameters.n_paths")
        scenarios.append(scenario)
    return Pack(path=path, title=title, scenarios=tuple(scenarios))


def load_packs(
    directory: str | Path, *, known_symbols: Iterable[str] | None = None,
    memory_budget: int | None = DEFAULT_SCENARIO_MEMORY_BYTES,
) -> list[Scenario]:
    """Every scenario of every pack in ``directory``; any bad pack or a name used twice raises."""
    files = pack_files(Path(directory))
    packs = [load_pack(path, known_symbols=known_symbols, memory_budget=memory_budget) for path in files]
    check_unique_names(packs)
    return [scenario for pack in packs for scenario in pack.scenarios]


def check_unique_names(packs: Iterable[Pack]) -> None:
    seen: dict[str, Path] = {}
    for pack in packs:
        for scenario in pack.scenarios:
            if scenario.key in seen:
                raise ScenarioPackError(
                    pack.path,
                    f"duplicate name: '{scenario.name}' is already defined in {seen[scenario.key]}",
                    scenario=f"'{scenario.name}'",
                    field="name",
                )
            seen[scenario.key] = pack.path


def _with_pack_tail(entry: dict, raw: object) -> dict:
    """``entry`` with the pack's ``recovery_tail_s`` in its window, unless the scenario sets its own."""
    tail = raw.get("recovery_tail_s") if isinstance(raw, dict) and "scenarios" in raw else None
    window = entry.get("window")
    if tail is None or (isinstance(window, dict) and "recovery_tail_s" in window):
        return entry
    return {**entry, "window": {**(window if isinstance(window, dict) else {}), "recovery_tail_s": tail}}


def _label(entry: object, number: int) -> str:
    name = entry.get("name") if isinstance(entry, dict) else None
    return f"#{number} '{name}'" if isinstance(name, str) and name else f"#{number}"


def validate_scenario_entry(path: Path, entry: dict, label: str) -> Scenario:
    """``entry`` (a scenario mapping as a pack writes it) as a scenario; :class:`ScenarioPackError` naming
    ``path``, ``label`` and the field otherwise (sweep specs validate each point through it too)."""
    kind = entry.get("type")
    if kind not in SCENARIO_TYPES:
        problem = "missing" if kind is None else f"unknown scenario type {kind!r}"
        raise ScenarioPackError(path, f"{problem}; expected one of {', '.join(SCENARIO_TYPES)}", scenario=label,
                                field="type")
    try:
        return SCENARIO_ADAPTER.validate_python(entry)
    except ValidationError as exc:
        error = exc.errors()[0]
        location = [str(part) for part in error["loc"][1:]]  # drop the union tag
        field = ".".join(location) if location else None
        message = error["msg"].removeprefix("Value error, ")
        if field is None and ":" in message.split(" ")[0]:
            field, message = message.split(": ", 1)
        if error["type"] == "missing":
            message = "missing (required)"
        elif error["type"] == "extra_forbidden":
            message = "unknown field"
        if error["type"] != "missing" and not isinstance(error.get("input"), dict | list):
            message = f"{message} (got {error['input']!r})"
        raise ScenarioPackError(path, message, scenario=label, field=field) from None


__all__ = [
    "Pack", "ScenarioPackError", "load_pack", "load_packs", "pack_files", "scenario_key", "validate_scenario_entry",
]
