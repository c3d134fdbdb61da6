"""The hourly flash-crash lite: figures computed by hand, bad inputs named, and the live paths against real
servers: the book read from Redis, a breach setting the KILL_SWITCH, paging the embedded receiver once per
symbol set and hour (real HTTP, real PostgreSQL) and recording the event in the ledger; the asset and its
check in real Dagster runs, breach and no breach."""

from __future__ import annotations

import json
import math
import shutil
import uuid
from argparse import Namespace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from stress_pipeline.bench.lite import main
from stress_pipeline.defs.io_manager import parquet_io_manager
from stress_pipeline.defs.lite import defs as lite_defs
from stress_pipeline.defs.lite.resources import LiteResource
from stress_pipeline.defs.market.assets import market_bars
from stress_pipeline.defs.monitoring.resources import AlertingResource
from stress_pipeline.defs.resources import StressResource
from stress_pipeline.lite import defaults
from stress_pipeline.lite.evaluate import LiteInputError, LiteMarket, LiteThresholds, evaluate, market_reference
from stress_pipeline.lite.killswitch import KillSwitchLedger, read_state
from stress_pipeline.lite.run import ALREADY_RAISED, alert_dedup_key, lite_config, respond_to_breach, run_lite
from stress_pipeline.lite.symbol_sets import SymbolSetError, load_symbol_sets, symbol_set
from stress_pipeline.market import load_bars
from stress_pipeline.monitoring.alert_store import DEFAULT_SCHEMA as ALERTS_SCHEMA
from stress_pipeline.monitoring.alert_store import alert_tables
from stress_pipeline.monitoring.delivery import AlertSender
from stress_pipeline.monitoring.queue import AlertQueue
from stress_pipeline.parquet_store import write_parquet_atomic
from stress_pipeline.paths import StoragePaths
from stress_pipeline.scenarios.model import FlashCrashLiteParams
from stress_pipeline.services import embedded, postgres_engine, redis_client, resolve_service_urls
from stress_pipeline.services.alert_receiver import alert_endpoint, stop_receiver
from stress_pipeline.services.launch import free_port
from stress_pipeline.settings import get_settings
from stress_pipeline.state.hot_state import DEFAULT_NAMESPACE, HotState, HotStateKeys

ROOT = Path(__file__).resolve().parents[1]
SHOCK = FlashCrashLiteParams(price_shock_pct=-0.03, spread_mult=3.0, duration_sec=60, recovery_type="linear")
LIMITS = LiteThresholds(max_drawdown_pct=0.05, max_var_multiplier=2.0, max_position_delta=0.10)
SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
#: About 117,000 long against 32,000 of equity once cash is -85,000: every threshold breaks.
LEVERED = {"BTCUSDT": "2", "ETHUSDT": "20", "SOLUSDT": "300"}


def _market() -> LiteMarket:
    """Two symbols: A at 100 (spread 10 bps), B at 50 (20 bps); two one-minute returns."""
    returns = np.array([[0.01, 0.0], [-0.02, 0.01]])
    return LiteMarket(("A", "B"), np.array([100.0, 50.0]), np.array([10.0, 20.0]), returns, 60.0)


# ------------------------------------------------------------------------------------------ figures


@pytest.mark.parametrize("recovery", ["linear", "exponential"])
def test_figures_by_hand(recovery: str) -> None:
    shock = SHOCK.model_copy(update={"recovery_type": recovery})
    result = evaluate(np.array([10.0, -4.0]), 1_000.0, _market(), shock, LIMITS, symbol_set="s", scenario="x")
    # Liquidation value: 1000 + (1000 - 0.5) + (-200 - 0.2) = 1799.3 before the shock. At the hit prices are
    # x0.97 and spreads x3: 1000 + 0.97 * ((1000 - 1.5) + (-200 - 0.6)) = 1773.963, the worst point.
    assert result.equity_before == pytest.approx(1_799.3, abs=1e-9)
    assert result.equity_worst == pytest.approx(1_773.963, abs=1e-9)
    assert result.worst_after_s == 0.0
    assert result.drawdown_pct == pytest.approx(25.337 / 1_799.3, rel=1e-12)
    assert result.position_delta == pytest.approx(0.03 * 1_200 / 1_799.3, rel=1e-12)
    # One-bar P&L: 10 and -22; its 1% quantile (linear) -22 + 0.01 * 32; an hour is sqrt(60) bars.
    assert result.normal_var == pytest.approx(21.68 * math.sqrt(60), rel=1e-12)
    assert result.var_multiplier == pytest.approx(25.337 / (21.68 * math.sqrt(60)), rel=1e-12)
    assert result.loss.sum() == pytest.approx(25.337, abs=1e-9)
    assert result.breaches == () and result.exercised
    assert result.top_losses()[0]["symbol"] == "A"


