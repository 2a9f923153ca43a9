"""Alert rules on a pass's evidence: hysteresis (fire after for_cycles, resolve after clear_cycles, a
clear threshold so a value at the threshold does not flap), deduplication, and notification on changes."""

from __future__ import annotations

from datetime import datetime, timedelta, UTC

import pytest
from monitorkit import database

from forecast.catalog.monitoring import AlertRule
from forecast.monitoring.alerts import Evidence, apply_observations, evaluate_rules

T0 = datetime(2026, 7, 15, 12, tzinfo=UTC)


@pytest.fixture
def mdb(tmp_path):
    with database("sqlite", tmp_path) as d:
        db = d.monitor()
        yield db
        db.close()


def _skill_doc(value: float, n: int = 12) -> dict:
    sk = {"rmse_skill": value, "lower": 0.1, "upper": 0.2, "worse": value < 0, "better": False}
    return {"enough": True, "n_inits": n, "leads": [{"lead_minutes": 30, "model": {"rmse": 1.0},
                                                   "persistence": {"rmse": 1.0}, "skill": {"persistence": sk}}]}


def _pass(db, rules, k, **evidence):
    ev = Evidence(dataset="radar_precip", variable="p", now=T0 + timedelta(minutes=5 * k), **evidence)
    sent = []
    obs = evaluate_rules(rules, ev, set(db.firing("radar_precip", "p")))
    return apply_observations(db, ev, obs, rules, lambda a, event, rule: sent.append((a.id, event))), sent


def test_hysteresis_fires_after_for_cycles_and_resolves_after_clear_cycles_past_the_clear_threshold(mdb):
    rule = AlertRule(name="skill", kind="skill_below_reference", lead_minutes=30, window="short", threshold=0.0,
                     clear_threshold=0.1, for_cycles=3, clear_cycles=2)
    values = [0.2, -0.1, -0.1, 0.05, -0.1, -0.1, -0.1, 0.05, 0.05, 0.05, 0.15, 0.15]
    events = []
    for k, v in enumerate(values):
        ch, sent = _pass(mdb, [rule], k, skill={"short": _skill_doc(v)})
        events += [(k, e) for _, e in sent]
    # fires on the third bad pass in a row (k=6); 0.05 is above 0 but below the clear threshold 0.1: holds;
    # resolves after two passes above 0.1
    assert events == [(6, "fired"), (11, "resolved")]
    alerts = mdb.alerts()
    assert len(alerts) == 1 and alerts[0].state == "resolved" and "not below 0.1" in alerts[0].message


def test_a_condition_that_keeps_holding_updates_one_alert_and_disappearing_subjects_resolve(mdb):
    rule = AlertRule(name="strata", kind="stratum_below_reference", lead_minutes=30, min_inits=2, clear_cycles=1)
    rep = {"lead_minutes": 30, "mean": {"skill": 0.2},
           "strata": [{"stratum": "west", "kind": "region", "n_inits": 5, "skill": -0.3, "worse": True}]}
    for k in range(4):
        ch, sent = _pass(mdb, [rule], k, strata={"long": rep})
    assert len(mdb.alerts()) == 1 and ch["updated"] == 1
    ch, sent = _pass(mdb, [rule], 5, strata={"long": {**rep, "strata": []}})
    assert sent and sent[0][1] == "resolved"


def test_rules_apply_to_their_datasets_and_a_broken_rule_does_not_silence_others(mdb, monkeypatch):
    other = AlertRule(name="other", kind="skill_change", datasets=["surface_obs"])
    mine = AlertRule(name="mine", kind="skill_change")
    det = {"alarm": True, "s": 12.0, "h": 10.0, "last_z": -3.0, "n": 100}
    ch, sent = _pass(mdb, [other, mine], 0, detector=det)
    assert [a.rule for a in mdb.alerts()] == ["mine"] and len(sent) == 1
    from forecast.monitoring import alerts as mod

    monkeypatch.setitem(mod._EVALUATORS, "data_missing", lambda *a: 1 / 0)
    broken = AlertRule(name="broken", kind="data_missing", slots=1)
    ch, sent = _pass(mdb, [broken, mine], 1, detector=det, feed={"missing_run": 3})
    assert ch["updated"] == 1  # mine still evaluated


def test_drift_names_the_features_and_missing_data_counts_slots(mdb):
    rule = AlertRule(name="drift", kind="input_drift", window="short", features=["edge_contrast@*"], for_cycles=1)
    rep = {"features": [
        {"feature": "edge_contrast@east", "statistic": "wasserstein", "value": 2.0, "threshold": 1.0, "ratio": 2.0},
        {"feature": "wet_fraction", "statistic": "wasserstein", "value": 9.0, "threshold": 1.0, "ratio": 9.0}]}
    _pass(mdb, [rule], 0, drift={"short": rep})
    a = mdb.alerts()[0]
    assert a.details["features"] == ["edge_contrast@east"] and "edge_contrast@east" in a.message
    miss = AlertRule(name="miss", kind="data_missing", slots=3)
    _pass(mdb, [miss], 1, feed={"missing_run": 2, "missing_since": "x"})
    assert len(mdb.alerts()) == 1
    _pass(mdb, [miss], 2, feed={"missing_run": 3, "missing_since": "x"})
    assert {a.rule for a in mdb.alerts()} == {"drift", "miss"}
