"""The lite group: the hourly flash-crash lite on the live book (``stress_pipeline.lite``)."""

import dagster as dg
import pandas as pd

from stress_pipeline.defs.io_manager import NotMaterialisedError, PartitionValues
from stress_pipeline.defs.lite.resources import LiteResource
from stress_pipeline.defs.market.assets import market_bars
from stress_pipeline.defs.monitoring.resources import AlertingResource
from stress_pipeline.defs.resources import StressResource
from stress_pipeline.lite.evaluate import LiteInputError, market_reference
from stress_pipeline.lite.killswitch import KillSwitchLedger
from stress_pipeline.lite.run import lite_config, lite_table, no_book_table, plain, respond_to_breach, run_lite
from stress_pipeline.lite.symbol_sets import SymbolSetError
from stress_pipeline.market.schema import concat_bars
from stress_pipeline.monitoring.delivery import AlertSender
from stress_pipeline.monitoring.queue import AlertQueue
from stress_pipeline.state.hot_state import HotState, HotStateError

#: The durable alert queue of the lite run, under $STRESS_HOME/alerts.
ALERT_QUEUE = "lite"


@dg.asset(
    group_name="lite",
    io_manager_key="parquet_io_manager",
    ins={
        # Every symbol (read lazily: only the set's symbols are loaded) for the prices and the normal VaR.
        "market_bars": dg.AssetIn(market_bars.key, partition_mapping=dg.AllPartitionMapping()),
    },
    kinds={"pandas", "redis"},
)
def lite_stress(
    context: dg.AssetExecutionContext, stress: StressResource, alerting: AlertingResource, lite: LiteResource,
    market_bars: PartitionValues,
) -> dg.Output[pd.DataFrame]:  # fmt: skip
    """The flash-crash lite on the live book: the `lite` resource's run, read from Redis, shocked on its
    symbol set; a breach sets the KILL_SWITCH, pages once per set and hour and is recorded in the ledger."""
    settings = stress.settings()
    client = stress.get_redis()
    if not HotState(client, lite.run_id, namespace=lite.namespace).exists():
        table = no_book_table(lite.symbol_set, lite.scenario, lite.run_id, lite.namespace)
        context.log.warning(table["detail"].iloc[0])
        return dg.Output(table, metadata={"breached": False, "exercised": False,
                                          "detail": dg.MetadataValue.text(table["detail"].iloc[0])})  # fmt: skip
    try:
        config = lite_config(settings.data_dir, run_id=lite.run_id, namespace=lite.namespace,
                             symbol_set_name=lite.symbol_set, scenario=lite.scenario,
                             var_horizon_s=lite.var_horizon_s)  # fmt: skip
        bars = concat_bars([market_bars[symbol] for symbol in config.symbols if symbol in market_bars])
        market = market_reference(bars, config.symbols, lookback_bars=lite.lookback_bars)
        result = run_lite(client, config, market)
    except NotMaterialisedError as err:
        raise dg.Failure(f"{err}; run `stress-pipeline run --select group:market` first") from None
    except (LiteInputError, SymbolSetError, HotStateError) as err:
        raise dg.Failure(str(err)) from None
    response = None
    with AlertQueue(settings.paths.alerts / ALERT_QUEUE) as queue:
        # An alert an earlier run could not deliver is still queued: every run tries it again.
        sender = AlertSender(alerting.endpoint(settings, stress.ledger_url), queue) if result.breached or \
            len(queue) else None  # fmt: skip
        if result.breached:
            response = respond_to_breach(result, config, client=client, ledger=KillSwitchLedger(stress.get_engine()),
                                         sender=sender)  # fmt: skip
            switch = "set" if response.kill_switch_set else "already on"
            context.log.error(f"lite stress breach: {response.kill_switch.reason}; kill switch {switch}, "
                              f"alert {response.alert}")  # fmt: skip
        elif sender is not None:
            for delivery in sender.deliver_pending():
                context.log.info(f"earlier lite alert {delivery.dedup_key}: {delivery.outcome}")
    table = lite_table(result, response)
    metadata = {
        "breached": dg.MetadataValue.bool(result.breached),
        "exercised": dg.MetadataValue.bool(result.exercised),
        "figures": dg.MetadataValue.md(table[["criterion", "value", "threshold", "breached"]].to_markdown(index=False)),
        "summary": dg.MetadataValue.json(plain(result.summary())),
        "symbols": len(config.symbols),
    }
    if response is not None:
        metadata["breach_response"] = dg.MetadataValue.json(response.as_dict())
    return dg.Output(table, metadata=metadata)