def test_each_threshold_breaches_on_its_own() -> None:
    qty = np.array([10.0, -4.0])
    tight = {"max_drawdown_pct": 0.01, "max_var_multiplier": 0.1, "max_position_delta": 0.01}
    for key, limit in tight.items():
        result = evaluate(qty, 1_000.0, _market(), SHOCK, LiteThresholds(**{**LIMITS.as_dict(), key: limit}))
        assert result.breaches == (key,)
        row = result.table().set_index("criterion").loc[key]
        assert row["breached"] and row["value"] > row["threshold"] == limit


def test_a_flat_book_is_not_exercised_and_breaches_nothing() -> None:
    result = evaluate(np.zeros(2), 500.0, _market(), SHOCK, LIMITS)
    assert not result.exercised and result.breaches == ()
    assert result.drawdown_pct == 0.0 and result.position_delta == 0.0 and math.isnan(result.var_multiplier)


def test_bad_numbers_are_refused_by_name() -> None:
    with pytest.raises(LiteInputError, match="not positive"):
        evaluate(np.array([-30.0, 0.0]), 1_000.0, _market(), SHOCK, LIMITS)
    with pytest.raises(LiteInputError, match="finite quantities"):
        evaluate(np.array([1.0, np.nan]), 1_000.0, _market(), SHOCK, LIMITS)
    with pytest.raises(LiteInputError, match=r"price of B is 0\.0"):
        LiteMarket(("A", "B"), np.array([100.0, 0.0]), np.ones(2), np.zeros((3, 2)), 60.0)
    with pytest.raises(LiteInputError, match="no prices for C"):
        _market().aligned(["A", "C"])
    with pytest.raises(LiteInputError, match="threshold max_var_multiplier: expected a finite number >= 0, got -1"):
        LiteThresholds(0.05, -1, 0.1)
    with pytest.raises(LiteInputError, match="max_drawdown_pct: expected a fraction <= 1"):
        LiteThresholds(5, 2, 0.1)
    with pytest.raises(LiteInputError, match=r"pack\.yaml: scenario s: expect lacks max_var_multiplier"):
        LiteThresholds.from_expect({"max_drawdown_pct": 0.05, "max_position_delta": 0.1}, "pack.yaml: scenario s")
    with pytest.raises(LiteInputError, match=r"pack\.yaml: scenario s: threshold max_position_delta"):
        LiteThresholds.from_expect({**LIMITS.as_dict(), "max_position_delta": "ten"}, "pack.yaml: scenario s")


def test_market_reference_from_bars_and_missing_prices() -> None:
    bars = _bars(days=1)
    market = market_reference(bars, SYMBOLS, lookback_bars=600)
    last = bars.groupby("symbol", observed=True).tail(1).set_index("symbol")
    assert market.symbols == SYMBOLS and market.bar_s == 60.0 and market.returns.shape == (600, 3)
    np.testing.assert_array_equal(market.price, last.loc[list(SYMBOLS), "close"].to_numpy())
    btc = bars[bars["symbol"] == "BTCUSDT"]["close"].to_numpy()
    np.testing.assert_allclose(market.returns[:, 0], btc[-600:] / btc[-601:-1] - 1.0, rtol=0, atol=0)
    with pytest.raises(LiteInputError, match="no prices for XRPUSDT"):
        market_reference(bars, ("BTCUSDT", "XRPUSDT"))
    with pytest.raises(LiteInputError, match="share 1440 timestamps; the reference window needs 2001"):
        market_reference(bars, SYMBOLS, lookback_bars=2_000)


# ----------------------------------------------------------------------------------- configuration


