"""Blocking means blocking: bad bars never replace the last good ones, and nothing downstream of a
failed symbol runs (real Dagster runs on a real instance, real files)."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from stress_pipeline.defs import build_definitions
from stress_pipeline.defs.market.assets import failed_symbols, market_bars
from stress_pipeline.defs.market.checks import market_bars_quality
from stress_pipeline.defs.partitions import symbols_partitions
from stress_pipeline.defs.runner import register_symbols, resolve_selection, run_selection
from stress_pipeline.market.loaders import BINANCE_COLUMNS, load_bars_with_sources
from stress_pipeline.market.quality import validate_bars
from stress_pipeline.market.sources import quality_failure_message
from stress_pipeline.settings import get_settings

from .test_market_loaders import kline_rows, write

PACK = """
scenarios:
  - name: Eth Only
    type: spread_explosion
    symbols: [ETHUSDT]
    parameters: {spread_mult: 4, duration_bars: 5}
  - name: Btc Crash
    type: flash_crash
    symbols: [BTCUSDT]
    parameters: {drop_pct: 0.2, duration_bars: 3, recovery_bars: 5}
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    data = tmp_path / "data"
    (data / "bars").mkdir(parents=True)
    (data / "stress_packs").mkdir()
    (data / "stress_packs" / "pack.yaml").write_text(PACK)
    (data / "symbols.yaml").write_text("defaults:\n  spread_bps: 2.0\n")
    write(data / "bars" / "BTCUSDT-1m-2024-01.csv", kline_rows(300))
    write(data / "bars" / "ETHUSDT-1m-2024-01.csv", kline_rows(300, price=2300.0))
    monkeypatch.setenv("STRESS_DATA_DIR", str(data))
    monkeypatch.setenv("STRESS_HOME", str(tmp_path / "home"))
    return data


def corrupt(path: Path, line: int) -> None:
    """Line ``line`` (1-based) gets a high below its low."""
    lines = path.read_text().splitlines()
    fields = lines[line - 1].split(",")
    fields[2] = "1.0"
    lines[line - 1] = ",".join(fields)
    path.write_text("\n".join(lines) + "\n")


def test_bad_bars_fail_before_promotion_naming_file_and_line(project: Path) -> None:
    defs = build_definitions()
    bad = project / "bars" / "BTCUSDT-1m-2024-01.csv"
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(symbols_partitions.name, ["BTCUSDT"])
        run = dict(partition_key="BTCUSDT", instance=instance, resources=defs.resources, raise_on_error=False)
        assert dg.materialize([market_bars, market_bars_quality], **run).success
        stored = get_settings().storage_dir / "market_bars" / "BTCUSDT.parquet"
        before = stored.read_bytes()

        corrupt(bad, 42)
        result = dg.materialize([market_bars, market_bars_quality], **run)
        assert not result.success
        (failure,) = result.get_step_failure_events()
        message = failure.step_failure_data.user_failure_data.description
        assert message.startswith("BTCUSDT: bar quality failed, nothing was written (the last good bars stay):")
        assert "high_ge_open: 1 row(s)" in message and "high_ge_close: 1 row(s)" in message
        assert f"    {bad}: line 42" in message.splitlines()
        assert stored.read_bytes() == before  # the last good bars stay
        assert result.get_asset_materialization_events() == []
        assert failed_symbols(instance, ["BTCUSDT", "NOPE"]) == ["BTCUSDT"]

        bad.write_text("\n".join(kline_rows(300)) + "\n")  # fixed: materialises again and clears the failure
        assert dg.materialize([market_bars, market_bars_quality], **run).success
        assert failed_symbols(instance, ["BTCUSDT"]) == []


