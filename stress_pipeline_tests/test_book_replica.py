"""The NVDA 2023-10-17 replica with a collapsing synthetic book, through the paper engine, judged by
seed 001's criteria (data/replicas/nvda_2023_10_17_depth.yaml)."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from stress_pipeline.book.stress import collapse_path
from stress_pipeline.book.synthetic import synthetic_books
from stress_pipeline.verdicts.depth_replica import load_replica, run_depth_replica

FILE = Path(__file__).resolve().parents[1] / "data" / "replicas" / "nvda_2023_10_17_depth.yaml"
START = pd.Timestamp("2024-03-19T13:30:00Z")


@lru_cache(maxsize=1)
def replica():
    return run_depth_replica(FILE)


def test_seed_001_criteria_are_evaluated():
    result = replica()
    table = result.details.table.set_index("criterion")
    assert {"max_drawdown_pct", "flat_after", "hard_limit_breaches"} <= set(table.index)
    assert table.loc["hard_limit_breaches", "value"] == 0 and table.loc["hard_limit_breaches", "outcome"] == "pass"
    drawdown = table.loc["max_drawdown_pct", "value"]
    assert drawdown > 0 and table.loc["max_drawdown_pct", "outcome"] == ("pass" if drawdown <= 0.15 else "fail")
    flat = table.loc["flat_after", "value"]
    assert table.loc["flat_after", "outcome"] == ("pass" if flat == 1 else "fail")
    assert result.verdict == ("pass" if set(table["outcome"]) == {"pass"} else "fail")


def test_the_price_falls_as_documented_and_the_book_collapses_with_it():
    result = replica()
    bars = result.stressed
    day = bars[(bars["ts"] >= START) & (bars["ts"] < START + pd.Timedelta(hours=7))]
    prior_close = bars.loc[bars["ts"] < START, "close"].iloc[-1]
    assert 1 - day["low"].min() / prior_close == pytest.approx(0.0784, abs=1e-3)
    book = result.books["NVDA"]
    plain = synthetic_books(bars, levels=20, seed=load_replica(FILE).bars.seed)["NVDA"]  # the scenarios' seed
    first = int(np.searchsorted(book.ts, START.value))
    factors = collapse_path(0.9, 120, 270)
    np.testing.assert_allclose(book.ask_sz[first:first + 390].sum(axis=1),
                               plain.ask_sz[first:first + 390].sum(axis=1) * factors)  # fmt: skip
    np.testing.assert_array_equal(book.bid_sz[:first], plain.bid_sz[:first])


def test_fills_walk_the_book():
    fills = replica().paper.events.query("kind == 'fill'")
    levels = [json.loads(d).get("levels") for d in fills.details]
    assert levels and all(n is not None and n >= 1 for n in levels)
    assert max(levels) > 1  # some orders took more than the touch


def test_a_bad_replica_file_names_the_field(tmp_path):
    text = FILE.read_text().replace("book: {levels: 20", "book: {levels: 0")
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=r"bad.yaml: field book.levels: Input should be greater than or equal to 1"):
        load_replica(path)


@pytest.mark.services
def test_the_decision_path_latency_during_the_replay_is_a_criterion(external_service_urls):
    result = run_depth_replica(FILE, redis_url=external_service_urls.redis_url)
    flood = result.decisions
    tradable = result.stressed[~result.stressed["halted"] & ~result.stressed["corrupted"]]
    assert flood is not None and flood.decisions == len(tradable) and flood.rate_per_s == 1_000.0
    assert sum(flood.reasons.values()) == flood.decisions  # every order of the replay was answered
    row = result.details.table.set_index("criterion").loc["decision_latency_p99_ms"]
    assert row["value"] == flood.p99_ms and row["threshold"] == 15.0
    assert row["outcome"] == ("pass" if flood.p99_ms <= 15.0 else "fail")
    assert 0 < flood.p50_ms <= flood.p99_ms <= flood.max_ms
    assert result.verdict == ("pass" if set(result.details.table["outcome"]) == {"pass"} else "fail")
