"""`stress-pipeline bench book` on a data folder's own depth files: it reads them, checks its kernel
against the dense books, and reports updates per second."""

from __future__ import annotations

import json
import shutil
from argparse import Namespace
from pathlib import Path

import numpy as np

from stress_pipeline.bench import book as bench
from stress_pipeline.book import load_depth
from stress_pipeline.book.kernels import replay_walk
from stress_pipeline.settings import make_settings

FIXTURES = Path(__file__).parent / "fixtures" / "depth"


def test_bench_book_reads_the_data_folders_depth_files(tmp_path, capsys):
    (tmp_path / "data" / "depth").mkdir(parents=True)
    for name in ("NVDA-depth.csv", "BTCUSDT-book_snapshot_5.csv"):
        shutil.copy(FIXTURES / name, tmp_path / "data" / "depth" / name)
    settings = make_settings(home=tmp_path / "home", data_dir=tmp_path / "data")
    code = bench.main(Namespace(settings=settings, repeat=3, json=True))
    out = json.loads(capsys.readouterr().out)
    assert out["updates"] == 7 + 17
    assert [m["name"] for m in out["measurements"]][-1] == "replay + walk kernel, 2 book(s)"
    assert code == (0 if out["met"] else 1)


def test_replay_walk_hand_values():
    table = load_depth(FIXTURES / "NVDA-depth.csv")
    (columns,) = bench._symbol_columns(table)
    books, bought, bought_value, sold, sold_value, taken = replay_walk(*columns, 2, 250.0)
    assert books == 3
    # 13:30:00 asks 200 @ 439.01 + 50 @ 439.03; 13:30:01 (update) 150 @ 439.00 + 100 @ 439.03; 13:30:02 120 @ 438.97
    assert bought == 250 + 250 + 120
    assert np.isclose(bought_value, 200 * 439.01 + 50 * 439.03 + 150 * 439.00 + 100 * 439.03 + 120 * 438.97)
    assert sold == 250 + 250 + 100 and taken == (2 + 1) + (2 + 1) + (1 + 1)  # (asks + bids) per book
    assert np.isclose(sold_value, 2 * (250 * 438.99) + 100 * 438.95)
