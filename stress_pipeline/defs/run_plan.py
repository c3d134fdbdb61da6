"""How the CLI's runner cuts a selection into runs: groups of one partitions definition in dependency
order, the sets of beside-tagged assets that run in processes of their own, contiguous spans of
partition keys (a run covers a range), and the labels of each."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import dagster as dg


def groups_of(
    graph, keys: Sequence[dg.AssetKey], *, split: Callable[[dg.AssetKey], bool] = lambda key: False
) -> list[tuple[list[dg.AssetKey], dg.PartitionsDefinition | None]]:
    """Split ``keys`` (in dependency order) into groups of one partitions definition each.

    A key joins the first group, at or after the groups of its parents, that has its partitions
    definition (and the same ``split`` answer); otherwise it starts a new group. Every group then runs
    after the groups it reads from.
    """
    selected = set(keys)
    groups: list[tuple[list[dg.AssetKey], dg.PartitionsDefinition | None]] = []
    names: list[str] = []
    group_of: dict[dg.AssetKey, int] = {}
    for key in keys:
        partitions_def = graph.get(key).partitions_def
        name = partitions_name(partitions_def) + ("|split" if split(key) else "")
        lowest = max((group_of[p] for p in graph.get(key).parent_keys if p in selected), default=0)
        index = next((i for i in range(lowest, len(groups)) if names[i] == name), None)
        if index is None:
            groups.append(([], partitions_def))
            names.append(name)
            index = len(groups) - 1
        groups[index][0].append(key)
        group_of[key] = index
    return groups


def lanes_of(
    graph, keys: Sequence[dg.AssetKey], step_of: Callable[[dg.AssetKey], str]
) -> list[list[dg.AssetKey]]:
    """``keys`` (in dependency order) in sets that neither read from each other nor share a step
    (``step_of``: the keys of one multi-asset are one step): each set runs in a process of its own."""
    lanes: list[list[dg.AssetKey]] = []
    for key in keys:
        parents = set(graph.get(key).parent_keys)
        joined = [lane for lane in lanes if parents.intersection(lane) or any(step_of(k) == step_of(key) for k in lane)]
        lane = [k for lane in joined for k in lane] + [key]
        lanes = [other for other in lanes if other not in joined] + [lane]
    return lanes


def is_dynamic(partitions_def: dg.PartitionsDefinition | None) -> bool:
    return isinstance(partitions_def, dg.DynamicPartitionsDefinition)


def spans(every: Sequence[str], chosen: Sequence[str]) -> list[list[str]]:
    """``chosen`` cut into runs of keys that are contiguous in ``every``."""
    position = {key: i for i, key in enumerate(every)}
    spans: list[list[str]] = []
    for key in sorted(chosen, key=position.__getitem__):
        if spans and position[spans[-1][-1]] == position[key] - 1:
            spans[-1].append(key)
        else:
            spans.append([key])
    return spans


def missing_partitions(
    instance: dg.DagsterInstance, partitions_def: dg.PartitionsDefinition | None, wanted: Sequence[str] | None
) -> list[str]:
    if partitions_def is None or wanted is None:
        return []
    every = set(partitions_def.get_partition_keys(dynamic_partitions_store=instance))
    return [key for key in wanted if key not in every]


def partition_label(partitions: list[str | None]) -> str:
    if partitions == [None]:
        return ""
    if len(partitions) == 1:
        return f" [{partitions[0]}]"
    return f" [{len(partitions)} partitions, one run]"


def partitions_name(partitions_def: dg.PartitionsDefinition | None) -> str:
    if partitions_def is None:
        return ""
    if isinstance(partitions_def, dg.DynamicPartitionsDefinition):
        return f"dynamic:{partitions_def.name}"
    return repr(partitions_def)


def dynamic_name(partitions_def: dg.PartitionsDefinition) -> str | None:
    return partitions_def.name if isinstance(partitions_def, dg.DynamicPartitionsDefinition) else None
