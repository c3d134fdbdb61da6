"""The transforms bench runs end to end on a small input; its figures are checked by the bench command, not here."""

from __future__ import annotations

import numpy as np

from stress_pipeline.bench.transforms import bench_bars, format_transform_bench, run_transforms_bench
from stress_pipeline.scenarios.model import SCENARIO_TYPES


def test_bench_reports_every_scenario_type_with_a_target():
    rows = run_transforms_bench(repeat=1, n_symbols=4, days=1, mc_paths=3, mc_horizon=50)
    assert sorted({row.scenario_type for row in rows}) == sorted(SCENARIO_TYPES)
    assert [row.label for row in rows if row.scenario_type == "monte_carlo"] == [
        "monte_carlo block_bootstrap",
        "monte_carlo gbm",
    ]
    assert len(rows) == len(SCENARIO_TYPES) + 1
    for row in rows:
        assert row.status in {"ok", "missing"}, f"{row.label}: {row.detail}"
        assert row.target
        summary = row.as_dict()
        assert summary["type"] == row.scenario_type and summary["met"] == row.met
        if row.status == "ok":
            assert row.measurement.seconds > 0 and row.measurement.median_seconds > 0
            assert row.measurement.repeat == 1
        else:
            assert row.met is False
    by_label = {row.label: row for row in rows}
    assert by_label["historical_replay"].status == "ok"
    assert by_label["monte_carlo gbm"].measurement.items == 3 * 3 * 50
    assert by_label["monte_carlo gbm"].target_items_per_s == 10_000_000
    assert by_label["flash_crash_lite"].target_s == 0.002
    assert by_label["flash_crash"].target_s == 0.020
    table = format_transform_bench(rows)
    assert table.splitlines()[0].split()[:5] == ["type", "best", "median", "target", "met"]
    assert all(row.label in table for row in rows)


def test_bench_bars_tile_the_calibrated_symbols_into_distinct_ones():
    bars = bench_bars(n_symbols=5, days=1)
    assert bars.symbols == ("S000", "S001", "S002", "S003", "S004")
    assert bars.lengths().tolist() == [1_440] * 5
    s000, s003 = bars.segment(0), bars.segment(3)  # both tiled from BTCUSDT, S003 scaled by 1.03
    np.testing.assert_allclose(bars.close[s003], bars.close[s000] * 1.03 / 1.00)
    assert np.array_equal(bars.volume[s003], bars.volume[s000])
    assert np.array_equal(bars.ts[s003], bars.ts[s000])
    assert not bars.stressed.any()
