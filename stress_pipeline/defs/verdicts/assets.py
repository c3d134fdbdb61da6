"""The verdicts group: each scenario's verdict on its partition, and the table of all of them.

``scenario_verdict`` judges one scenario from what the market, scenarios and simulations groups stored
(its stressed bars, its backtest and paper results, the market bars of its symbols for the unstressed
baseline run, as ``stressed_bars`` anchors windows on) through
``stress_pipeline.verdicts.judge``; ``scenario_verdicts`` gathers every partition's rows into the one
table the certification, the CLI and the report read.
"""

import json

import dagster as dg
import pandas as pd

from stress_pipeline.defs.io_manager import NotMaterialisedError, PartitionValues
from stress_pipeline.defs.market.assets import market_bars
from stress_pipeline.defs.partitions import scenarios_partitions
from stress_pipeline.defs.resources import StressResource
from stress_pipeline.defs.scenarios.assets import scenario_catalog, stressed_bars
from stress_pipeline.defs.simulations.assets import backtest_results, paper_results, scenario_of
from stress_pipeline.market.schema import concat_bars
from stress_pipeline.verdicts.anchor import baseline_run
from stress_pipeline.verdicts.judge import judge_scenario
from stress_pipeline.verdicts.report import outcome_counts, verdict_markdown
from stress_pipeline.verdicts.table import scenario_outcomes, validate_verdict_table


@dg.asset(
    group_name="verdicts",
    partitions_def=scenarios_partitions,
    io_manager_key="parquet_io_manager",
    ins={
        "scenario_catalog": dg.AssetIn(scenario_catalog.key),
        # Every symbol (read lazily: only the scenario's symbols are loaded) for the unstressed baseline run.
        "market_bars": dg.AssetIn(market_bars.key, partition_mapping=dg.AllPartitionMapping()),
        "stressed_bars": dg.AssetIn(stressed_bars.key),
        "backtest_results": dg.AssetIn(backtest_results.key),
        "paper_results": dg.AssetIn(paper_results.key),
    },
    backfill_policy=dg.BackfillPolicy.single_run(),
    kinds={"pandas"},
)
def scenario_verdict(
    context: dg.AssetExecutionContext, stress: StressResource, scenario_catalog: pd.DataFrame,
    market_bars: PartitionValues, stressed_bars: PartitionValues, backtest_results, paper_results,
) -> dict[str, pd.DataFrame]:  # fmt: skip
    """One scenario's verdict: every criterion (its pack's ``expect`` over its type's defaults) judged on the
    stress window (the bars the scenario changed plus a recovery tail), with the figures of the stressed
    paper run, of the unstressed baseline over the same window, and the stress impact."""
    policy = stress.trading_policy()
    baselines: dict[tuple[str, ...], object] = {}
    out = {}
    for key in context.partition_keys:
        scenario = scenario_of(context, scenario_catalog, key)
        symbols = tuple(scenario.symbols)
        if symbols not in baselines:
            config = stress.sim_config(symbols)
            baselines[symbols] = baseline_run(symbols, _market(market_bars, symbols), config, policy)
        verdict = judge_scenario(
            scenario, stressed_bars[key], paper_results[key], backtest_results[key], baselines[symbols],
            policy, key=key,
        )  # fmt: skip
        out[key] = verdict.table
        figures = verdict.figures_table()
        context.add_asset_metadata(
            {
                "outcome": dg.MetadataValue.text(verdict.outcome),
                "failed": dg.MetadataValue.json(verdict.failed),
                "window": dg.MetadataValue.text(verdict.window.describe()),
                "verdict": dg.MetadataValue.md(verdict_markdown(verdict.table)),
                "figures": dg.MetadataValue.md(figures.to_markdown(index=False, floatfmt=",.4f")),
                "figures_json": dg.MetadataValue.json(json.loads(figures.to_json(orient="records"))),
            },
            partition_key=key,
        )
        context.log.info(f"verdict {key}: {verdict.outcome}" + "".join(f"; {f}" for f in verdict.failed))
    return out


@dg.asset(
    group_name="verdicts",
    io_manager_key="parquet_io_manager",
    ins={"scenario_verdict": dg.AssetIn(scenario_verdict.key, partition_mapping=dg.AllPartitionMapping())},
    kinds={"pandas"},
)
def scenario_verdicts(context: dg.AssetExecutionContext, scenario_verdict: PartitionValues) -> dg.Output[pd.DataFrame]:
    """Every scenario x criterion with its value, threshold and outcome (pass, fail, not exercised): the table the
    certification reads. Scenarios whose verdict was never materialised are listed in ``missing``."""
    tables, missing = [], []
    for key in scenario_verdict:
        try:
            tables.append(scenario_verdict[key])
        except NotMaterialisedError:
            missing.append(key)
    table = validate_verdict_table(pd.concat(tables, ignore_index=True)) if tables else None
    if table is None:
        raise dg.Failure(f"no scenario verdict is materialised (partitions {', '.join(missing) or 'none'})")
    outcomes = scenario_outcomes(table)
    counts = outcome_counts(outcomes)
    if missing:
        context.log.warning(f"scenario verdicts not materialised: {', '.join(missing)}")
    return dg.Output(
        table,
        metadata={
            **{f"scenarios_{name}": dg.MetadataValue.int(n) for name, n in counts.items()},
            "missing": dg.MetadataValue.json(missing),
            "scenarios": dg.MetadataValue.md(outcomes.to_markdown(index=False)),
            "verdicts": dg.MetadataValue.md(verdict_markdown(table)),
            "outcomes_json": dg.MetadataValue.json(json.loads(outcomes.to_json(orient="records"))),
        },
    )


def _market(market_bars: PartitionValues, symbols: tuple[str, ...]) -> pd.DataFrame:
    """The unstressed bars of ``symbols``, as ``stressed_bars`` reads them."""
    try:
        return concat_bars([market_bars[symbol] for symbol in symbols])
    except (KeyError, NotMaterialisedError) as err:
        raise dg.Failure(f"{err}; run `stress-pipeline run --select group:market` first") from None
