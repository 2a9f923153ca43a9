"""The monitor over HTTP: status, skill, drift, strata and alerts for readers, acknowledgement for operators
(recorded under the token's user, 409 naming who acknowledged first), problem details for bad input, and
the monitor's gauges on /metrics."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from litestar.testing import TestClient

from api.app import create_app
from forecast.catalog import parse_catalog
from forecast.db.users import UserStore
from forecast.monitoring.store import MonitorDB
from forecast.settings import Settings

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "forecast" / "monitoring"))
from monitorkit import fill_monitor_db
from testkit import small_doc, write_catalog


@pytest.fixture(scope="module")
def mon(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("monitorapi")
    doc = small_doc("radar_precip", ny=16, nx=20)
    doc.pop("monitoring", None)
    path = write_catalog(tmp / "catalogs", doc)
    cat = parse_catalog(doc, str(path))
    st = Settings(home=tmp / "home", catalogs=tmp / "catalogs")
    st.home.mkdir(parents=True)
    with MonitorDB(st.db_url) as db:
        firing, resolved = fill_monitor_db(db, cat, n_inits=20)
    tokens = {}
    with UserStore(st.db_url) as users:
        for name, role in (("rita", "reader"), ("otto", "operator"), ("olga", "operator")):
            tokens[name] = users.add(name, role, by="test")[1]
    with TestClient(create_app(st)) as client:
        yield client, tokens, firing, resolved


def _h(tokens, name):
    return {"Authorization": f"Bearer {tokens[name]}"}


def test_readers_see_skill_drift_strata_status_and_alerts(mon):
    client, tokens, firing, resolved = mon
    r = client.get("/monitor/skill?dataset=radar_precip", headers=_h(tokens, "rita"))
    assert r.status_code == 200, r.text
    doc = r.json()
    assert set(doc["windows"]) == {"short", "long"} and doc["windows"]["short"]["n_inits"] == 20
    lead = doc["windows"]["long"]["leads"][5]
    assert {"model", "persistence", "extrapolation", "skill"} <= set(lead)
    one = client.get("/monitor/skill?dataset=radar_precip&window=short&stage=preliminary", headers=_h(tokens, "rita"))
    assert set(one.json()["windows"]) == {"short"} and one.json()["stage"] == "preliminary"
    assert client.get("/monitor/drift?dataset=radar_precip", headers=_h(tokens, "rita")).json()["windows"]["short"][
        "drifted"] == ["edge_contrast@east"]
    strata = client.get("/monitor/strata?dataset=radar_precip&lead=30", headers=_h(tokens, "rita")).json()
    assert strata["lead_minutes"] == 30 and strata["worst"]["stratum"]
    st = client.get("/monitor/status", headers=_h(tokens, "rita")).json()
    assert st["alerts"]["counts"] == {"firing": 1, "resolved": 1}
    alerts = client.get("/monitor/alerts?state=firing", headers=_h(tokens, "rita")).json()["alerts"]
    assert [a["id"] for a in alerts] == [firing.id] and {"id", "rule", "dataset", "state", "since"} <= set(alerts[0])
    one = client.get(f"/monitor/alerts/{resolved.id}", headers=_h(tokens, "rita")).json()
    assert [e["kind"] for e in one["events"]] == ["fired", "resolved"]


def test_auth_and_problem_details(mon):
    client, tokens, firing, _ = mon
    assert client.get("/monitor/skill?dataset=radar_precip").status_code == 401
    r = client.get("/monitor/skill?dataset=nowhere", headers=_h(tokens, "rita"))
    assert r.status_code == 404 and r.headers["content-type"].startswith("application/problem+json")
    assert "unknown dataset 'nowhere'" in r.json()["detail"]
    r = client.get("/monitor/skill?dataset=radar_precip&variable=t2m", headers=_h(tokens, "rita"))
    assert r.status_code == 404 and "no variable 't2m'" in r.json()["detail"]
    assert client.get("/monitor/skill?dataset=radar_precip&window=medium", headers=_h(tokens, "rita")).status_code == 400
    assert client.get("/monitor/alerts/999", headers=_h(tokens, "rita")).status_code == 404
    # acknowledging needs an operator
    r = client.post(f"/monitor/alerts/{firing.id}/ack", json={"comment": "x"}, headers=_h(tokens, "rita"))
    assert r.status_code == 403


def test_operators_acknowledge_once_with_a_comment_under_their_name(mon):
    client, tokens, firing, _ = mon
    r = client.post(f"/monitor/alerts/{firing.id}/ack", json={"comment": "   "}, headers=_h(tokens, "otto"))
    assert r.status_code in (400, 422)
    r = client.post(f"/monitor/alerts/{firing.id}/ack", json={"comment": "rolled back to v6"},
                    headers=_h(tokens, "otto"))
    assert r.status_code == 200, r.text
    assert r.json()["acknowledged_by"] == "otto" and r.json()["state"] == "firing"
    r = client.post(f"/monitor/alerts/{firing.id}/ack", json={"comment": "me too"}, headers=_h(tokens, "olga"))
    assert r.status_code == 409 and r.json()["acknowledged_by"] == "otto"
    assert client.post("/monitor/alerts/999/ack", json={"comment": "x"}, headers=_h(tokens, "otto")).status_code == 404


def test_metrics_expose_the_monitor_gauges(mon):
    client, *_ = mon
    text = client.get("/metrics").text
    assert 'forecast_monitor_skill{dataset="radar_precip"' in text
    assert "forecast_monitor_detector_alarm" in text and "forecast_monitor_drift_ratio" in text
    assert 'forecast_monitor_alerts_firing{dataset="radar_precip",rule="skill_drop",severity="critical"} 1.0' in text
