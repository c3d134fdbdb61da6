"""The simulations group: backtest and paper results per scenario, and the divergence between them."""

import json

import dagster as dg
import pandas as pd

from stress_pipeline.defs.partitions import scenarios_partitions, symbols_partitions
from stress_pipeline.defs.scenarios.assets import scenario_catalog, stressed_bars
from stress_pipeline.scenarios.catalog import scenario_for_key
from stress_pipeline.settings import get_settings
from stress_pipeline.simulation.plots import equity_comparison_markdown, equity_drawdown_markdown
from stress_pipeline.simulation.result import RESULT_FIELDS, SimResult
from stress_pipeline.simulation.scenario_sims import compare_scenario, simulate_scenario
from stress_pipeline.simulation.storage import load_result, result_dir, save_result

RESOURCES = {"parquet_io_manager", "simulation"}


def _simulation_asset(kind: str, description: str):
    @dg.asset(
        name=f"{kind}_results",
        group_name="simulations",
        partitions_def=scenarios_partitions,
        io_manager_key="parquet_io_manager",
        required_resource_keys=RESOURCES,
        ins={"scenario_catalog": dg.AssetIn(scenario_catalog.key)},
        deps=[stressed_bars],
        backfill_policy=dg.BackfillPolicy.single_run(),
        kinds={"pandas", "numba"},
        description=description,
    )
    def _asset(context: dg.AssetExecutionContext, scenario_catalog: pd.DataFrame) -> dict[str, pd.DataFrame]:
        settings = context.resources.simulation
        config, policy = settings.sim_config(), settings.trading_policy()
        out = {}
        for key in context.partition_keys:
            scenario, stressed = load_scenario_bars(context, scenario_catalog, key)
            try:
                result = simulate_scenario(kind, stressed, scenario, config, policy)
            except ValueError as err:
                raise dg.Failure(f"{kind} of scenario '{scenario.name}': {err}") from None
            save_result(result, result_dir(get_settings().storage_dir, kind, key))
            out[key] = pd.DataFrame([_flat_record(result)])
            context.add_asset_metadata(_result_metadata(result), partition_key=key)
        return out

    return _asset


backtest_results = _simulation_asset(
    "backtest", "The idealised vectorised backtest of the strategy on each scenario: fills at the bar close."
)
paper_results = _simulation_asset(
    "paper",
    "The event-driven paper simulation: policy controller, risk stack, order router, exchange simulator "
    "with latency, partial fills, costs, rate limits and the scenario's faults.",
)


@dg.asset(
    group_name="simulations",
    partitions_def=scenarios_partitions,
    io_manager_key="parquet_io_manager",
    required_resource_keys=RESOURCES,
    ins={"scenario_catalog": dg.AssetIn(scenario_catalog.key)},
    deps=[backtest_results, paper_results],
    backfill_policy=dg.BackfillPolicy.single_run(),
    kinds={"pandas"},
)
def divergence_report(context: dg.AssetExecutionContext, scenario_catalog: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Backtest vs paper per scenario: divergence of PnL, win rate, drawdown and trades; PnL attribution."""
    settings = context.resources.simulation
    config, policy = settings.sim_config(), settings.trading_policy()
    storage = get_settings().storage_dir
    out = {}
    for key in context.partition_keys:
        scenario, stressed = load_scenario_bars(context, scenario_catalog, key)
        backtest, paper = (load_sim(storage, kind, key) for kind in ("backtest", "paper"))
        comparison = compare_scenario(backtest, paper, stressed, scenario, config, policy)
        table = comparison.divergence_table().assign(scenario=key)
        out[key] = table
        waterfall = comparison.attribution.table()
        context.add_asset_metadata(
            {
                "passed": dg.MetadataValue.bool(comparison.passed),
                "divergence": dg.MetadataValue.md(table.drop(columns="scenario").to_markdown(index=False)),
                "divergence_json": dg.MetadataValue.json(json.loads(table.to_json(orient="records"))),
                "attribution": dg.MetadataValue.md(waterfall.to_markdown(index=False, floatfmt=",.2f")),
                "attribution_residual": dg.MetadataValue.float(comparison.attribution.residual),
                "equity": dg.MetadataValue.md(equity_comparison_markdown(backtest, paper)),
            },
            partition_key=key,
        )
    return out


def load_scenario_bars(context, catalog: pd.DataFrame, key: str):
    """The scenario of a partition and its stored stressed bars."""
    symbols = context.instance.get_dynamic_partitions(symbols_partitions.name)
    try:
        scenario = scenario_for_key(catalog, key, symbols)
        stressed = context.resources.parquet_io_manager.load_partition(stressed_bars.key, key)
    except (KeyError, FileNotFoundError) as err:
        raise dg.Failure(f"{err}; materialise stressed_bars first") from None
    return scenario, stressed


def load_sim(storage, kind: str, key: str) -> SimResult:
    try:
        return load_result(result_dir(storage, kind, key))
    except FileNotFoundError:
        raise dg.Failure(f"no {kind} result for '{key}': materialise {kind}_results first") from None


def _flat_record(result: SimResult) -> dict[str, object]:
    record = result.record()
    return {k: json.dumps(v) if isinstance(v, list | dict) else v for k, v in record.items()}


def _result_metadata(result: SimResult) -> dict[str, object]:
    record = result.record()
    seed_fields = {key: record[key] for key in RESULT_FIELDS if key != "equity_curve_sample"}
    metadata: dict[str, object] = {
        "total_pnl": dg.MetadataValue.float(float(record["total_pnl"])),
        "max_drawdown": dg.MetadataValue.float(float(record["max_drawdown"])),
        "total_trades": dg.MetadataValue.int(int(record["total_trades"])),
        "result": dg.MetadataValue.json(json.loads(json.dumps(seed_fields, default=str))),
        "equity_and_drawdown": dg.MetadataValue.md(equity_drawdown_markdown(result)),
    }
    if result.events is not None:
        transitions = result.events[result.events["kind"].isin(["ess_transition", "policy_change"])]
        metadata["emergency_stops"] = dg.MetadataValue.int(int(record.get("emergency_stops") or 0))
        metadata["transitions"] = dg.MetadataValue.md(
            transitions[["ts", "kind", "reason", "details"]].head(50).to_markdown(index=False)
            if len(transitions) else "no ESS or policy transitions"
        )
    return metadata
