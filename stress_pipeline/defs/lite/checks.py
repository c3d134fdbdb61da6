"""The lite stress's check: the live book stands the shock within every threshold."""

import dagster as dg
import pandas as pd

from stress_pipeline.defs.lite.assets import lite_stress

LITE_WITHIN_LIMITS = "lite_within_limits"


@dg.asset_check(
    asset=lite_stress,
    name=LITE_WITHIN_LIMITS,
    description=(
        "Every figure of the flash-crash lite on the live book (drawdown, VaR multiple, position delta) is within "
        "its threshold. A breach fails with severity ERROR (the kill switch is set and the on-call paged by the "
        "asset); a book without positions, or no live book at all, fails with WARN: nothing was stressed, which "
        "is not a pass."
    ),
)
def lite_within_limits(lite_stress: pd.DataFrame) -> dg.AssetCheckResult:
    breached = lite_stress[lite_stress["breached"]]
    exercised = bool(lite_stress["exercised"].all())
    values = {row.criterion: f"{row.value:.4g} (limit {row.threshold:.4g})" for row in lite_stress.itertuples()}
    detail = "; ".join(sorted(set(lite_stress["detail"]) - {""}))
    names = breached["criterion"].tolist()
    metadata = {"figures": dg.MetadataValue.json(values), "breached": dg.MetadataValue.json(names)}
    if names:
        where = lite_stress["symbol_set"].iloc[0]
        return dg.AssetCheckResult(
            passed=False, severity=dg.AssetCheckSeverity.ERROR, metadata=metadata,
            description=f"BREACH on {where}: " + "; ".join(f"{name} {values[name]}" for name in names),
        )  # fmt: skip
    if not exercised:
        return dg.AssetCheckResult(passed=False, severity=dg.AssetCheckSeverity.WARN, metadata=metadata,
                                   description=f"NOT EXERCISED: {detail}")  # fmt: skip
    return dg.AssetCheckResult(passed=True, metadata=metadata)
