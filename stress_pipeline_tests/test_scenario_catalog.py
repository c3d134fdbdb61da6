"""Which scenario partitions follow the packs on disk: added with the catalog, removed only with their pack."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from stress_pipeline.scenarios.catalog import BASELINE_KEY, Catalog, sync_partitions
from stress_pipeline.scenarios.model import SCENARIO_ADAPTER
from stress_pipeline.scenarios.packs import Pack, ScenarioPackError

PACK_NAMES = ("a.yaml", "b.yaml", "c.yaml", "d.yaml")
KEYS = tuple(f"k{i}" for i in range(8))


def scenario(key: str):
    return SCENARIO_ADAPTER.validate_python(
        {
            "name": key,
            "type": "historical_replay",
            "severity": "minor",
            "symbols": ["BTCUSDT"],
            "parameters": {"start": "2024-01-01T00:00:00Z", "end": "2024-01-02T00:00:00Z"},
        }
    )


def catalog(valid: dict[str, list[str]], rejected: list[str]) -> Catalog:
    packs = tuple(Pack(Path("/packs") / name, name, tuple(scenario(k) for k in keys)) for name, keys in valid.items())
    errors = tuple(ScenarioPackError(Path("/packs") / name, "bad") for name in rejected)
    return Catalog(packs=packs, errors=errors)


@st.composite
def situations(draw):
    on_disk = draw(st.lists(st.sampled_from(PACK_NAMES), unique=True))
    rejected = draw(st.lists(st.sampled_from(on_disk), unique=True)) if on_disk else []
    valid_names = [name for name in on_disk if name not in rejected]
    keys = draw(st.permutations(KEYS))
    cuts = sorted(draw(st.lists(st.integers(0, len(KEYS)), min_size=len(valid_names), max_size=len(valid_names))))
    bounds = [0, *cuts]
    valid = {name: list(keys[bounds[i]:bounds[i + 1]]) for i, name in enumerate(valid_names)}
    folder_missing = draw(st.booleans()) and not on_disk
    existing = draw(st.lists(st.sampled_from((BASELINE_KEY, *KEYS)), unique=True))
    owners = draw(st.dictionaries(st.sampled_from(KEYS), st.sampled_from(PACK_NAMES)))
    return catalog(valid, rejected), (None if folder_missing else on_disk), existing, owners, valid, rejected


@settings(max_examples=300, deadline=None)
@given(situations())
def test_sync_adds_the_catalog_and_removes_a_key_only_with_its_pack(situation) -> None:
    cat, on_disk, existing, owners, valid, rejected = situation
    sync = sync_partitions(existing, owners, cat, on_disk)
    wanted = [BASELINE_KEY, *(s.key for s in cat.scenarios)]

    assert list(sync.add) == [key for key in wanted if key not in existing]
    gone = set(existing) - set(wanted)
    assert set(sync.remove) | set(sync.keep) == gone and not set(sync.remove) & set(sync.keep)
    for key in gone:
        owner = owners.get(key)
        removable = (
            on_disk is not None and owner is not None and (owner not in on_disk or owner in valid)
        )  # its pack is gone, or was read and does not define it
        assert (key in sync.remove) == removable, (key, owner, on_disk, rejected)
    assert BASELINE_KEY not in sync.remove
    for pack, keys in valid.items():
        assert all(sync.owners[key] == pack for key in keys)
    assert all(sync.owners[key] == owners[key] for key in sync.keep if key in owners)

    after = [key for key in existing if key not in sync.remove] + list(sync.add)
    again = sync_partitions(after, sync.owners, cat, on_disk)
    assert again.add == () and dict(again.remove) == {} and set(again.keep) == set(sync.keep)


def test_sync_examples_name_the_reason() -> None:
    cat = catalog({"a.yaml": ["k0"]}, ["b.yaml"])
    owners = {"k1": "a.yaml", "k2": "b.yaml", "k3": "gone.yaml"}
    sync = sync_partitions(["baseline", "k1", "k2", "k3", "k4"], owners, cat, ["a.yaml", "b.yaml"])
    assert sync.add == ("k0",)
    assert dict(sync.remove) == {"k1": "a.yaml no longer defines it", "k3": "its pack gone.yaml was removed"}
    assert dict(sync.keep) == {"k2": "its pack b.yaml is rejected", "k4": "no record of the pack that defined it"}
    assert dict(sync.owners) == {"k0": "a.yaml", "k2": "b.yaml"}

    empty = sync_partitions(["baseline", "k1"], owners, Catalog((), ()), None)
    assert dict(empty.keep) == {"k1": "the stress pack folder does not exist"} and not empty.remove
