"""Sweep specs: one catalog scenario swept over its parameters, strategy parameters and policy knobs.

A spec (data/sweeps/<name>.yaml) names a ``base`` scenario of the catalog and either a ``grid`` (every
combination of the listed values) or a seeded random ``sample`` (``points`` draws from a range or a
list of choices per axis); ``fixed`` sets paths to one value in every point. An axis is a dotted path
under one of three roots:

- ``scenario.<field>``: a field of the scenario as its pack writes it (``scenario.parameters.drop_pct``,
  ``scenario.seed``, ``scenario.faults.0.duration_s``: a number indexes a list);
- ``strategy.<name>``: a parameter of the strategy (``strategy.band``);
- ``policy.<path>``: a field of the trading policy (``policy.risk.safety.trip_drawdown``).

Every point is validated when the spec expands (the scenario by its type's model, the strategy by
constructing it, the policy by its model), so a bad value fails before any run, with one
:class:`SweepSpecError` naming the file, the line of the value in the YAML, and the field. A point's
partition key is ``<sweep>__<hash8>``: a digest of what the point runs (base scenario, strategy,
policy and the axis values, in sorted order), so the same spec gives the same keys whatever the
order of its axes and values.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from stress_pipeline.scenarios.model import SCENARIO_ADAPTER, Scenario, scenario_key
from stress_pipeline.scenarios.packs import ScenarioPackError, validate_scenario_entry
from stress_pipeline.trading import get_strategy
from stress_pipeline.trading.risk.policy import TradingPolicy

SWEEP_SUFFIXES = (".yaml", ".yml")
AXIS_ROOTS = ("scenario", "strategy", "policy")
#: Scenario fields a sweep may not change: the point stays the base scenario's kind, on its symbols.
FIXED_SCENARIO_FIELDS = ("name", "type", "symbols")
#: The most points one spec may expand into (a grid's product is checked before it is built).
MAX_POINTS = 10_000
Scalar = float | int | bool | str


class SweepSpecError(ValueError):
    """A sweep spec is invalid; the message names the file, the line and the field."""

    def __init__(self, path: str | Path, problem: str, *, line: int | None = None, field: str | None = None):
        self.path = str(path)
        self.line = line
        self.field = field
        self.problem = problem
        parts = [self.path]
        if line is not None:
            parts.append(f"line {line}")
        if field is not None:
            parts.append(f"field {field}")
        super().__init__(": ".join(parts) + f": {problem}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Choices(_Strict):
    choices: tuple[Scalar, ...] = Field(min_length=1)


class SampleSpec(_Strict):
    """``points`` random points; each axis is ``[low, high]`` (uniform; integers when both bounds are
    integers, inclusive) or ``{choices: [...]}``; drawn from ``seed``, axis by axis in sorted order."""

    points: int = Field(ge=1, le=MAX_POINTS)
    seed: int = Field(default=0, ge=0, le=2**32 - 1)
    axes: dict[str, tuple[int, int] | tuple[float, float] | Choices] = Field(min_length=1)


class SweepSpec(_Strict):
    sweep: str = Field(min_length=1, max_length=60, pattern=r"^[A-Za-z0-9][A-Za-z0-9 _-]*$")
    description: str = ""
    base: str = Field(min_length=1)  # a catalog scenario, by name or key
    strategy: str | None = None  # None: the run's strategy
    strategy_params: dict[str, Scalar] = Field(default_factory=dict)
    policy: str | None = None  # a policy name or file; None: the run's policy
    fixed: dict[str, Scalar] = Field(default_factory=dict)  # axis -> the one value every point takes
    grid: dict[str, tuple[Scalar, ...]] | None = None
    sample: SampleSpec | None = None

    @model_validator(mode="after")
    def _one_design(self) -> SweepSpec:
        if (self.grid is None) == (self.sample is None):
            raise ValueError("give exactly one of grid, sample")
        for axis, values in (self.grid or {}).items():
            if not values:
                raise ValueError(f"grid: {axis}: list at least one value")
        both = sorted(set(self.fixed) & set(self.grid if self.grid is not None else self.sample.axes))
        if both:
            raise ValueError(f"fixed: {', '.join(both)} also swept")
        return self

    @property
    def key(self) -> str:
        return scenario_key(self.sweep)

    @property
    def axes(self) -> tuple[str, ...]:
        return tuple(sorted(self.grid if self.grid is not None else self.sample.axes))


@dataclass(frozen=True)
class LoadedSweep:
    """A validated spec, with the file it came from and the line of each YAML node (path -> line)."""

    path: Path
    spec: SweepSpec
    lines: Mapping[tuple[str, ...], int]

    def line_of(self, *path: str) -> int | None:
        """The line of the deepest node of ``path`` that the file has."""
        for end in range(len(path), -1, -1):
            if path[:end] in self.lines:
                return self.lines[path[:end]]
        return None

    def error(self, problem: str, *path: str, field: str | None = None) -> SweepSpecError:
        return SweepSpecError(self.path, problem, line=self.line_of(*path), field=field or ".".join(path) or None)


@dataclass(frozen=True)
class SweepPoint:
    """One point of a sweep: the scenario it runs and what it changes in the system under test."""

    key: str
    sweep: str
    base: str  # the base scenario's key
    values: Mapping[str, Scalar]  # axis -> value
    scenario: Scenario
    strategy: str | None
    strategy_params: Mapping[str, Scalar]
    policy: str | None
    policy_overrides: Mapping[str, Scalar]  # dotted policy path -> value

    def sim_config(self, base):
        """``base`` (a ``SimConfig``) with this point's strategy and strategy parameters."""
        params = {**(base.strategy_params if self.strategy is None else {}), **self.strategy_params}
        return base.model_copy(update={"strategy": self.strategy or base.strategy, "strategy_params": params})

    def trading_policy(self, base: TradingPolicy) -> TradingPolicy:
        """``base`` with this point's policy knobs set (validated by the policy's model)."""
        return apply_overrides(base, self.policy_overrides)

    def record(self) -> dict[str, object]:
        """The point as a flat row (JSON strings for the nested parts), read back by :func:`point_from_record`."""
        return {
            "key": self.key,
            "sweep": self.sweep,
            "base": self.base,
            "values": json.dumps(dict(self.values), sort_keys=True),
            "scenario": SCENARIO_ADAPTER.dump_json(self.scenario).decode(),
            "strategy": self.strategy or "",
            "strategy_params": json.dumps(dict(self.strategy_params), sort_keys=True),
            "policy": self.policy or "",
            "policy_overrides": json.dumps(dict(self.policy_overrides), sort_keys=True),
        }


