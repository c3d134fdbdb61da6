"""Order-book benchmark: book updates per second through the replay and fill kernel, from a depth file.

The input is a real depth table on disk: the depth files under ``<data>/depth/`` when there are any
(any layout ``book.load_depth`` reads), else the canonical Parquet table of synthetic books
(``book.synthetic``, 20 levels a side) for the first ``DAYS`` days of the shipped bars of ``SYMBOL``,
written to a temporary folder. Timed, best of ``--repeat``:

* ``load_depth``: the file into the validated canonical table (rows/s);
* the kernel (``book.kernels.replay_walk``): every row applied to the book as an update, and at each
  book time a market buy and a market sell of ``ORDER_QTY`` walked against it (updates/s; target
  >= 1M/s);
* ``run_paper`` on the bars with the synthetic books against the same call without books (bars/s),
  so the cost of filling against books in the paper engine is visible.

The kernel's answer is checked against the dense books (``dense_books``) walked level by level for
the first ``CHECK_BOOKS`` books, so a fast but wrong replay cannot pass.
"""

from __future__ import annotations

import json
import math
import tempfile
from argparse import Namespace
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from stress_pipeline.bench.timing import format_measurements, measure
from stress_pipeline.book.dense import books_table, dense_books
from stress_pipeline.book.kernels import replay_walk, walk
from stress_pipeline.book.loaders import load_depth
from stress_pipeline.book.schema import to_arrow
from stress_pipeline.book.synthetic import synthetic_books
from stress_pipeline.market.loaders import load_bars
from stress_pipeline.simulation.config import SimConfig
from stress_pipeline.simulation.paper import run_paper

SYMBOL = "BTCUSDT"
DAYS = 30
LEVELS = 20
ORDER_QTY = 5.0
TARGET_UPDATES_PER_S = 1_000_000
CHECK_BOOKS = 2_000
DEPTH_SUFFIXES = (".csv", ".csv.gz", ".parquet", ".pq", ".json")


def main(args: Namespace) -> int:
    settings = args.settings
    repeat = max(args.repeat, 3)
    with tempfile.TemporaryDirectory(prefix="bench-book-") as folder:
        files, bars = depth_files(settings.data_dir, settings.bars_dir, settings.symbols_file, Path(folder))
        loads = [measure(f"load_depth {path.name}", lambda p=path: load_depth(p), repeat=repeat,
                         items=_rows(path)) for path in files]  # fmt: skip
        tables = [load_depth(path) for path in files]
    rows = sum(len(t) for t in tables)
    columns = [c for t in tables for c in _symbol_columns(t)]  # one book per symbol and file
    kernel = measure(f"replay + walk kernel, {len(columns)} book(s)",
                     lambda: [replay_walk(*c, _depth(c), ORDER_QTY) for c in columns],
                     repeat=repeat, items=rows, unit="updates")  # fmt: skip
    check_kernel(tables[0])
    measurements = [*loads, kernel]
    if bars is not None:
        config = SimConfig()
        books = synthetic_books(bars, levels=LEVELS)
        with_books = measure("run_paper with books", lambda: run_paper(bars, config=config, books=books),
                             repeat=repeat, items=len(bars), unit="bars")  # fmt: skip
        bars_only = measure("run_paper bars only", lambda: run_paper(bars, config=config), repeat=repeat,
                            items=len(bars), unit="bars")  # fmt: skip
        measurements += [with_books, bars_only]
    met = kernel.items_per_second >= TARGET_UPDATES_PER_S
    if args.json:
        print(json.dumps({"measurements": [m.as_dict() for m in measurements], "updates": rows,
                          "target_updates_per_s": TARGET_UPDATES_PER_S, "met": met}, indent=2))  # fmt: skip
    else:
        print(format_measurements(measurements))
        print(f"target: >= {TARGET_UPDATES_PER_S:,} book updates/s through the replay + walk kernel: "
              f"{kernel.items_per_second:,.0f} {'met' if met else 'MISSED'}")  # fmt: skip
    return 0 if met else 1


def depth_files(data_dir: Path, bars_dir: Path, symbols_file: Path, folder: Path):
    """The depth files to read: ``<data>/depth/*`` if any (and no bars for the paper run), else one
    Parquet table of synthetic books for the shipped bars, written into ``folder`` (and those bars)."""
    depth_dir = data_dir / "depth"
    found = sorted(p for p in depth_dir.glob("*") if p.name.lower().endswith(DEPTH_SUFFIXES)) if depth_dir.is_dir() \
        else []  # fmt: skip
    if found:
        return found, None
    bars = load_bars(sorted(bars_dir.glob(f"{SYMBOL}-*")), symbols_file=symbols_file)
    bars = bars[bars["ts"] < bars["ts"].iloc[0] + np.timedelta64(DAYS, "D")].reset_index(drop=True)
    path = folder / f"{SYMBOL}-depth.parquet"
    pq.write_table(to_arrow(books_table(synthetic_books(bars, levels=LEVELS, symbols_file=symbols_file))), path)
    return [path], bars


def check_kernel(table) -> None:
    """The kernel's fills on the first books of the table's first symbol equal its dense books walked
    one by one."""
    table = table[table["symbol"] == table["symbol"].iloc[0]]
    columns = _symbol_columns(table)[0]
    head = columns[0] <= np.unique(columns[0])[:CHECK_BOOKS][-1]
    part = tuple(c[head] for c in columns)
    (dense,) = dense_books(table.iloc[np.flatnonzero(head)]).values()
    got = replay_walk(*part, dense.levels, ORDER_QTY)
    bought = bought_value = sold = sold_value = 0.0
    for i in range(len(dense.ts)):
        q, avg, _ = walk(dense.ask_px[i], dense.ask_sz[i], ORDER_QTY)
        bought, bought_value = bought + q, bought_value + (q * avg if q else 0.0)
        q, avg, _ = walk(dense.bid_px[i], dense.bid_sz[i], ORDER_QTY, 0.0, math.nan, False)
        sold, sold_value = sold + q, sold_value + (q * avg if q else 0.0)
    expected = (len(dense.ts), bought, bought_value, sold, sold_value)
    if got[0] != expected[0] or not np.allclose(got[1:5], expected[1:], rtol=1e-12):
        raise AssertionError(f"replay_walk disagrees with the dense books: {got[:5]} != {expected}")


def _symbol_columns(table) -> list[tuple[np.ndarray, ...]]:
    """The kernel's columns of each symbol of a canonical depth table."""
    ts = np.asarray(table["ts"].array.asi8)
    side = (table["side"].to_numpy(dtype=object) == "ask").astype(np.int8)
    level, price = table["level"].to_numpy(dtype=np.int64), table["price"].to_numpy(dtype=np.float64)
    size, snap = table["size"].to_numpy(dtype=np.float64), table["kind"].to_numpy(dtype=object) == "snapshot"
    codes = table["symbol"].array.codes
    out = []
    for code in np.unique(codes):
        rows = np.flatnonzero(codes == code)
        out.append(tuple(np.ascontiguousarray(c[rows]) for c in (ts, side, level, price, size, snap)))
    return out


def _depth(columns) -> int:
    return int(columns[2].max()) + 1 if len(columns[2]) else 0


def _rows(path: Path) -> int | None:
    return pq.ParquetFile(path).metadata.num_rows if path.suffix in (".parquet", ".pq") else None
