"""The market files sensor: new and changed files only, and nothing on a first tick when nothing changed."""

from __future__ import annotations

import json
import os
from pathlib import Path

import dagster as dg
import pytest

from stress_pipeline.defs import build_definitions
from stress_pipeline.defs.market.assets import market_bars
from stress_pipeline.defs.market.checks import market_bars_quality
from stress_pipeline.defs.market.sensors import market_files_sensor
from stress_pipeline.defs.partitions import symbols_partitions
from stress_pipeline.defs.resources import StressResource

from .test_market_loaders import kline_rows, write


@pytest.fixture
def project(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    (data / "bars").mkdir(parents=True)
    (data / "symbols.yaml").write_text("defaults:\n  spread_bps: 2.0\n")
    write(data / "bars" / "BTCUSDT-1m-2024-01.csv", kline_rows(120))
    write(data / "bars" / "ETHUSDT-1m-2024-01.csv", kline_rows(120, price=2300.0))
    return data


def stress(project: Path) -> StressResource:
    return StressResource(home=str(project.parent / "home"), data_dir=str(project))


def tick(instance: dg.DagsterInstance, project: Path, cursor: str | None = None) -> dg.SensorResult:
    context = dg.build_sensor_context(instance=instance, cursor=cursor, resources={"stress": stress(project)})
    return market_files_sensor(context)


def materialize(instance: dg.DagsterInstance, project: Path, symbol: str) -> None:
    resources = {**build_definitions().resources, "stress": stress(project)}
    result = dg.materialize(
        [market_bars, market_bars_quality], partition_key=symbol, instance=instance, resources=resources,
    )  # fmt: skip
    assert result.success


def test_new_and_changed_files_add_partitions_and_request_runs(project: Path) -> None:
    with dg.instance_for_test() as instance:
        first = tick(instance, project)
        assert sorted(r.partition_key for r in first.run_requests) == ["BTCUSDT", "ETHUSDT"]
        (add,) = first.dynamic_partitions_requests
        assert sorted(add.partition_keys) == ["BTCUSDT", "ETHUSDT"]
        instance.add_dynamic_partitions(symbols_partitions.name, list(add.partition_keys))

        again = tick(instance, project, first.cursor)  # nothing changed: no run
        assert again.run_requests == [] and again.dynamic_partitions_requests == []

        write(project / "bars" / "SOLUSDT-1m-2024-01.csv", kline_rows(10, price=100.0))
        write(project / "bars" / "BTCUSDT-1m-2024-02.csv", kline_rows(10, start_ms=1_706_745_600_000))
        third = tick(instance, project, again.cursor)
        assert sorted(r.partition_key for r in third.run_requests) == ["BTCUSDT", "SOLUSDT"]
        assert list(third.dynamic_partitions_requests[0].partition_keys) == ["SOLUSDT"]
        assert set(json.loads(third.cursor)) == {"BTCUSDT", "ETHUSDT", "SOLUSDT"}


def test_first_tick_on_an_up_to_date_instance_launches_nothing(project: Path) -> None:
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(symbols_partitions.name, ["BTCUSDT", "ETHUSDT"])
        for symbol in ("BTCUSDT", "ETHUSDT"):
            materialize(instance, project, symbol)

        first = tick(instance, project)  # no cursor yet: the UI's first start
        assert first.run_requests == [] and first.dynamic_partitions_requests == []
        assert set(json.loads(first.cursor)) == {"BTCUSDT", "ETHUSDT"}

        # a file rewritten after the materialisation is a change, even on a first tick
        path = project / "bars" / "ETHUSDT-1m-2024-01.csv"
        write(path, kline_rows(121, price=2300.0))
        later = path.stat().st_mtime + 5
        os.utime(path, (later, later))
        changed = tick(instance, project)
        assert [r.partition_key for r in changed.run_requests] == ["ETHUSDT"]

        # a file added to a materialised symbol is a change too
        write(project / "bars" / "BTCUSDT-1m-2024-02.csv", kline_rows(10, start_ms=1_706_745_600_000))
        assert sorted(r.partition_key for r in tick(instance, project).run_requests) == ["BTCUSDT", "ETHUSDT"]


def test_first_tick_requests_symbols_never_materialised(project: Path) -> None:
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(symbols_partitions.name, ["BTCUSDT", "ETHUSDT"])
        materialize(instance, project, "BTCUSDT")
        first = tick(instance, project)
        assert [r.partition_key for r in first.run_requests] == ["ETHUSDT"]
        assert first.dynamic_partitions_requests == []


def test_a_file_whose_name_yields_no_symbol_is_reported_and_the_others_still_ingest(
    project: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    unnamed = write(project / "bars" / "-draft.csv", kline_rows(5))
    with dg.instance_for_test() as instance:
        result = tick(instance, project)
        assert sorted(r.partition_key for r in result.run_requests) == ["BTCUSDT", "ETHUSDT"]
    assert f"ERROR - {unnamed}: skipped, cannot tell the symbol from the file name" in capfd.readouterr().err