def test_symbol_sets_and_pack_from_the_shipped_data() -> None:
    config = lite_config(ROOT / "data")
    assert config.symbols == SYMBOLS and config.symbol_set == "active_book" and config.scenario == "flash_crash_lite"
    assert config.shock == SHOCK and config.thresholds == LIMITS
    assert (config.run_id, config.namespace) == ("live", "stress")
    assert defaults.DEFAULT_NAMESPACE == DEFAULT_NAMESPACE
    assert symbol_set(ROOT / "data" / "symbol_sets.yaml", "test_symbols") == ("BTCUSDT", "ETHUSDT")


def test_bad_configuration_is_named(tmp_path: Path) -> None:
    data = _data_dir(tmp_path, "active_book")
    with pytest.raises(SymbolSetError, match=r"symbol_sets\.yaml: unknown symbol set 'nope'; the file defines active_"):
        lite_config(data, symbol_set_name="nope")
    (data / "symbol_sets.yaml").write_text("symbol_sets:\n  twice: [BTCUSDT, ETHUSDT, BTCUSDT]\n")
    with pytest.raises(SymbolSetError, match="symbol set 'twice', entry 3: BTCUSDT is listed twice"):
        load_symbol_sets(data / "symbol_sets.yaml")
    (data / "symbol_sets.yaml").write_text("symbol_sets:\n  empty: []\n")
    with pytest.raises(SymbolSetError, match="symbol set 'empty': expected a non-empty list"):
        load_symbol_sets(data / "symbol_sets.yaml")
    data = _data_dir(tmp_path / "b", "active_book")
    pack = data / "stress_packs" / "flash_crash_lite.yaml"
    pack.write_text(pack.read_text().replace("max_var_multiplier: 2.0, ", "", 1))
    with pytest.raises(LiteInputError, match=r"flash_crash_lite.yaml: scenario flash_crash_lite: expect lacks "
                                             "max_var_multiplier"):  # fmt: skip
        lite_config(data)
    with pytest.raises(LiteInputError, match="no flash_crash_lite scenario named 'missing'"):
        lite_config(data, scenario="missing")


# ------------------------------------------------------------------------------- against real servers


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory):
    """Embedded PostgreSQL and Redis (and, once asked, the alert receiver) in a home of this module's."""
    home = tmp_path_factory.mktemp("lite-home")
    settings = get_settings({"STRESS_HOME": str(home)})
    try:
        yield home, resolve_service_urls(settings)
    finally:
        try:
            stop_receiver(home)
        finally:
            embedded.stop(settings)


def _seed(urls, run_id: str, namespace: str, positions: dict[str, str], cash: str) -> HotState:
    hot = HotState(redis_client(urls.redis_url), run_id, namespace=namespace)
    hot.init(Decimal(cash), positions={s: Decimal(q) for s, q in positions.items()})
    return hot


@pytest.mark.services
def test_the_book_is_read_from_redis_and_bad_books_are_named(servers, tmp_path: Path) -> None:
    _home, urls = servers
    client, ns = redis_client(urls.redis_url), f"lite-{uuid.uuid4().hex[:8]}"
    config = lite_config(_data_dir(tmp_path, "active_book"), run_id="r1", namespace=ns)
    market = market_reference(_bars(days=1), SYMBOLS, lookback_bars=600)
    hot = _seed(urls, "r1", ns, {"BTCUSDT": "0.5", "ETHUSDT": "-2", "SOLUSDT": "0"}, "40000")
    try:
        result = run_lite(client, config, market)
        direct = evaluate(np.array([0.5, -2.0, 0.0]), 40_000.0, market, config.shock, config.thresholds)
        assert result.figures == direct.figures and result.source["run_id"] == "r1"
        hot.init(Decimal("40000"), positions={"BTCUSDT": Decimal("0.5"), "ETHUSDT": Decimal("1")})
        with pytest.raises(LiteInputError, match=rf"'active_book': SOLUSDT not in the book of run {ns}:r1 \(hash "
                                                 rf"{ns}:r1:positions holds BTCUSDT, ETHUSDT\)"):  # fmt: skip
            run_lite(client, config, market)
        hot.init(Decimal("40000"), positions={**dict.fromkeys(SYMBOLS, Decimal(1)), "XRPUSDT": Decimal("3")})
        with pytest.raises(LiteInputError, match="holds XRPUSDT outside the set"):
            run_lite(client, config, market)
        hot.init(Decimal("40000"), positions=dict.fromkeys(SYMBOLS, Decimal(1)))
        with pytest.raises(LiteInputError, match="no prices for SOLUSDT"):
            run_lite(client, config, market_reference(_bars(days=1), SYMBOLS[:2], lookback_bars=600))
    finally:
        hot.clear()


