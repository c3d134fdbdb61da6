"""Results through the graph: the storage paths, the result file, and both IO managers in real runs."""

from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stress_pipeline.defs.io_manager import (
    NotMaterialisedError,
    PartitionValues,
    ReadCache,
    parquet_io_manager,
    result_io_manager,
)
from stress_pipeline.defs.resources import StressResource
from stress_pipeline.parquet_store import read_parquet, write_parquet_atomic
from stress_pipeline.paths import PartitionKeyError, StoragePaths
from stress_pipeline.simulation.result import SimResult
from stress_pipeline.simulation.storage import ResultFileError, read_result, write_result


def _result(scenario: str = "s", pnl: float = 12.5, rows: int = 3) -> SimResult:
    ts = pd.date_range("2024-01-01", periods=rows, freq="1min", tz="UTC", name="ts")
    equity = pd.DataFrame({"equity": np.linspace(100.0, 100.0 + pnl, rows), "drawdown": 0.0}, index=ts)
    fills = pd.DataFrame({"ts": ts, "symbol": ["BTCUSDT"] * rows, "qty": np.arange(rows, dtype=float)})
    positions = pd.DataFrame({"BTCUSDT": np.arange(rows, dtype=float)}, index=ts)
    return SimResult(
        kind="paper", scenario_name=scenario, trades=pd.DataFrame({"pnl": [pnl]}), fills=fills, equity=equity,
        metrics={"total_pnl": pnl, "total_trades": 1}, events=pd.DataFrame({"event_id": [1, 2], "kind": ["a", "b"]}),
        details={"positions": positions, "policy": "default", "symbols": ("BTCUSDT",)},
    )  # fmt: skip


def test_paths_are_built_in_one_place_and_refuse_keys_that_cannot_name_a_file(tmp_path: Path) -> None:
    paths = StoragePaths(tmp_path)
    assert paths.asset_file(["market_bars"], "BTCUSDT") == tmp_path / "storage" / "market_bars" / "BTCUSDT.parquet"
    assert paths.asset_file(["scenario_catalog"], None) == tmp_path / "storage" / "scenario_catalog.parquet"
    assert paths.result_file(["paper_results"], "x") == tmp_path / "storage" / "paper_results" / "x.simresult"
    assert paths.buffer_dir("run-1") == tmp_path / "buffers" / "run-1"
    for bad in ("", ".", "..", "a/b", "a\\b"):
        with pytest.raises(PartitionKeyError, match="cannot name a file"):
            paths.asset_file(["x"], bad)


@settings(max_examples=25, deadline=None)
@given(pnl=st.floats(-1e6, 1e6, allow_nan=False), rows=st.integers(1, 50))
def test_a_result_reads_back_exactly(tmp_path_factory: pytest.TempPathFactory, pnl: float, rows: int) -> None:
    path = tmp_path_factory.mktemp("results") / "r.simresult"
    original = _result(pnl=pnl, rows=rows)
    back = read_result(write_result(original, path))
    assert back.kind == original.kind and back.metrics == original.metrics
    pd.testing.assert_frame_equal(back.equity, original.equity, check_freq=False)
    pd.testing.assert_frame_equal(back.fills, original.fills)
    pd.testing.assert_frame_equal(back.events, original.events)
    pd.testing.assert_frame_equal(back.details["positions"], original.details["positions"], check_freq=False)
    assert back.details["symbols"] == ["BTCUSDT"] and back.details["policy"] == "default"


def test_a_failed_write_keeps_the_last_good_result(tmp_path: Path) -> None:
    path = tmp_path / "r.simresult"
    write_result(_result(pnl=1.0), path)
    broken = _result(pnl=2.0)
    broken.details["bad"] = pd.DataFrame({"x": [object()]})  # Arrow cannot store it
    with pytest.raises(Exception):  # noqa: B017 - whatever Arrow raises, the old file must survive
        write_result(broken, path)
    assert read_result(path).metrics["total_pnl"] == 1.0
    assert [p.name for p in tmp_path.iterdir()] == ["r.simresult"]  # no temporary file left behind


def test_a_file_that_is_not_a_result_is_named(tmp_path: Path) -> None:
    path = tmp_path / "r.simresult"
    path.write_bytes(b"not a zip")
    with pytest.raises(ResultFileError, match=r"r\.simresult: not a simulation result"):
        read_result(path)
    with pytest.raises(FileNotFoundError, match="no simulation result"):
        read_result(tmp_path / "missing.simresult")


def test_partition_values_read_lazily_and_name_what_is_missing() -> None:
    reads: list[str] = []

    def read(key: str) -> str:
        reads.append(key)
        if key == "gone":
            raise NotMaterialisedError("asset[gone] has not been materialised yet")
        return key.upper()

    values = PartitionValues("asset", ["a", "b", "gone"], read)
    assert list(values) == ["a", "b", "gone"] and len(values) == 3 and "b" in values and "c" not in values
    assert reads == []  # nothing read by listing or membership
    assert values["a"] == "A" and values["a"] == "A" and reads == ["a"]  # read once
    with pytest.raises(NotMaterialisedError, match=r"asset\[gone\]"):
        values["gone"]
    with pytest.raises(KeyError, match="'c' is not an input"):
        values["c"]
    with pytest.raises(ValueError, match="expected one partition, got 3"):
        values.only()


