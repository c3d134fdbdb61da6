"""The benches run on small inputs and report their fields; figures are checked by the bench command, not here."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from stress_pipeline.bench.market import (
    PANEL_TARGET_BAR_SYMBOLS_PER_S,
    format_market_bench,
    market_targets_met,
    run_market_bench,
)
from stress_pipeline.bench.transforms import bench_bars, bench_frame, format_transform_bench, run_transforms_bench
from stress_pipeline.market.schema import BAR_COLUMNS
from stress_pipeline.market.synthetic import generate_bars, write_binance_klines
from stress_pipeline.scenarios.model import SCENARIO_TYPES


def test_bench_reports_every_scenario_type_end_to_end_and_kernel_with_targets():
    rows = run_transforms_bench(repeat=1, n_symbols=4, days=1, mc_paths=3, mc_horizon=50)
    assert sorted({row.scenario_type for row in rows}) == sorted(SCENARIO_TYPES)
    assert [row.label for row in rows if row.scenario_type == "monte_carlo"] == [
        "monte_carlo block_bootstrap",
        "monte_carlo gbm",
    ]
    assert len(rows) == len(SCENARIO_TYPES) + 1
    for row in rows:
        assert row.status in {"ok", "missing"}, f"{row.label}: {row.detail}"
        assert str(row.end_to_end_target) and str(row.kernel_target)
        summary = row.as_dict()
        assert summary["type"] == row.scenario_type and summary["met"] == row.met
        assert row.met == (row.end_to_end_met and row.kernel_met)
        for part in ("end_to_end", "kernel"):
            assert set(summary[part]) >= {"target", "met"}
        if row.status == "ok":
            for m in (row.end_to_end, row.kernel):
                assert m.seconds > 0 and m.median_seconds > 0 and m.repeat == 1
            assert {"best_s", "median_s", "repeat"} <= set(summary["end_to_end"])
        else:
            assert row.met is False
    by_label = {row.label: row for row in rows}
    assert by_label["historical_replay"].status == "ok"
    gbm = by_label["monte_carlo gbm"]
    assert gbm.kernel.items == gbm.end_to_end.items == 3 * 3 * 50
    assert gbm.kernel_target.items_per_s == 10_000_000 and gbm.end_to_end_target.items_per_s == 5_000_000
    lite = by_label["flash_crash_lite"]
    assert (lite.end_to_end_target.seconds, lite.kernel_target.seconds) == (0.005, 0.002)
    assert by_label["flash_crash"].kernel_target.seconds == 0.020
    table = format_transform_bench(rows)
    assert table.splitlines()[0].split()[:9] == ["type", "end", "to", "end", "target", "met", "kernel", "target", "met"]
    assert all(row.label in table for row in rows)
    assert "<= 5 ms" in table and ">= 10 M bars/s" in table


def test_bench_frame_is_canonical_market_bars():
    frame = bench_frame(n_symbols=3, days=1)
    assert list(frame.columns) == list(BAR_COLUMNS)
    assert isinstance(frame["symbol"].dtype, pd.CategoricalDtype)
    assert frame["symbol"].cat.categories.tolist() == ["S000", "S001", "S002"]
    assert len(frame) == 3 * 1_440


def test_bench_bars_tile_the_calibrated_symbols_into_distinct_ones():
    bars = bench_bars(n_symbols=5, days=1)
    assert bars.symbols == ("S000", "S001", "S002", "S003", "S004")
    assert bars.lengths().tolist() == [1_440] * 5
    s000, s003 = bars.segment(0), bars.segment(3)  # both tiled from BTCUSDT, S003 scaled by 1.03
    np.testing.assert_allclose(bars.close[s003], bars.close[s000] * 1.03 / 1.00)
    assert np.array_equal(bars.volume[s003], bars.volume[s000])
    assert np.array_equal(bars.ts[s003], bars.ts[s000])
    assert not bars.stressed.any()


def test_market_bench_times_the_public_calls_from_files_with_kernels_and_targets(tmp_path):
    bars = generate_bars(symbols=("BTCUSDT", "ETHUSDT"), days=2)
    for symbol in ("BTCUSDT", "ETHUSDT"):
        write_binance_klines(bars, tmp_path / "bars", symbol)
    rows = run_market_bench(
        tmp_path / "bars", tmp_path / "symbols.yaml", repeat=1, generate_days=1, panel_symbols=4, panel_days=1
    )
    assert [row.name.split(":")[0] for row in rows] == ["load_bars", "validate_bars", "generate_bars", "prepare_panel"]
    assert rows[0].name == "load_bars: 2 files" and rows[0].end_to_end.items == 2 * 2 * 1_440
    assert rows[3].end_to_end.items == rows[3].kernel.items == 4 * 1_440 and rows[3].unit == "bar-symbols"
    for row in rows:
        summary = row.as_dict()
        assert summary["met"] == row.met == (row.end_to_end_met and row.kernel_met)
        for part in ("end_to_end", "kernel"):
            assert {"best_s", "median_s", "repeat", "target", "met"} <= set(summary[part])
            assert summary[part]["target"].startswith(">= ")
    assert rows[3].end_to_end_target.items_per_s == PANEL_TARGET_BAR_SYMBOLS_PER_S
    table = format_market_bench(rows)
    assert table.splitlines()[0].split()[:5] == ["benchmark", "end", "to", "end", "rate"]
    assert all(row.name in table for row in rows) and "M bar-symbols/s" in table
    assert market_targets_met(rows) == all(row.met for row in rows)


def test_market_bench_needs_data_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="no market data files under"):
        run_market_bench(tmp_path, tmp_path / "symbols.yaml", repeat=1)