@pytest.mark.services
def test_a_cme_micro_book_is_shocked_with_its_contract_multipliers(servers) -> None:
    _home, urls = servers
    client, ns = redis_client(urls.redis_url), f"lite-{uuid.uuid4().hex[:8]}"
    config = lite_config(ROOT / "data", run_id="futures", namespace=ns, symbol_set_name="cme_micro",
                         scenario="flash_crash_lite cme micro")  # fmt: skip
    assert config.symbols == ("MES", "MNQ", "M2K") and config.multipliers == (5.0, 2.0, 5.0)
    micro = load_bars(sorted((ROOT / "data" / "bars").glob("M*-1m-2024-03.csv.gz")))
    market = market_reference(micro, config.symbols, lookback_bars=600)
    hot = _seed(urls, "futures", ns, {"MES": "2", "MNQ": "-1", "M2K": "3"}, "100000")
    try:
        result = run_lite(client, config, market)
        contracts = np.array([2.0, -1.0, 3.0])
        assert np.allclose(result.exposure, contracts * market.price * np.array([5.0, 2.0, 5.0]), rtol=1e-12)
        one_point = evaluate(contracts, 100_000.0, market, config.shock, config.thresholds)  # multiplier 1
        assert result.gross_exposure > 2 * one_point.gross_exposure and result.exercised
        assert result.drawdown_pct > one_point.drawdown_pct > 0
    finally:
        hot.clear()


@pytest.mark.services
def test_a_breach_sets_the_switch_pages_once_per_hour_and_is_recorded(servers, tmp_path: Path) -> None:
    home, urls = servers
    client, ns, set_name = redis_client(urls.redis_url), f"lite-{uuid.uuid4().hex[:8]}", f"set_{uuid.uuid4().hex[:8]}"
    config = lite_config(_data_dir(tmp_path, set_name), run_id="live", namespace=ns, symbol_set_name=set_name)
    market = market_reference(_bars(days=1), SYMBOLS, lookback_bars=600)
    hot = _seed(urls, "live", ns, LEVERED, "-85000")  # about 3.6x leverage
    engine = postgres_engine(urls.postgres_url)
    ledger = KillSwitchLedger(engine)
    endpoint = alert_endpoint(home, urls.postgres_url)
    hour = datetime(2026, 12, 7, 15, 0, 5, tzinfo=UTC)
    try:
        with AlertQueue(tmp_path / "queue") as queue:
            sender = AlertSender(endpoint, queue)
            result = run_lite(client, config, market, now=hour)
            assert result.breaches == ("max_drawdown_pct", "max_var_multiplier", "max_position_delta")
            first = respond_to_breach(result, config, client=client, ledger=ledger, sender=sender, now=hour)
            state = read_state(client, config.keys)
            assert state.on and state.by == "lite_stress" and state.at == "2026-12-07T15:00:05.000Z"
            assert state.reason.startswith(f"flash_crash_lite breach on {set_name}: max_drawdown_pct ")
            assert first.kill_switch_set and first.alert == "delivered"
            assert first.dedup_key == alert_dedup_key(set_name, hour) == \
                f"stress-pipeline/flash_crash_lite_breach/{set_name}:2026-12-07T15"  # fmt: skip
            # Later the same hour: the switch stays as set, no second page.
            later = respond_to_breach(result, config, client=client, ledger=ledger, sender=sender,
                                      now=hour + timedelta(minutes=50))  # fmt: skip
            assert not later.kill_switch_set and later.alert == ALREADY_RAISED
            assert read_state(client, config.keys) == state
            # The next hour pages again, under its own key.
            after = respond_to_breach(result, config, client=client, ledger=ledger, sender=sender,
                                      now=hour + timedelta(hours=1))  # fmt: skip
            assert after.alert == "delivered" and after.dedup_key.endswith(":2026-12-07T16")
        received = _received(engine, set_name)
        assert received == [(first.dedup_key, "new_incident"), (after.dedup_key, "new_incident")]
        events = ledger.events("live", namespace=ns)
        assert [(e.action, e.actor, e.dedup_key, e.details["alert"]) for e in events] == [
            ("trip", "lite_stress", first.dedup_key, "delivered"),
            ("trip", "lite_stress", first.dedup_key, ALREADY_RAISED),
            ("trip", "lite_stress", after.dedup_key, "delivered"),
        ]
        assert events[0].at == hour and events[0].symbol_set == set_name and events[0].reason == state.reason
        assert events[0].details["drawdown_pct"] == pytest.approx(result.drawdown_pct)
    finally:
        hot.clear()
        engine.dispose()