PARTS = dg.StaticPartitionsDefinition(["p1", "p2", "p3"])


@dg.asset(partitions_def=PARTS, io_manager_key="result_io_manager", backfill_policy=dg.BackfillPolicy.single_run())
def sims(context: dg.AssetExecutionContext) -> dict[str, SimResult]:
    return {key: _result(key, pnl=float(len(key))) for key in context.partition_keys}


@dg.asset(partitions_def=PARTS, io_manager_key="parquet_io_manager", backfill_policy=dg.BackfillPolicy.single_run())
def summary(context: dg.AssetExecutionContext, sims: PartitionValues) -> dict[str, pd.DataFrame]:
    return {key: pd.DataFrame({"scenario": [sims[key].scenario_name]}) for key in context.partition_keys}


@dg.asset(io_manager_key="parquet_io_manager")
def everything(summary: PartitionValues) -> pd.DataFrame:
    return pd.concat([summary[key] for key in summary], ignore_index=True)


def test_results_flow_through_the_graph_and_the_configured_home(tmp_path: Path) -> None:
    resources = {
        "stress": StressResource(home=str(tmp_path / "default-home")),
        "parquet_io_manager": parquet_io_manager,
        "result_io_manager": result_io_manager,
    }
    configured = tmp_path / "configured-home"
    run_config = {"resources": {"stress": {"config": {"home": str(configured)}}}}
    with dg.instance_for_test() as instance:
        for key in PARTS.get_partition_keys():
            result = dg.materialize(
                [sims, summary], partition_key=key, instance=instance, resources=resources, run_config=run_config
            )
            assert result.success
        result = dg.materialize(
            [sims, summary, everything], selection=[everything], instance=instance, resources=resources,
            run_config=run_config,
        )  # fmt: skip
        assert result.success
    stored = pd.read_parquet(configured / "storage" / "everything.parquet")
    assert stored["scenario"].tolist() == ["p1", "p2", "p3"]
    assert read_result(configured / "storage" / "sims" / "p2.simresult").metrics["total_pnl"] == 2.0
    assert not (tmp_path / "default-home").exists()  # the launchpad's home wins, for the IO managers too
    files = sorted(p.relative_to(configured).as_posix() for p in configured.rglob("*") if p.is_file())
    assert files == [
        "storage/everything.parquet",
        *(f"storage/sims/p{i}.simresult" for i in (1, 2, 3)),
        *(f"storage/summary/p{i}.parquet" for i in (1, 2, 3)),
    ]  # one layout, nothing beside it


def test_an_input_that_was_never_materialised_fails_naming_asset_and_partition(tmp_path: Path) -> None:
    resources = {
        "stress": StressResource(home=str(tmp_path)),
        "parquet_io_manager": parquet_io_manager,
        "result_io_manager": result_io_manager,
    }
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [sims, summary], selection=[summary], partition_key="p1", instance=instance, resources=resources,
            raise_on_error=False,
        )  # fmt: skip
        assert not result.success
        (failure,) = result.get_step_failure_events()
        message = failure.step_failure_data.error.cause.message
        assert "sims[p1] has not been materialised yet" in message


def test_a_file_read_twice_is_decoded_once_and_each_reader_gets_its_own_copy(tmp_path: Path) -> None:
    cache, path = ReadCache(), tmp_path / "bars.parquet"
    write_parquet_atomic(pd.DataFrame({"close": [1.0, 2.0, 3.0]}), path)
    first = cache.load(path, read_parquet)
    first.loc[0, "close"] = -99.0  # a reader changing its copy
    second = cache.load(path, read_parquet)
    assert (cache.hits, cache.misses) == (1, 1) and second["close"].tolist() == [1.0, 2.0, 3.0]
    write_parquet_atomic(pd.DataFrame({"close": [4.0]}), path)  # replaced by another writer: read again
    assert cache.load(path, read_parquet)["close"].tolist() == [4.0] and cache.misses == 2
    result_path = tmp_path / "r.simresult"
    write_result(_result(), result_path)
    mine = cache.load(result_path, read_result)
    mine.details["positions"].iloc[0, 0] = -1.0
    mine.equity.iloc[0, 0], mine.metrics["total_pnl"] = -1.0, -1.0
    again = cache.load(result_path, read_result)
    assert again.details["positions"].iloc[0, 0] == 0.0 and again.equity.iloc[0, 0] == 100.0
    assert again.metrics["total_pnl"] == 12.5 and cache.hits == 2


@settings(max_examples=25, deadline=None)
@given(sizes=st.lists(st.integers(min_value=1, max_value=40), min_size=1, max_size=12))
def test_the_read_cache_stays_within_its_budget_and_always_returns_the_file(
    tmp_path_factory: pytest.TempPathFactory, sizes: list[int]
) -> None:
    root = tmp_path_factory.mktemp("cache")
    cache = ReadCache(max_bytes=8 * 60)  # sixty float64 values
    for index, rows in enumerate(sizes):
        path = root / f"{index % 4}.parquet"
        cache.forget(path)  # as the IO managers do before they write
        write_parquet_atomic(pd.DataFrame({"x": np.arange(rows, dtype=float) + index}), path)
        loaded = cache.load(path, read_parquet)
        assert loaded["x"].tolist() == list(np.arange(rows, dtype=float) + index)  # never a stale value
        assert cache._bytes <= cache.max_bytes
