"""stress-pipeline bench alerts: figures beside targets, exit 1 on a miss (real receiver, real HTTP)."""

from __future__ import annotations

import json
from argparse import Namespace

import pytest

from stress_pipeline.bench import alerts
from stress_pipeline.services.alert_receiver import read_record
from stress_pipeline.settings import make_settings

pytestmark = pytest.mark.services


def test_bench_alerts_meets_its_targets_and_exits_1_on_a_miss(external_service_urls, tmp_path, capsys, monkeypatch):
    settings = make_settings(home=tmp_path, postgres_url=external_service_urls.postgres_url,
                             redis_url=external_service_urls.redis_url)  # fmt: skip
    monkeypatch.setattr(alerts, "SCENARIOS", 20)
    assert alerts.main(Namespace(settings=settings, json=True)) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["figures"]["healthy"]["median_s"] <= 1.0 and report["figures"]["degraded"]["duplicates"] == 0
    assert all(row["met"] for row in report["targets"])
    assert read_record(tmp_path) is None  # the receiver it started is stopped again
    monkeypatch.setattr(alerts, "HEALTHY_MEDIAN_S", 0.0)
    assert alerts.main(Namespace(settings=settings, json=False)) == 1
    out = capsys.readouterr().out
    assert "healthy median delivery s" in out and "MISSED" in out and "target <= 0" in out