@pytest.mark.services
def test_the_asset_and_its_check_in_real_runs(servers, tmp_path: Path) -> None:
    home, urls = servers
    ns, set_name = f"lite-{uuid.uuid4().hex[:8]}", f"set_{uuid.uuid4().hex[:8]}"
    data = _data_dir(tmp_path, set_name)
    _store_market_bars(home)
    resources = _resources(home, data, urls, ns, set_name, AlertingResource())
    client = redis_client(urls.redis_url)
    keys = HotStateKeys.of("live", ns)
    engine = postgres_engine(urls.postgres_url)
    try:
        with dg.instance_for_test() as instance:
            instance.add_dynamic_partitions("symbols", list(SYMBOLS))

            def run() -> tuple[dg.ExecuteInProcessResult, dg.AssetCheckEvaluation]:
                result = dg.materialize(ASSETS, selection=["lite_stress"], instance=instance, resources=resources)
                [check] = result.get_asset_check_evaluations()
                return result, check

            result, check = run()  # no live book at all: nothing measured, a WARN that says why
            assert result.success and not check.passed and check.severity == dg.AssetCheckSeverity.WARN
            assert check.description == f"NOT EXERCISED: no live book: the hot state {ns}:live does not exist " \
                "(no system is trading there)"  # fmt: skip
            assert result.output_for_node("lite_stress")["value"].isna().all()

            _seed(urls, "live", ns, {"BTCUSDT": "1", "ETHUSDT": "-15", "SOLUSDT": "0"}, "60000")  # hedged
            result, check = run()
            assert result.success and check.passed and not read_state(client, keys).on
            assert not result.output_for_node("lite_stress")["breached"].any()

            _seed(urls, "live", ns, {"BTCUSDT": "0", "ETHUSDT": "0", "SOLUSDT": "0"}, "100000")
            result, check = run()
            assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
            assert check.description == f"NOT EXERCISED: the live book holds no position in {set_name}"

            _seed(urls, "live", ns, LEVERED, "-85000")
            result, check = run()
            table = result.output_for_node("lite_stress")
            assert result.success and not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
            assert check.description.startswith(f"BREACH on {set_name}: max_drawdown_pct ")
            assert table["kill_switch_set"].all() and (table["alert"] == "delivered").all()
            assert read_state(client, keys).on
            assert [k for k, _ in _received(engine, set_name)] == [table["dedup_key"].iloc[0]]

            (data / "symbol_sets.yaml").write_text(f"symbol_sets:\n  {set_name}: [BTCUSDT, XRPUSDT]\n")
            result = dg.materialize(ASSETS, selection=["lite_stress"], instance=instance, resources=resources,
                                    raise_on_error=False)  # fmt: skip
            assert not result.success
            [failure] = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
            assert "no prices for XRPUSDT" in failure.step_failure_data.error.message
    finally:
        HotState(client, "live", namespace=ns).clear()
        engine.dispose()


@pytest.mark.services
def test_an_alert_the_endpoint_did_not_take_is_sent_by_the_next_run(servers, tmp_path: Path) -> None:
    home, urls = servers
    ns, set_name = f"lite-{uuid.uuid4().hex[:8]}", f"set_{uuid.uuid4().hex[:8]}"
    data = _data_dir(tmp_path, set_name)
    _store_market_bars(home)
    receiver = alert_endpoint(home, urls.postgres_url)
    down = AlertingResource(alert_url=f"http://127.0.0.1:{free_port()}/v2/enqueue", routing_key=receiver.routing_key)
    up = AlertingResource(alert_url=receiver.url, routing_key=receiver.routing_key)
    engine = postgres_engine(urls.postgres_url)
    try:
        with dg.instance_for_test() as instance:
            instance.add_dynamic_partitions("symbols", list(SYMBOLS))
            _seed(urls, "live", ns, LEVERED, "-85000")
            result = dg.materialize(ASSETS, selection=["lite_stress"], instance=instance,
                                    resources=_resources(home, data, urls, ns, set_name, down))  # fmt: skip
            table = result.output_for_node("lite_stress")
            assert table["kill_switch_set"].all() and (table["alert"] == "queued").all()
            assert _received(engine, set_name) == []
            _seed(urls, "live", ns, {"BTCUSDT": "1", "ETHUSDT": "-15", "SOLUSDT": "0"}, "60000")  # no breach now
            result = dg.materialize(ASSETS, selection=["lite_stress"], instance=instance,
                                    resources=_resources(home, data, urls, ns, set_name, up))  # fmt: skip
            assert not result.output_for_node("lite_stress")["breached"].any()
            assert _received(engine, set_name) == [(table["dedup_key"].iloc[0], "new_incident")]
    finally:
        HotState(redis_client(urls.redis_url), "live", namespace=ns).clear()
        engine.dispose()


