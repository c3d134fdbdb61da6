"""The system under test is pluggable: a user's decider by import path is what the drills and the
decision flood call (through the core, the CLI and a real Dagster run), and a path that does not
load is an error naming it."""

from __future__ import annotations

import importlib
import math
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from stress_pipeline.cli import main as cli_main
from stress_pipeline.defs import build_definitions
from stress_pipeline.defs.resources import stress_resource_from_env
from stress_pipeline.drills.decision_flood import run_redis_flood
from stress_pipeline.drills.registry import run_drill
from stress_pipeline.drills.risk_drills import DrillEnv
from stress_pipeline.services import redis_client
from stress_pipeline.trading.risk.decision import DecisionSpecError

USER_MODULE = """
from stress_pipeline.trading.risk.decision import Decision

CALLS = []

def refuse_all(request):
    CALLS.append(request.request_id)
    return Decision.block("USER_REFUSED")

def allow_all(request):
    return Decision.allow(request.qty)

class BookKeeper:
    '''Allows everything and keeps the book it approved, told when an order did not fill.'''
    def __init__(self):
        self.book = {}
    def decide(self, request):
        self.book[request.symbol] = self.book.get(request.symbol, 0.0) + request.signed_qty
        return Decision.allow(request.qty)
    def positions(self):
        return dict(self.book)
    def release(self, symbol, signed_qty):
        self.book[symbol] -= signed_qty

NOT_A_DECIDER = 42
"""


@pytest.fixture(scope="module")
def user_module(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("drill-deciders")
    name = f"drill_deciders_{uuid.uuid4().hex[:8]}"
    (root / f"{name}.py").write_text(textwrap.dedent(USER_MODULE))
    sys.path.insert(0, str(root))
    try:
        yield name
    finally:
        sys.path.remove(str(root))
        sys.modules.pop(name, None)


@pytest.fixture
def env(external_service_urls, tmp_path: Path) -> DrillEnv:
    return DrillEnv(redis_url=external_service_urls.redis_url, alerts_dir=str(tmp_path / "alerts"),
                    namespace=f"stress-test-{uuid.uuid4().hex[:12]}")  # fmt: skip


def _leftovers(env: DrillEnv) -> list:
    client = redis_client(env.redis_url)
    try:
        return list(client.scan_iter(match=f"{env.namespace}:*"))
    finally:
        client.close()


def _by_criterion(result) -> dict[str, tuple[str, float, str]]:
    return {r.criterion: (r.outcome, r.value, r.detail) for r in result.table.itertuples()}


# ---------------------------------------------------------------------------------------- the drills


def test_a_drill_calls_the_users_decider_and_judges_what_it_decided(env: DrillEnv, user_module: str) -> None:
    calls = importlib.import_module(user_module)
    calls.CALLS.clear()
    refused = run_drill("correlation_cascade", DrillEnv(**{**env.__dict__, "decider": f"{user_module}:refuse_all"}))
    rows = _by_criterion(refused)
    # nothing was bought, so the market's fall never reached the account: the halt was never exercised
    assert len(calls.CALLS) > 5 and not refused.passed
    assert rows["halt at drawdown > 15%"][0] == "not_exercised"
    assert rows["loss contained"][:2] == ("pass", 0.0)
    # a decider that allows everything ignores the halt the governor set in Redis: the drill fails it
    allowed = run_drill("correlation_cascade", DrillEnv(**{**env.__dict__, "decider": f"{user_module}:allow_all"}))
    rows = _by_criterion(allowed)
    assert rows["halt at drawdown > 15%"][0] == "pass"
    assert rows["new trades after the halt"][0] == "fail" and rows["new trades after the halt"][1] > 0
    assert not allowed.passed
    assert _leftovers(env) == []


def test_the_default_decider_passes_where_the_users_blocks(env: DrillEnv) -> None:
    result = run_drill("correlation_cascade", env)
    assert result.passed, result.table.to_string()


def test_a_decider_book_is_compared_only_when_the_decider_shows_one(env: DrillEnv, user_module: str) -> None:
    keeper = run_drill("exchange_outage", DrillEnv(**{**env.__dict__, "decider": f"{user_module}:BookKeeper"}))
    outcome, value, detail = _by_criterion(keeper)["decider book equals the venue position"]
    # the orders rejected during the outage were released from the user's book, so it equals the venue
    book, venue = (float(part.split()[-1]) for part in detail.split(", "))
    assert (outcome, value) == ("pass", 0.0) and book == venue > 0
    assert keeper.passed, keeper.table.to_string()
    bare = run_drill("exchange_outage", DrillEnv(**{**env.__dict__, "decider": f"{user_module}:allow_all"}))
    outcome, value, detail = _by_criterion(bare)["decider book equals the venue position"]
    assert outcome == "not_exercised" and math.isnan(value)
    assert detail == f"decider '{user_module}:allow_all' has no positions(): no book to compare"
    assert not bare.passed
    assert _leftovers(env) == []


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("no_colon", r"decision function 'no_colon': expected 'package.module:callable'"),
        ("no_such_module_xyz:fn", r"decision function 'no_such_module_xyz:fn': cannot import module"),
        ("{mod}:missing", r"decision function '{mod}:missing': module '{mod}' has no attribute 'missing'"),
        ("{mod}:NOT_A_DECIDER", r"decision function '{mod}:NOT_A_DECIDER' is neither callable nor has decide"),
    ],
)
def test_a_drill_with_a_bad_decider_names_it_and_leaves_nothing(
    env: DrillEnv, user_module: str, spec: str, message: str
) -> None:
    spec = spec.format(mod=user_module)
    for name in ("correlation_cascade", "exchange_outage"):
        with pytest.raises(DecisionSpecError, match=message.format(mod=user_module)):
            run_drill(name, DrillEnv(**{**env.__dict__, "decider": spec}))
    assert _leftovers(env) == []


