"""Three-way reconciliation on hand-built views: clean, every kind of break, and exact against a
Decimal reference computed without any rounding but the quantisation of each cash effect."""

from __future__ import annotations

from collections import Counter
from decimal import ROUND_HALF_EVEN, Context, Decimal, localcontext

from hypothesis import given, settings
from hypothesis import strategies as st

from stress_pipeline.bench.state import format_state_bench, run_reconcile_bench, state_targets_met
from stress_pipeline.bench.timing import Measurement
from stress_pipeline.state.reconcile import HotView, LedgerView, reconcile, replay
from stress_pipeline.state.records import Fill, fill_from_values

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


# ------------------------------------------------------------------------------ exact vs the reference

_WIDE = Context(prec=200)  # the reference: nothing rounds but the one quantisation


def _reference_cash_delta(qty: Decimal, price: Decimal, fee: Decimal) -> Decimal:
    with localcontext(_WIDE):
        return (-(qty * price) - fee).quantize(Decimal("1e-8"), rounding=ROUND_HALF_EVEN)


def _amount(max_units: int, *, positive: bool = False) -> st.SearchStrategy[Decimal]:
    """Amounts of at most 8 decimals, quantised (exponent -8) or written as a person would ("2.5")."""
    units = st.integers(1 if positive else -max_units, max_units)
    return st.tuples(units, st.booleans()).map(
        lambda pair: Decimal(pair[0]).scaleb(-8).normalize(_WIDE) if pair[1] else Decimal(pair[0]).scaleb(-8)
    )


_row = st.tuples(
    st.sampled_from(["r1", "r2"]), st.sampled_from(["BTCUSDT", "ETHUSDT", "SOLUSDT"]),
    _amount(10**30 - 1), _amount(10**20, positive=True), _amount(10**14),
)  # fmt: skip
_fills = st.lists(_row, max_size=40).map(
    lambda rows: [Fill(run, f"f{i}", i, i, symbol, i, q, p, fee) for i, (run, symbol, q, p, fee) in enumerate(rows)]
)


@settings(max_examples=300, deadline=None)
@given(qty=_amount(10**30), price=_amount(10**30, positive=True), fee=_amount(10**30))
def test_cash_delta_is_exact_for_any_amounts_the_ledger_holds(qty: Decimal, price: Decimal, fee: Decimal) -> None:
    """Up to 30 integer digits each (NUMERIC(38, 8)): products of 60+ digits, which a 28-digit context
    would round before the quantisation."""
    fill = Fill("r", "f", 0, 0, "BTCUSDT", 0, qty, price, fee)
    assert fill.cash_delta == _reference_cash_delta(qty, price, fee)
    assert fill.cash_delta.as_tuple().exponent == -8


def test_cash_delta_does_not_round_before_quantising() -> None:
    qty, price = Decimal("-7616521464.28052751"), Decimal("4549.43001763")  # a 30-digit product
    fill = Fill("r", "f", 0, 0, "X", 0, qty, price, Decimal(0))
    assert fill.cash_delta == Decimal("34650831379521.03368509")
    with localcontext() as default:  # a 28-digit context rounds the product first, then quantises: 1e-8 off
        assert default.prec == 28 and (-qty * price).quantize(Decimal("1e-8")) == Decimal("34650831379521.03368508")
    huge = Fill("r", "f", 0, 0, "X", 0, Decimal("123456789012.12345678"), Decimal("98765432109.87654321"), Decimal(0))
    assert huge.cash_delta == _reference_cash_delta(huge.qty, huge.price, Decimal(0))  # 28 digits could not hold it


@settings(max_examples=200, deadline=None)
@given(exchange=_fills, drop=st.sets(st.integers(0, 39)), twice=st.sets(st.integers(0, 39)), stray=_fills,
       cash0=_amount(10**16))  # fmt: skip
def test_replay_and_fill_keys_equal_the_decimal_reference(
    exchange: list[Fill], drop: set[int], twice: set[int], stray: list[Fill], cash0: Decimal
) -> None:
    strays = [Fill(f.run_id, f"x{f.fill_id}", f.event_id, f.ts_ns, f.symbol, f.order_id, f.qty, f.price, f.fee)
              for f in stray]  # fmt: skip
    stored = [f for i, f in enumerate(exchange) if i not in drop]
    stored += [f for i, f in enumerate(exchange) if i in twice and i not in drop] + strays
    stored.reverse()  # order must not matter
    with localcontext(_WIDE):
        positions: dict[str, Decimal] = {}
        for fill in stored:
            positions[fill.symbol] = positions.get(fill.symbol, Decimal(0)) + fill.qty
        cash = cash0.quantize(Decimal("1e-8")) + sum((_reference_cash_delta(f.qty, f.price, f.fee) for f in stored),
                                                     Decimal(0))  # fmt: skip
    assert replay(stored, cash0) == (positions, cash)

    report = reconcile(exchange, LedgerView(stored, positions, cash), HotView(positions, cash), initial_cash=cash0)
    truth = Counter(f"{f.run_id}:{f.fill_id}" for f in exchange)
    ledger = Counter(f"{f.run_id}:{f.fill_id}" for f in stored)
    assert report.lost_fills == tuple(sorted(truth.keys() - ledger.keys()))
    assert report.duplicated_fills == tuple(sorted(key for key, n in ledger.items() if n > 1))
    assert report.unexpected_fills == tuple(sorted(ledger.keys() - truth.keys()))
    assert report.passed == (not drop & set(range(len(exchange))) and not twice & set(range(len(exchange)))
                             and not strays and replay(exchange, cash0) == (positions, cash))  # fmt: skip


def test_state_bench_prints_each_figure_beside_its_target() -> None:
    reconciled = run_reconcile_bench(2_000, repeat=2)
    assert (reconciled.items, reconciled.repeat) == (2_000, 2) and reconciled.seconds <= reconciled.median_seconds
    results = {
        "ledger": [Measurement("ledger ingest (direct COPY)", 8.0, 9.0, 3, 1_000_000, "fills")],
        "ledger_staged": [Measurement("ledger ingest (staged)", 20.0, 21.0, 3, 1_000_000, "fills")],
        "redis": [Measurement("redis apply_fills", 4.0, 4.0, 3, 100_000, "updates")],
        "reconcile": [reconciled],
    }
    lines = format_state_bench(results).splitlines()
    assert lines[1].endswith(">= 100,000 fills/s  yes") and "125,000 fills/s" in lines[1]
    assert lines[2].endswith("none: replays only    -")
    assert lines[3].endswith(">= 50,000 updates/s   NO") and "25,000 updates/s" in lines[3]
    assert lines[4].endswith("<= 5 s  yes")
    assert not state_targets_met(results)  # Redis missed its target
    results["redis"] = [Measurement("redis apply_fills", 1.0, 1.0, 3, 100_000, "updates")]
    assert state_targets_met(results)  # the staged path has no target of its own
