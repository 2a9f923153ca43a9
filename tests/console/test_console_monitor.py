"""The console's Monitor page with monitoring data: skill by lead (short and long windows against
persistence), skill over time, the performance diagram, drift per feature, strata (worst first), firing
alerts; acknowledging is for operators, behind the CSRF check, recorded under their name."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from consolekit import csrf_of, make_client, sign_in
from consoleworld import settings_for

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "forecast" / "monitoring"))
from monitorkit import fill_monitor_db


@pytest.fixture
def monitored(world, tmp_path):
    """A private copy of the console world whose service database holds a day of verifications and alerts."""
    from forecast.monitoring.store import MonitorDB

    st = settings_for(world, tmp_path)
    with MonitorDB(st.db_url) as db:
        firing, resolved = fill_monitor_db(db, world["catalog"], n_inits=24)
    return st, firing, resolved


def _client(st, world, name):
    c = make_client(st)
    c.__enter__()
    sign_in(c, world["tokens"][name])
    return c


def test_the_monitor_page_shows_skill_drift_strata_and_alerts(world, monitored):
    st, firing, resolved = monitored
    c = _client(st, world, "rita")
    r = c.get("/console/monitor")
    assert r.status_code == 200, r.text
    page = r.text
    assert "not available yet" not in page
    for marker in ('id="skill-table"', 'id="lead-chart"', 'id="time-chart"', "Performance diagram",
                   'id="drift-short"', 'id="strata-table"', f'id="alert-{firing.id}"', 'id="page-data"'):
        assert marker in page, marker
    assert "+30 min *" in page  # a key lead
    assert "edge_contrast@east" in page and "Worst:" in page
    assert "Operators acknowledge alerts" in page and "/ack" not in page  # a reader has no form
    assert page.count("<circle") >= 3  # method points on the performance diagram
    c.__exit__(None, None, None)


def test_an_operator_acknowledges_a_firing_alert_with_a_comment(world, monitored):
    from forecast.monitoring.store import MonitorDB

    st, firing, _ = monitored
    c = _client(st, world, "otto")
    page = c.get("/console/monitor").text
    assert f'action="/console/monitor/alerts/{firing.id}/ack"' in page
    token = csrf_of(page)
    r = c.post(f"/console/monitor/alerts/{firing.id}/ack", data={"_csrf": token, "comment": " "},
               follow_redirects=False)
    assert r.status_code == 422 and "needs a comment" in r.text
    r = c.post(f"/console/monitor/alerts/{firing.id}/ack", data={"_csrf": "forged", "comment": "x"},
               follow_redirects=False)
    assert r.status_code == 403 and "CSRF check failed" in r.text
    r = c.post(f"/console/monitor/alerts/{firing.id}/ack", data={"_csrf": token, "comment": "rolled back to v6"},
               follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"/console/monitor?acked={firing.id}"
    page = c.get(r.headers["location"]).text
    assert "is acknowledged" in page and "rolled back to v6" in page
    with MonitorDB(st.db_url) as db:
        a = db.alert(firing.id)
    assert a.acknowledged_by == "otto" and [e["kind"] for e in a.events][-1] == "acknowledged"
    r = c.post(f"/console/monitor/alerts/{firing.id}/ack", data={"_csrf": token, "comment": "again"},
               follow_redirects=False)
    assert r.status_code == 409 and "acknowledged already by otto" in r.text
    c.__exit__(None, None, None)


def test_a_reader_cannot_acknowledge(world, monitored):
    st, firing, _ = monitored
    c = _client(st, world, "rita")
    token = csrf_of(c.get("/console/monitor").text)
    r = c.post(f"/console/monitor/alerts/{firing.id}/ack", data={"_csrf": token, "comment": "x"},
               follow_redirects=False)
    assert r.status_code == 403 and "needs role operator" in r.text
    c.__exit__(None, None, None)