@pytest.mark.services
def test_the_benchmark_times_the_real_call_and_checks_its_answer(servers, capsys) -> None:
    home, _urls = servers
    settings = get_settings({"STRESS_HOME": str(home), "STRESS_DATA_DIR": str(ROOT / "data")})
    client = redis_client(resolve_service_urls(settings).redis_url)
    before = set(client.scan_iter(match="stress-bench:*"))
    main(Namespace(settings=settings, repeat=1, json=True))  # exit 1 only when the time target is missed
    out = json.loads(capsys.readouterr().out)
    whole, kernel = out["measurements"]
    assert whole["symbols"] == kernel["symbols"] == 100 and whole["repeat"] == 20
    assert set(out["figures"]) == {"drawdown_pct", "var_multiplier", "position_delta"}
    assert all(math.isfinite(v) and v > 0 for v in out["figures"].values())
    assert set(client.scan_iter(match="stress-bench:*")) == before  # the bench's book is removed


# ------------------------------------------------------------------------------------------ helpers


ASSETS = [market_bars, *lite_defs.assets, *lite_defs.asset_checks]


def _resources(home: Path, data: Path, urls, namespace: str, set_name: str, alerting: AlertingResource) -> dict:
    return {
        "stress": StressResource(home=str(home), data_dir=str(data), postgres_url=urls.postgres_url,
                                 redis_url=urls.redis_url),
        "alerting": alerting,
        "lite": LiteResource(run_id="live", namespace=namespace, symbol_set=set_name),
        "parquet_io_manager": parquet_io_manager,
    }


def _store_market_bars(home: Path) -> None:
    """Two days of the three symbols as stored ``market_bars`` partitions under ``home``."""
    bars = _bars(days=2)
    for symbol in SYMBOLS:
        write_parquet_atomic(bars[bars["symbol"] == symbol].reset_index(drop=True),
                             StoragePaths(home).asset_file(["market_bars"], symbol))  # fmt: skip


def _bars(days: int) -> pd.DataFrame:
    """The last ``days`` days of the shipped March bars of the three symbols."""
    bars = load_bars(sorted(p for s in SYMBOLS for p in (ROOT / "data" / "bars").glob(f"{s}-*-2024-03.csv.gz")))
    start = bars["ts"].max() - pd.Timedelta(days=days) + pd.Timedelta(minutes=1)
    return bars[bars["ts"] >= start].reset_index(drop=True)


def _data_dir(root: Path, set_name: str) -> Path:
    """A data folder with the shipped flash_crash_lite pack and a set ``set_name`` of the three symbols."""
    data = root / "data"
    (data / "stress_packs").mkdir(parents=True)
    shutil.copy(ROOT / "data" / "stress_packs" / "flash_crash_lite.yaml", data / "stress_packs")
    (data / "symbol_sets.yaml").write_text(f"symbol_sets:\n  {set_name}: [BTCUSDT, ETHUSDT, SOLUSDT]\n")
    return data


def _received(engine: sa.Engine, set_name: str) -> list[tuple[str, str]]:
    """What the receiver recorded for the set's alerts: (dedup key, outcome), in order."""
    deliveries = alert_tables(ALERTS_SCHEMA).deliveries
    query = (sa.select(deliveries.c.dedup_key, deliveries.c.outcome)
             .where(deliveries.c.dedup_key.like(f"%/{set_name}:%")).order_by(deliveries.c.received_at))  # fmt: skip
    with engine.connect() as conn:
        return [tuple(row) for row in conn.execute(query)]
