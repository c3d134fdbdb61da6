"""The market-data guard both simulations share: what it rejects, and what it keeps tradable."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from stress_pipeline.market.panel import prepare_panel
from stress_pipeline.market.synthetic import generate_bars


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    return generate_bars(symbols=("BTCUSDT", "ETHUSDT"), days=1)


def test_clean_bars_are_all_tradable(bars: pd.DataFrame) -> None:
    panel, report = prepare_panel(bars)
    assert panel.symbols == ("BTCUSDT", "ETHUSDT") and panel.shape == (1440, 2)
    assert panel.tradable.all() and report.total_rejected == 0 and panel.bar_seconds == 60.0
    btc = bars[bars["symbol"] == "BTCUSDT"]["close"].to_numpy()
    np.testing.assert_array_equal(panel.close[:, 0], btc)


def test_guard_rejects_bad_rows_and_serves_the_last_good_close(bars: pd.DataFrame) -> None:
    bad = bars.copy()
    btc = bad.index[bad["symbol"] == "BTCUSDT"]
    bad.loc[btc[100], "close"] = np.nan  # missing value
    bad.loc[btc[200], "high"] = bad.loc[btc[200], "high"] * 10  # bad tick in the high
    bad.loc[btc[300], ["open", "high", "low", "close"]] *= 8  # whole bar off by 8x
    duplicate = bad.loc[[btc[400]]]
    bad = pd.concat([bad, duplicate]).sort_values(["symbol", "ts"], kind="stable", ignore_index=True)
    panel, report = prepare_panel(bad)
    reasons = report.rejected["BTCUSDT"]
    assert reasons == {"out_of_order_or_duplicate": 1, "bad_value": 1, "inconsistent_ohlc": 0, "spike": 2}
    assert panel.shape == (1440, 2)
    for row in (100, 200, 300):
        assert not panel.tradable[row, 0]
        assert panel.close[row, 0] == panel.close[row - 1, 0]  # the last accepted close
        assert panel.volume[row, 0] == 0
    assert panel.tradable[:, 1].all()  # ETH untouched


def test_halted_and_missing_bars_are_not_tradable(bars: pd.DataFrame) -> None:
    stressed = bars.assign(stressed=False, corrupted=False, halted=False)
    eth = stressed.index[stressed["symbol"] == "ETHUSDT"]
    stressed.loc[eth[10:20], "halted"] = True
    stressed = stressed.drop(index=eth[500:503])
    panel, report = prepare_panel(stressed)
    assert report.halted_bars == 10 and report.missing_bars == 3
    assert (~panel.tradable[:, 1]).sum() == 13
    assert panel.volume[500:503, 1].sum() == 0


def test_monte_carlo_paths_must_be_simulated_one_at_a_time(bars: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="one path at a time"):
        prepare_panel(pd.concat([bars.assign(path=0), bars.assign(path=1)]))