def test_quality_failure_names_lines_across_files_after_sort_and_dedup(project: Path) -> None:
    defs = build_definitions()
    rows = kline_rows(300)
    first = project / "bars" / "BTCUSDT-1m-2024-01.csv"
    write(first, rows[150:])  # the later half first on disk, so the load sorts
    second = write(project / "bars" / "BTCUSDT-1m-2024-01-early.csv", [",".join(BINANCE_COLUMNS), *rows[:151]])
    corrupt(second, 11)  # header + row 9 -> bar 9 of the sorted frame
    corrupt(first, 100)  # bar 249
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(symbols_partitions.name, ["BTCUSDT"])
        result = dg.materialize(
            [market_bars], partition_key="BTCUSDT", instance=instance, resources=defs.resources, raise_on_error=False
        )
        (failure,) = result.get_step_failure_events()
        lines = failure.step_failure_data.user_failure_data.description.splitlines()
        assert "high_ge_open: 2 row(s)" in "\n".join(lines)
        assert f"    {second}: line 11" in lines and f"    {first}: line 100" in lines


def test_nothing_downstream_of_a_failed_symbol_runs(project: Path) -> None:
    defs = build_definitions()
    everything = resolve_selection(defs, "group:market or group:scenarios")
    with dg.instance_for_test() as instance:
        register_symbols(instance, get_settings())
        first = {(o.asset, o.partition): o.status for o in run_selection(defs, instance, everything)}
        assert set(first.values()) == {"materialized"}, first
        stressed = get_settings().storage_dir / "stressed_bars"
        before = {p.name: p.read_bytes() for p in stressed.iterdir()}

        corrupt(project / "bars" / "BTCUSDT-1m-2024-01.csv", 7)
        outcomes = {(o.asset, o.partition): o for o in run_selection(defs, instance, everything)}
        assert outcomes[("market_bars", "BTCUSDT")].status == "failed"
        assert outcomes[("market_bars", "ETHUSDT")].status == "materialized"
        downstream = [o for (asset, _), o in outcomes.items() if asset == "stressed_bars"]
        assert downstream and all(o.status != "materialized" for o in downstream)
        assert {p.name: p.read_bytes() for p in stressed.iterdir()} == before

        # A later launch of the scenarios alone (as from the UI or a backfill) is refused too.
        alone = run_selection(defs, instance, resolve_selection(defs, "key:stressed_bars"))
        assert {o.status for o in alone} == {"failed"}
        assert "the latest market_bars of BTCUSDT (scenarios " in alone[0].error
        assert "btc_crash" in alone[0].error and "eth_only" not in alone[0].error.split("BTCUSDT")[0]
        assert pd.read_parquet(get_settings().storage_dir / "market_bars" / "BTCUSDT.parquet")["high"].min() > 1.0


def test_the_probe_s_bad_bars_are_each_named_by_file_and_line(tmp_path: Path) -> None:
    """A negative price and a repeated timestamp with other values: each failed check lists its lines."""
    rows = kline_rows(200)
    fields = rows[30].split(",")
    fields[3] = "-5"  # low
    rows[30] = ",".join(fields)
    fields = rows[100].split(",")
    fields[0], fields[4] = rows[99].split(",")[0], "42099.0"  # bar 99's time, another close
    rows[100] = ",".join(fields)
    path = write(tmp_path / "BTCUSDT-1m.csv", rows)
    loaded = load_bars_with_sources(path, symbols_file=tmp_path / "symbols.yaml")
    report = validate_bars(loaded.bars, max_gap_ratio=0.01)
    lines = quality_failure_message("BTCUSDT", report, loaded.sources).splitlines()
    assert lines[0] == "BTCUSDT: bar quality failed, nothing was written (the last good bars stay):"
    at = {line.strip().split(":")[0]: i for i, line in enumerate(lines) if not line.startswith("    ")}
    assert lines[at["prices_positive"] + 1] == f"    {path}: line 31"
    assert lines[at["ts_unique"] + 1 : at["ts_unique"] + 3] == [f"    {path}: line 100", f"    {path}: line 101"]
    assert lines[at["ts_strictly_increasing"] + 1] == f"    {path}: line 101"
