"""The drills group through real Dagster runs against real Redis."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from stress_pipeline.defs import build_definitions
from stress_pipeline.defs.resources import stress_resource_from_env
from stress_pipeline.drills.decision_flood import FLOOD_COLUMNS
from stress_pipeline.parquet_store import read_parquet


@pytest.fixture
def defs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, external_service_urls) -> dg.Definitions:
    monkeypatch.setenv("STRESS_HOME", str(tmp_path / "home"))
    return build_definitions()


def test_decision_flood_asset_stores_the_contract_row(defs: dg.Definitions) -> None:
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [*defs.assets, *defs.asset_checks], selection=["decision_flood"], instance=instance,
            resources={**defs.resources, "stress": stress_resource_from_env()},
            run_config={"ops": {"decision_flood": {"config": {"rate": 1_000.0, "seconds": 1.0}}}},
        )  # fmt: skip
        assert result.success
        table = result.output_for_node("decision_flood")
        assert list(table.columns) == list(FLOOD_COLUMNS) and table["decisions"].iloc[0] == 1_000
        meta = result.get_asset_materialization_events()[0].materialization.metadata
        assert meta["p99_ms"].value == table["p99_ms"].iloc[0] and sum(meta["reasons"].value.values()) == 1_000
        (check,) = result.get_asset_check_evaluations()
        assert check.check_name == "decision_latency_p99" and check.passed == (table["p99_ms"].iloc[0] <= 15.0)
        assert check.severity == dg.AssetCheckSeverity.WARN  # a finding the certification's gate judges


def test_a_drill_partition_stores_its_criteria_and_timeline(defs: dg.Definitions, tmp_path: Path) -> None:
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [*defs.assets, *defs.asset_checks], selection=["drills", "drill_detections"],
            partition_key="correlation_cascade",
            instance=instance,
            resources={**defs.resources, "stress": stress_resource_from_env()},
        )  # fmt: skip
        assert result.success
        table = result.output_for_node("drills")["correlation_cascade"]  # {partition: table}: one step per run
        assert set(table["drill"]) == {"correlation_cascade"} and (table["outcome"] == "pass").all()
        events = {e.asset_key.to_user_string(): e.materialization for e in result.get_asset_materialization_events()}
        meta = events["drills"].metadata
        assert meta["passed"].value is True
        assert "data:image/png;base64," in meta["timeline_plot"].value and "detection" in meta["timeline"].value
        assert "drawdown_exceeded" in meta["detections"].value
        checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
        assert checks["drill_criteria_met"].passed and checks["drill_criteria_met"].partition == "correlation_cascade"
        # Stored beside the criteria: what the monitors detected, each with the alert the drill raised.
        detections = result.output_for_node("drills", "drill_detections")["correlation_cascade"]
        modes = ["balance_anomaly", "drawdown_exceeded", "ess_tripped"]
        assert list(detections["failure_mode"]) == modes
        assert list(detections["detection_s"]) == [0.0] * 3 and detections["detected_s"].nunique() == 1  # at the halt
        assert detections["alert"].str.startswith(tuple(f"stress-pipeline/{m}/" for m in modes)).all()
        assert events["drill_detections"].metadata["failure_modes"].value == modes
        [stored] = (tmp_path / "home").rglob("drill_detections/correlation_cascade.*")
        pd.testing.assert_frame_equal(read_parquet(stored), detections)