def point_from_record(row: Mapping[str, object]) -> SweepPoint:
    return SweepPoint(
        key=str(row["key"]),
        sweep=str(row["sweep"]),
        base=str(row["base"]),
        values=json.loads(str(row["values"])),
        scenario=SCENARIO_ADAPTER.validate_json(str(row["scenario"])),
        strategy=str(row["strategy"]) or None,
        strategy_params=json.loads(str(row["strategy_params"])),
        policy=str(row["policy"]) or None,
        policy_overrides=json.loads(str(row["policy_overrides"])),
    )


# ------------------------------------------------------------------------------------------ loading


def sweep_files(directory: str | Path) -> list[Path]:
    """Spec files in ``directory`` (not recursive), sorted by name; hidden files are skipped."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.suffix in SWEEP_SUFFIXES and not p.name.startswith("."))


def load_sweep(path: str | Path) -> LoadedSweep:
    """Read and validate the structure of one spec; :class:`SweepSpecError` on the first problem."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise SweepSpecError(path, f"cannot be read: {exc.strerror or exc}") from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        raise SweepSpecError(path, f"not valid YAML: {problem}", line=None if mark is None else mark.line + 1) from None
    lines = node_lines(node)
    if not isinstance(raw, dict):
        raise SweepSpecError(path, "expected a mapping with sweep, base and a grid or a sample", line=1)
    if isinstance(raw.get("sample"), dict) and isinstance(raw["sample"].get("axes"), dict):
        raw = {**raw, "sample": {**raw["sample"], "axes": _choices(raw["sample"]["axes"])}}
    try:
        spec = SweepSpec.model_validate(raw)
    except ValidationError as exc:
        errors = exc.errors()
        # A misspelt key is the likelier mistake than the missing one it was meant to be: name it first.
        error = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
        where = [str(part) for part in error["loc"] if not str(part).startswith(("tuple[", "Choices", "function-"))]
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "missing":
            message = "missing (required)"
        elif error["type"] == "extra_forbidden":
            message = "unknown field"
        elif not isinstance(error.get("input"), dict | list):
            message = f"{message} (got {error['input']!r})"
        loaded = LoadedSweep(path, SweepSpec.model_construct(), lines)
        raise loaded.error(message, *where) from None
    loaded = LoadedSweep(path, spec, lines)
    section = "grid" if spec.grid is not None else "sample"
    for axis in (*spec.axes, *sorted(spec.fixed)):
        root, _, rest = axis.partition(".")
        where = ("fixed", axis) if axis in spec.fixed else (section, axis) if section == "grid" else (
            section, "axes", axis)
        if root not in AXIS_ROOTS or not rest:
            raise loaded.error(f"an axis is {' | '.join(r + '.<field>' for r in AXIS_ROOTS)}", *where, field=axis)
        if root == "scenario" and rest.split(".")[0] in FIXED_SCENARIO_FIELDS:
            raise loaded.error(f"a sweep keeps the base scenario's {rest.split('.')[0]}", *where, field=axis)
        if root == "strategy" and "." in rest:
            raise loaded.error("a strategy axis is strategy.<parameter>", *where, field=axis)
        bounds = spec.sample.axes.get(axis) if spec.sample is not None else None  # fixed paths have none
        if isinstance(bounds, tuple) and not (math.isfinite(bounds[0]) and bounds[0] <= bounds[1] < math.inf):
            raise loaded.error(f"expected [low, high] with low <= high, finite (got {list(bounds)})", *where)
    return loaded