def test_the_drills_cli_takes_a_decider(capsys, user_module: str, monkeypatch, external_service_urls) -> None:
    monkeypatch.setenv("STRESS_REDIS_URL", external_service_urls.redis_url)
    assert cli_main(["drills", "run", "correlation_cascade", "--decider", f"{user_module}:refuse_all"]) == 1
    out = capsys.readouterr().out
    assert "correlation_cascade: FAIL" in out and "not_exercised" in out


# ----------------------------------------------------------------------------------------- the flood


def test_the_flood_calls_the_users_decider(external_service_urls, user_module: str) -> None:
    calls = importlib.import_module(user_module)
    calls.CALLS.clear()
    result = run_redis_flood(external_service_urls.redis_url, rate=1_000, seconds=0.3,
                             decider=f"{user_module}:refuse_all")  # fmt: skip
    assert result.reasons == {"USER_REFUSED": 300} and sorted(calls.CALLS) == list(range(300))
    with pytest.raises(DecisionSpecError, match=rf"'{user_module}:NOT_A_DECIDER' is neither callable"):
        run_redis_flood(external_service_urls.redis_url, rate=1_000, seconds=0.1,
                        decider=f"{user_module}:NOT_A_DECIDER")  # fmt: skip


# -------------------------------------------------------------------------------- through Dagster


@pytest.fixture
def defs_with(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, external_service_urls):
    def build(decider: str) -> tuple[dg.Definitions, dict]:
        monkeypatch.setenv("STRESS_HOME", str(tmp_path / "home"))
        monkeypatch.setenv("STRESS_DECIDER", decider)
        defs = build_definitions()
        return defs, {**defs.resources, "stress": stress_resource_from_env()}

    return build


def test_stress_decider_reaches_the_flood_and_the_drills_in_a_dagster_run(defs_with, user_module: str) -> None:
    defs, resources = defs_with(f"{user_module}:refuse_all")
    with dg.instance_for_test() as instance:
        flood = dg.materialize(
            [*defs.assets, *defs.asset_checks], selection=["decision_flood"], instance=instance, resources=resources,
            run_config={"ops": {"decision_flood": {"config": {"rate": 1_000.0, "seconds": 0.5}}}},
        )  # fmt: skip
        meta = flood.get_asset_materialization_events()[0].materialization.metadata
        assert meta["reasons"].value == {"USER_REFUSED": 500}
        assert meta["decider"].value == f"{user_module}:refuse_all"
        drill = dg.materialize(
            [*defs.assets, *defs.asset_checks], selection=["drills"], partition_key="correlation_cascade",
            instance=instance, resources=resources, raise_on_error=False,
        )  # fmt: skip
        table = drill.output_for_node("drills")
        outcome = dict(zip(table["criterion"], table["outcome"], strict=True))
        assert outcome["halt at drawdown > 15%"] == "not_exercised"
        checks = {e.check_name: e for e in drill.get_asset_check_evaluations()}
        assert not checks["drill_criteria_met"].passed


def test_a_bad_stress_decider_fails_the_run_naming_it(defs_with) -> None:
    defs, resources = defs_with("no_such_module_xyz:decide")
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [*defs.assets, *defs.asset_checks], selection=["decision_flood"], instance=instance, resources=resources,
            run_config={"ops": {"decision_flood": {"config": {"rate": 1_000.0, "seconds": 0.1}}}},
            raise_on_error=False,
        )  # fmt: skip
        assert not result.success
        (failure,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
        assert "decision function 'no_such_module_xyz:decide': cannot import module" in str(
            failure.step_failure_data.error
        )
