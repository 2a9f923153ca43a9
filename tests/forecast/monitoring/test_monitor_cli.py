"""`forecast monitor status|skill|drift|strata|alerts|ack [--json]`: the contract keys, human output, and
bad input as one sentence with exit code 2."""

from __future__ import annotations

import json

import pytest
from monitorkit import fill_monitor_db
from typer.testing import CliRunner

from forecast.catalog import parse_catalog
from forecast.cli import app
from forecast.monitoring.store import MonitorDB
from testkit import small_doc, write_catalog


@pytest.fixture
def world(tmp_path, monkeypatch):
    doc = small_doc("radar_precip", ny=16, nx=20)
    doc.pop("monitoring", None)
    path = write_catalog(tmp_path / "catalogs", doc)
    cat = parse_catalog(doc, str(path))
    monkeypatch.setenv("FORECAST_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("FORECAST_CATALOGS", str(tmp_path / "catalogs"))
    (tmp_path / "home").mkdir()
    with MonitorDB(f"sqlite:///{(tmp_path / 'home' / 'review.db').absolute()}") as db:
        firing, resolved = fill_monitor_db(db, cat, n_inits=24)
    return cat, firing, resolved


def cli(*args, code=0):
    res = CliRunner().invoke(app, ["monitor", *args])
    assert res.exit_code == code, res.output
    return res


def test_skill_json_has_short_and_long_windows_with_model_persistence_and_skill(world):
    doc = json.loads(cli("skill", "radar_precip", "--json").stdout)
    assert set(doc["windows"]) == {"short", "long"}
    for w in doc["windows"].values():
        assert w["n_inits"] == 24 and len(w["leads"]) == 12
        lead = w["leads"][5]
        assert {"model", "persistence", "skill"} <= set(lead) and "rmse_skill" in lead["skill"]["persistence"]
    assert doc["staged"]["n_inits"] == 1 and doc["staged"]["inits"][0]["final"]["stage"] == "final"
    assert "bold" not in cli("skill", "radar_precip").stdout  # human output renders


def test_alerts_json_and_ack(world):
    cat, firing, resolved = world
    doc = json.loads(cli("alerts", "--json").stdout)
    assert [a["id"] for a in doc["alerts"]] == [firing.id, resolved.id]
    assert {"id", "rule", "dataset", "state", "since"} <= set(doc["alerts"][0])
    only = json.loads(cli("alerts", "--state", "firing", "--json").stdout)
    assert [a["state"] for a in only["alerts"]] == ["firing"]
    acked = json.loads(cli("ack", str(firing.id), "--by", "ana", "--comment", "rolling back v7", "--json").stdout)
    assert acked["acknowledged_by"] == "ana" and acked["ack_comment"] == "rolling back v7"
    again = cli("ack", str(firing.id), "--by", "bo", "--comment", "x", "--json", code=2)
    assert "acknowledged already by ana" in json.loads(again.stdout)["error"]
    missing = cli("ack", "999", "--by", "bo", "--comment", "x", code=2)
    assert "no alert has id 999" in missing.output
    assert "--comment" in cli("ack", str(firing.id), "--by", "bo", code=2).output


def test_status_drift_and_strata(world):
    st = json.loads(cli("status", "--json").stdout)
    v = st["datasets"]["radar_precip"]["precipitation_rate"]
    assert v["detector"]["alarm"] is True and st["alerts"]["counts"] == {"firing": 1, "resolved": 1}
    dr = json.loads(cli("drift", "radar_precip", "--json").stdout)
    assert dr["windows"]["short"]["drifted"] == ["edge_contrast@east"]
    sr = json.loads(cli("strata", "radar_precip", "--json").stdout)
    assert {s["stratum"] for s in sr["strata"]} >= {"west", "east", "light"} and sr["worst"] is not None
    bad = cli("skill", "nowhere", "--json", code=2)
    assert "unknown dataset 'nowhere'" in json.loads(bad.stdout)["error"]
    assert "--window" in cli("skill", "radar_precip", "--window", "medium", code=2).output
