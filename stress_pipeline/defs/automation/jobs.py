"""The suite jobs and the hourly lite job.

Dagster runs one partitions definition per run, and a suite spans four (symbols, scenarios, drills,
days). A suite job is therefore one run whose single op materialises the suite's selection through
the project's runner (``defs/runner.py``, what `stress-pipeline run` uses): group by group in
dependency order, every scenario partition of the suite in one run of each scenario group (their
single-run backfill policy), each group a run of its own on the same instance, so the UI lists
them beside the suite's run. The suite run fails when a partition failed or a blocking check did
not pass (a WARN check, a NO-GO certification, does not fail it: the certification sensor pages).

The launchpad takes the system under test and its policy as the ``stress`` resource's config
(strategy, strategy_params, policy, decider, ...), which every group run of the suite uses; the
op's config can replace the suite's selection or scenarios for one run.

``hourly_flash_crash_lite`` is the asset job of group ``lite``. Its executor waits, before any step,
until the run's ``stress_pipeline/not_before`` tag (the slot plus the documented offset, set by the
schedule): the offset cron cannot express is applied by the run itself.
"""


import time
from datetime import UTC, datetime

import dagster as dg
from pydantic import Field

from stress_pipeline.automation.market_hours import offset_wait_s
from stress_pipeline.automation.suites import SUITES_FILE, suite_named
from stress_pipeline.defs.resources import StressResource

NIGHTLY_CORE_SUITE = "nightly_core_suite"
WEEKLY_FULL_SWEEP = "weekly_full_sweep"
HOURLY_FLASH_CRASH_LITE = "hourly_flash_crash_lite"
LITE_GROUP = "lite"
NOT_BEFORE_TAG = "stress_pipeline/not_before"
SUITE_TAG = "stress_pipeline/suite"


class SuiteConfig(dg.Config):
    """One run's changes to its suite (empty: the suite as data/suites.yaml defines it)."""

    select: str = Field(default="", description="a Dagster asset selection replacing the suite's")
    scenarios: list[str] = Field(default_factory=list, description="scenario partition keys replacing the suite's")


def suite_job(name: str, description: str) -> dg.JobDefinition:
    """The job of suite ``name`` of data/suites.yaml: one op that runs the suite."""

    @dg.op(name=f"{name}_run", description=f"Materialise the {name} suite (data/suites.yaml), group by group.")
    def run_suite(context: dg.OpExecutionContext, config: SuiteConfig, stress: StressResource) -> None:
        summary = _run_suite(context, name, config, stress)
        failed = [f"{s.asset}[{s.partition}]: {s.error or s.status}" for s in summary.steps
                  if s.status != "materialized"]  # fmt: skip
        failed += [f"{v.asset}.{v.check}[{v.partition}]: {v.status}" for v in summary.checks if not v.ok]
        counts = {status: sum(1 for s in summary.steps if s.status == status)
                  for status in ("materialized", "failed", "skipped")}  # fmt: skip
        metadata = {**{k: dg.MetadataValue.int(v) for k, v in counts.items()},
                    "runs": dg.MetadataValue.int(len(summary.runs))}  # fmt: skip
        if not summary.ok:
            shown = "\n".join(failed[:20]) + (f"\n... and {len(failed) - 20} more" if len(failed) > 20 else "")
            raise dg.Failure(description=f"{name}: {len(failed)} partition(s) or check(s) did not pass:\n{shown}",
                             metadata=metadata)  # fmt: skip
        done, runs = counts["materialized"], len(summary.runs)
        context.log.info(f"{name}: {done} asset partition(s) materialised in {runs} run(s)")

    @dg.job(name=name, description=description, tags={SUITE_TAG: name})
    def the_job() -> None:
        run_suite()

    return the_job


def _run_suite(context: dg.OpExecutionContext, name: str, config: SuiteConfig, stress: StressResource):
    from stress_pipeline.defs import build_definitions
    from stress_pipeline.defs.partitions import SCENARIOS_PARTITIONS_NAME
    from stress_pipeline.defs.runner import Runner, register_symbols, resolve_selection
    from stress_pipeline.market.symbols import discover_symbol_files
    from stress_pipeline.scenarios.catalog import build_catalog

    settings = stress.settings()
    suite = suite_named(settings.data_dir / SUITES_FILE, name)
    scenarios = list(config.scenarios)
    if not scenarios and not suite.every_scenario:
        on_disk = sorted(discover_symbol_files(settings.bars_dir))
        catalog = build_catalog(settings.stress_packs_dir, known_symbols=on_disk,
                                memory_budget=settings.scenario_memory_bytes)  # fmt: skip
        scenarios = suite.scenario_keys(catalog.scenarios)
    base = build_definitions()
    # Every group run of the suite uses the run's own `stress` (the launchpad's system under test).
    defs = dg.Definitions(assets=base.assets, asset_checks=base.asset_checks,
                          resources={**base.resources, "stress": stress})  # fmt: skip
    register_symbols(context.instance, settings)
    keys = resolve_selection(defs, config.select or suite.select)
    context.log.info(f"{name}: {len(keys)} asset(s), scenarios: {', '.join(scenarios) if scenarios else 'every one'}")

    def started(number: int, total: int, label: str, _partitions) -> None:
        context.log.info(f"{name}: run {number}/{total}: {label}")

    return Runner(defs, context.instance, on_run=started).run(
        keys, partitions={SCENARIOS_PARTITIONS_NAME: scenarios} if scenarios else None
    )


class NotBeforeExecutor(dg.Executor):
    """The in-process executor, after waiting for the run's ``not_before`` tag (if any)."""

    def __init__(self, inner: dg.Executor):
        self._inner = inner

    @property
    def retries(self):
        return self._inner.retries

    @property
    def step_dependency_config(self):
        return self._inner.step_dependency_config

    def execute(self, plan_context, execution_plan):
        not_before = plan_context.dagster_run.tags.get(NOT_BEFORE_TAG)
        if not_before:
            wait = offset_wait_s(datetime.fromisoformat(not_before), datetime.now(UTC))
            time.sleep(wait)
        yield from self._inner.execute(plan_context, execution_plan)


@dg.executor(name="not_before_in_process", config_schema=dg.in_process_executor.config_schema)
def not_before_executor(init_context) -> dg.Executor:
    return NotBeforeExecutor(dg.in_process_executor.executor_creation_fn(init_context))


nightly_core_suite = suite_job(
    NIGHTLY_CORE_SUITE,
    "The core scenarios (major and catastrophic, no Monte Carlo, and the baseline) through the simulations, "
    "the reconciliation, the verdicts, every drill, the monitoring and the certification.",
)
weekly_full_sweep = suite_job(
    WEEKLY_FULL_SWEEP,
    "Every scenario (Monte Carlo included) and every drill, the certification and its report.",
)
hourly_flash_crash_lite = dg.define_asset_job(
    HOURLY_FLASH_CRASH_LITE,
    selection=dg.AssetSelection.groups(LITE_GROUP),
    executor_def=not_before_executor,
    description="The flash-crash lite stress of the live book (asset group lite); waits for the slot's offset.",
)
