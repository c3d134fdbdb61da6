"""The certification's check: GO, or a warning naming every gate that stops it.

WARN severity: a NO-GO is a finding about the system under test, not a failure of the pipeline, so
`stress-pipeline run` still exits 0 when everything ran (`stress-pipeline certify` exits 1 on NO-GO).
"""

import dagster as dg

import stress_pipeline.defs.partitions  # noqa: F401  (silences the partitioned-check preview warning first)
from stress_pipeline.certification.decide import Certification
from stress_pipeline.defs.certification.assets import certification, certification_days
from stress_pipeline.defs.checks import Verdict, report_per_partition
from stress_pipeline.defs.io_manager import PartitionValues

CERTIFICATION_GO = "certification_go"


@dg.asset_check(
    asset=certification,
    name=CERTIFICATION_GO,
    partitions_def=certification_days,
    description="Every gate passes and the readiness checklist is complete (GO); otherwise the reasons.",
)
def certification_go(context: dg.AssetCheckExecutionContext, certification: PartitionValues) -> None:
    verdicts = {}
    for day in context.partition_keys:
        result = Certification.from_table(certification[day])
        verdicts[day] = Verdict(
            passed=result.passed,
            metadata={
                "verdict": dg.MetadataValue.text(result.verdict),
                "reasons": dg.MetadataValue.md("\n".join(f"- {r}" for r in result.reasons) or "every gate passes"),
            },
            description=f"{result.verdict}: {len(result.reasons)} gate(s) stop it" if result.reasons else "GO",
        )
    report_per_partition(context, verdicts, severity=dg.AssetCheckSeverity.WARN)
