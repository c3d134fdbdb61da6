"""The simulations group: backtest and paper results per scenario, and the divergence between them.

Both simulation assets return a ``SimResult`` per scenario (stored whole by the result IO manager);
``divergence_report`` and the integrity group receive them as inputs.
"""

import dataclasses
import json

import dagster as dg
import pandas as pd

from stress_pipeline.defs.partitions import scenarios_partitions, symbols_partitions
from stress_pipeline.defs.resources import StressResource
from stress_pipeline.defs.scenarios.assets import scenario_catalog, stressed_bars
from stress_pipeline.scenarios.catalog import scenario_for_key
from stress_pipeline.simulation.plots import equity_comparison_markdown, equity_drawdown_markdown
from stress_pipeline.simulation.result import RESULT_FIELDS, SimResult
from stress_pipeline.simulation.scenario_sims import compare_scenario, scenario_lookahead, simulate_scenario

SIM_INS = {
    "scenario_catalog": dg.AssetIn(scenario_catalog.key),
    "stressed_bars": dg.AssetIn(stressed_bars.key),
}


def _simulation_asset(kind: str, description: str):
    @dg.asset(
        name=f"{kind}_results",
        group_name="simulations",
        partitions_def=scenarios_partitions,
        io_manager_key="result_io_manager",
        ins=SIM_INS,
        backfill_policy=dg.BackfillPolicy.single_run(),
        kinds={"pandas", "numba"},
        description=description,
    )
    def _asset(
        context: dg.AssetExecutionContext, stress: StressResource, scenario_catalog: pd.DataFrame, stressed_bars
    ) -> dict[str, SimResult]:
        policy = stress.trading_policy()
        out = {}
        for key in context.partition_keys:
            scenario = scenario_of(context, scenario_catalog, key)
            config = stress.sim_config(scenario.symbols)
            try:
                lookahead = scenario_lookahead(stressed_bars[key], config)
                if not lookahead.passed:
                    raise dg.Failure(
                        f"{kind} of scenario '{scenario.name}' refused, the lookahead guard failed: "
                        f"{lookahead.summary()}",
                        metadata={"violations": dg.MetadataValue.json([str(v) for v in lookahead.violations[:5]])},
                        allow_retries=False,
                    )
                result = simulate_scenario(kind, stressed_bars[key], scenario, config, policy)
            except ValueError as err:
                raise dg.Failure(f"{kind} of scenario '{scenario.name}': {err}", allow_retries=False) from None
            if kind == "backtest":
                result = dataclasses.replace(result, details={**result.details, "lookahead": lookahead.record()})
            out[key] = result
            context.add_asset_metadata(_result_metadata(result), partition_key=key)
            context.log.info(f"{kind} {key}: PnL {float(result.metrics['total_pnl']):,.2f}")
        return out

    return _asset


backtest_results = _simulation_asset(
    "backtest",
    "The idealised vectorised backtest of the strategy on each scenario (fills at the bar close), with the "
    "lookahead report of the strategy's target weights on the scenario's bars (refused when the guard fails).",
)
paper_results = _simulation_asset(
    "paper",
    "The event-driven paper simulation: policy controller, risk stack, order router, exchange simulator "
    "with latency, partial fills, costs, rate limits and the scenario's faults (refused when the lookahead "
    "guard fails).",
)


@dg.asset(
    group_name="simulations",
    partitions_def=scenarios_partitions,
    io_manager_key="parquet_io_manager",
    ins={
        **SIM_INS,
        "backtest_results": dg.AssetIn(backtest_results.key),
        "paper_results": dg.AssetIn(paper_results.key),
    },
    backfill_policy=dg.BackfillPolicy.single_run(),
    kinds={"pandas"},
)
def divergence_report(
    context: dg.AssetExecutionContext, stress: StressResource, scenario_catalog: pd.DataFrame, stressed_bars,
    backtest_results, paper_results,
) -> dict[str, pd.DataFrame]:  # fmt: skip
    """Backtest vs paper per scenario: divergence of PnL, win rate, drawdown and trades; PnL attribution."""
    policy = stress.trading_policy()
    out = {}
    for key in context.partition_keys:
        scenario = scenario_of(context, scenario_catalog, key)
        config = stress.sim_config(scenario.symbols)
        backtest, paper = backtest_results[key], paper_results[key]
        comparison = compare_scenario(backtest, paper, stressed_bars[key], scenario, config, policy)
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


def scenario_of(context: dg.AssetExecutionContext, catalog: pd.DataFrame, key: str):
    """The scenario of a partition key, or a clear failure."""
    try:
        return scenario_for_key(catalog, key, context.instance.get_dynamic_partitions(symbols_partitions.name))
    except KeyError as err:
        raise dg.Failure(f"{err}; materialise scenario_catalog first") from None


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
    if "lookahead" in result.details:
        metadata["lookahead"] = dg.MetadataValue.text(str(result.details["lookahead"]["summary"]))
    if result.events is not None:
        transitions = result.events[result.events["kind"].isin(["ess_transition", "policy_change"])]
        metadata["emergency_stops"] = dg.MetadataValue.int(int(record.get("emergency_stops") or 0))
        metadata["transitions"] = dg.MetadataValue.md(
            transitions[["ts", "kind", "reason", "details"]].head(50).to_markdown(index=False)
            if len(transitions) else "no ESS or policy transitions"
        )
    return metadata