def _choices(axes: dict) -> dict:
    """Sample axes as the model reads them: a list is a range, a mapping a set of choices."""
    return {axis: tuple(v) if isinstance(v, list) else v for axis, v in axes.items()}


def node_lines(node: yaml.Node | None, path: tuple[str, ...] = ()) -> dict[tuple[str, ...], int]:
    """Every node's 1-based line, by its path of mapping keys and list indices (as strings)."""
    lines: dict[tuple[str, ...], int] = {}
    if node is None:
        return lines
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            child = (*path, str(key.value))
            lines.update(node_lines(value, child))
            lines[child] = key.start_mark.line + 1  # a block value starts on the next line: name the key's
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines.update(node_lines(item, (*path, str(index))))
    return lines


# ---------------------------------------------------------------------------------------- expansion


def expand_sweep(
    loaded: LoadedSweep, scenarios: Iterable[Scenario], *, strategy: str, policy: TradingPolicy
) -> list[SweepPoint]:
    """Every point of the spec, validated, in a stable order (sorted by key).

    ``scenarios``: the catalog (the base is found by name or key); ``strategy``: the run's strategy,
    used when the spec names none; ``policy``: the policy the spec's knobs are applied to (the spec's
    ``policy``, loaded by the caller, else the run's)."""
    spec = loaded.spec
    base = _find_base(loaded, scenarios)
    assignments = [
        ({**values, **spec.fixed}, {**where, **{a: ("fixed", a) for a in spec.fixed}})
        for values, where in _assignments(loaded)
    ]
    entry = SCENARIO_ADAPTER.dump_python(base, mode="json")
    points: dict[str, SweepPoint] = {}
    for number, (values, where) in enumerate(assignments):
        scenario_values = {a.removeprefix("scenario."): v for a, v in values.items() if a.startswith("scenario.")}
        strategy_values = {a.removeprefix("strategy."): v for a, v in values.items() if a.startswith("strategy.")}
        policy_values = {a.removeprefix("policy."): v for a, v in values.items() if a.startswith("policy.")}
        key = point_key(spec, base.key, values)
        name = f"{base.name} {key.rsplit('__', 1)[1]}"
        try:
            point_entry = _set_paths({**entry, "name": name}, scenario_values)
        except (KeyError, IndexError, TypeError) as err:
            axis = next(iter(scenario_values))
            raise loaded.error(f"the base scenario has no such field ({err})", *where[f"scenario.{axis}"],
                               field=f"scenario.{axis}") from None  # fmt: skip
        try:
            scenario = validate_scenario_entry(loaded.path, point_entry, f"point {number + 1}")
        except ScenarioPackError as err:
            axis = f"scenario.{err.field}" if err.field else None
            raise loaded.error(err.problem, *where.get(axis, ("base",)), field=axis or "base") from None
        params = {**spec.strategy_params, **strategy_values}
        try:
            get_strategy(spec.strategy or strategy, **params)
        except (ValueError, TypeError) as err:
            axis = next((a for a in strategy_values if a in str(err)), None)
            path = where[f"strategy.{axis}"] if axis else ("strategy_params",)
            raise loaded.error(str(err), *path, field=f"strategy.{axis}" if axis else "strategy_params") from None
        try:
            apply_overrides(policy, policy_values)
        except PolicyOverrideError as err:
            raise loaded.error(err.problem, *where[f"policy.{err.axis}"], field=f"policy.{err.axis}") from None
        points[key] = SweepPoint(
            key=key, sweep=spec.key, base=base.key, values=values, scenario=scenario, strategy=spec.strategy,
            strategy_params=params, policy=spec.policy, policy_overrides=policy_values,
        )  # fmt: skip
    return [points[key] for key in sorted(points)]


