"""Three-way reconciliation on hand-built views: clean, and every kind of break."""

from __future__ import annotations

from decimal import Decimal

from stress_pipeline.state.reconcile import HotView, LedgerView, reconcile, replay
from stress_pipeline.state.records import fill_from_values

CASH0 = Decimal("100000")


def fills():
    return [
        fill_from_values("r1", 1, 10, 1, "BTCUSDT", 1, 0.5, 42000.12345678, 10.5),
        fill_from_values("r1", 2, 11, 2, "ETHUSDT", 2, -2.0, 2300.1, 2.3),
        fill_from_values("r1", 3, 12, 3, "BTCUSDT", 3, -0.2, 42100.0, 4.21),
    ]


def views(exchange, ledger_fills=None, redis_positions=None, redis_cash=None):
    ledger_fills = exchange if ledger_fills is None else ledger_fills
    positions, cash = replay(ledger_fills, CASH0)
    return (
        LedgerView(fills=ledger_fills, positions=positions, cash=cash),
        HotView(positions=redis_positions if redis_positions is not None else positions,
                cash=redis_cash if redis_cash is not None else cash),
    )


def test_replay_is_exact() -> None:
    positions, cash = replay(fills(), CASH0)
    assert positions == {"BTCUSDT": Decimal("0.30000000"), "ETHUSDT": Decimal("-2.00000000")}
    expected = CASH0 - Decimal("0.5") * Decimal("42000.12345678") - Decimal("10.5") \
        + Decimal("2") * Decimal("2300.1") - Decimal("2.3") + Decimal("0.2") * Decimal("42100") - Decimal("4.21")
    assert cash == expected.quantize(Decimal("1e-8"))


def test_clean_when_all_three_agree() -> None:
    ledger, redis = views(fills())
    report = reconcile(fills(), ledger, redis, initial_cash=CASH0)
    assert report.passed and report.breaks.empty
    assert (report.lost_fills, report.duplicated_fills, report.unexpected_fills) == ((), (), ())
    assert "reconciliation clean: 3 exchange fills, 3 in the ledger" in report.summary()


def test_lost_duplicated_and_unexpected_fills() -> None:
    exchange = fills()
    stray = fill_from_values("r1", 99, 50, 9, "SOLUSDT", 9, 1.0, 100.0, 0.1)
    ledger_fills = [exchange[0], exchange[0], stray]  # fill 2 and 3 lost, fill 1 twice, one unexpected
    ledger, redis = views(exchange, ledger_fills)
    report = reconcile(exchange, ledger, redis, initial_cash=CASH0)
    assert not report.passed
    assert report.lost_fills == ("r1:2", "r1:3")
    assert report.duplicated_fills == ("r1:1",)
    assert report.unexpected_fills == ("r1:99",)


def test_redis_position_break_is_listed_with_all_three_values() -> None:
    ledger, redis = views(fills(), redis_positions={"BTCUSDT": Decimal("0.5"), "ETHUSDT": Decimal("-2")})
    report = reconcile(fills(), ledger, redis, initial_cash=CASH0)
    assert not report.passed
    (row,) = report.breaks[report.breaks["field"] == "position"].to_dict("records")
    assert row == {"symbol": "BTCUSDT", "field": "position", "exchange": "0.30000000", "ledger": "0.30000000",
                   "redis": "0.5", "delta": "0.20000000"}


def test_cash_within_one_unit_passes_but_is_still_reported() -> None:
    ledger, redis = views(fills())
    report = reconcile(fills(), ledger, HotView(redis.positions, redis.cash + Decimal("0.5")), initial_cash=CASH0)
    assert report.passed and list(report.breaks["field"]) == ["cash"]
    worse = reconcile(fills(), ledger, HotView(redis.positions, redis.cash + Decimal("1.5")), initial_cash=CASH0)
    assert not worse.passed