def point_key(spec: SweepSpec, base_key: str, values: Mapping[str, Scalar]) -> str:
    """``<sweep>__<hash8>`` of what the point runs; independent of the order of axes and values."""
    identity = {
        "base": base_key,
        "strategy": spec.strategy,
        "strategy_params": {k: _canonical(v) for k, v in spec.strategy_params.items()},
        "policy": spec.policy,
        "values": {k: _canonical(v) for k, v in values.items()},
    }
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:8]
    return f"{spec.key}__{digest}"


def _canonical(value: Scalar) -> Scalar:
    """Numbers by value (2 and 2.0 are one point); other scalars as they are."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return repr(float(value))
    return value


def _find_base(loaded: LoadedSweep, scenarios: Iterable[Scenario]) -> Scenario:
    catalog = list(scenarios)
    wanted = loaded.spec.base
    for scenario in catalog:
        if wanted in (scenario.name, scenario.key) or scenario_key(wanted) == scenario.key:
            return scenario
    known = ", ".join(s.key for s in catalog) or "none"
    raise loaded.error(f"no scenario {wanted!r} in the catalog (have {known})", "base")


def _assignments(loaded: LoadedSweep) -> list[tuple[dict[str, Scalar], dict[str, tuple[str, ...]]]]:
    """Each point's axis values, with the YAML path of each value (for the line of an error)."""
    spec = loaded.spec
    axes = spec.axes
    if spec.grid is not None:
        size = math.prod(len(spec.grid[a]) for a in axes)
        if size > MAX_POINTS:
            raise loaded.error(f"{size} points, more than {MAX_POINTS}: split the sweep", "grid")
        out = []
        for combo in itertools.product(*(range(len(spec.grid[a])) for a in axes)):
            values = {a: spec.grid[a][i] for a, i in zip(axes, combo, strict=True)}
            out.append((values, {a: ("grid", a, str(i)) for a, i in zip(axes, combo, strict=True)}))
        return out
    sample = spec.sample
    rng = np.random.default_rng(sample.seed)
    columns: dict[str, list[Scalar]] = {}
    for axis in axes:
        bounds = sample.axes[axis]
        if isinstance(bounds, Choices):
            columns[axis] = [bounds.choices[i] for i in rng.integers(0, len(bounds.choices), sample.points)]
        elif all(isinstance(b, int) for b in bounds):
            columns[axis] = [int(v) for v in rng.integers(int(bounds[0]), int(bounds[1]) + 1, sample.points)]
        else:
            columns[axis] = [float(v) for v in rng.uniform(bounds[0], bounds[1], sample.points)]
    where = {a: ("sample", "axes", a) for a in axes}
    return [({a: columns[a][i] for a in axes}, where) for i in range(sample.points)]


def _set_paths(entry: dict, values: Mapping[str, Scalar]) -> dict:
    """A deep copy of ``entry`` with each dotted path set (a number indexes a list)."""
    out = json.loads(json.dumps(entry))
    for path, value in values.items():
        parts = path.split(".")
        node = out
        for part in parts[:-1]:
            node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
        if isinstance(node, list):
            node[int(parts[-1])] = value
        else:
            node[parts[-1]] = value
    return out


class PolicyOverrideError(ValueError):
    def __init__(self, axis: str, problem: str):
        self.axis = axis
        self.problem = problem
        super().__init__(f"policy.{axis}: {problem}")


def apply_overrides(policy: TradingPolicy, overrides: Mapping[str, Scalar]) -> TradingPolicy:
    """``policy`` with each dotted path set; :class:`PolicyOverrideError` naming the path otherwise."""
    if not overrides:
        return policy
    data = policy.model_dump(mode="json")
    for path in overrides:
        node = data
        for part in path.split(".")[:-1]:
            if not isinstance(node, dict) or part not in node:
                raise PolicyOverrideError(path, "the policy has no such field")
            node = node[part]
        if not isinstance(node, dict) or path.split(".")[-1] not in node:
            raise PolicyOverrideError(path, "the policy has no such field")
    data = _set_paths(data, overrides)
    try:
        return TradingPolicy.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error["loc"])
        axis = where if where in overrides else next(
            (a for a in overrides if where and a.startswith(where)), next(iter(overrides))
        )
        message = error["msg"].removeprefix("Value error, ")
        raise PolicyOverrideError(axis, f"{message} (got {overrides[axis]!r})") from None
