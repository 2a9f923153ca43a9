"""The monitor's tables on SQLite and PostgreSQL: verification versions (preliminary, then final, both kept,
the newest current), one firing alert per key, acknowledgement with its audit, an append-only history."""

from __future__ import annotations

from datetime import datetime, timedelta, UTC

import pytest
from monitorkit import database

from forecast.monitoring.store import AlertConflict, UnknownAlertError

T0 = datetime(2026, 7, 15, 12, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def mdb(request, tmp_path):
    with database(request.param, tmp_path) as d:
        db = d.monitor()
        yield db
        db.close()


def _rows(init, revs, skill=0.1):
    return [{"dataset": "radar_precip", "variable": "p", "init_time": init, "method": m, "forecast_method": m,
             "model_version": None, "fallback": None, "lead_s": [300, 600], "obs_revisions": revs,
             "obs_snapshot": "s", "inputs": {}, "regimes": ["dry"], "skill": skill if m == "model" else None,
             "scores": {"rmse": [1.0, 2.0]}, "record": b"x", "strata": {}, "computed_at": init}
            for m in ("model", "persistence")]


def test_a_revised_verification_is_a_final_version_beside_the_preliminary(mdb):
    assert mdb.add_verifications(_rows(T0, [0, 0])) == 0
    assert mdb.add_verifications(_rows(T0 + timedelta(minutes=5), [0, 0])) == 0
    assert mdb.add_verifications(_rows(T0, [1, 0], skill=0.3)) == 1
    cur = mdb.verifications("radar_precip", "p", methods=["model"])
    assert [(r["init_time"], r["stage"], r["version"]) for r in cur] == [
        (T0, "final", 1), (T0 + timedelta(minutes=5), "preliminary", 0)]
    both = mdb.verifications("radar_precip", "p", methods=["model"], current=None, init=T0)
    assert [(r["stage"], r["obs_revisions"], r["skill"]) for r in both] == [("preliminary", [0, 0], 0.1),
                                                                            ("final", [1, 0], 0.3)]
    assert mdb.verified("radar_precip", "p", T0)[T0]["obs_revisions"] == [1, 0]
    assert mdb.staged_inits("radar_precip", "p") == [T0]


def test_one_firing_alert_per_key_acknowledgement_and_history(mdb):
    kw = dict(rule="skill_drop", kind="skill_change", dataset="radar_precip", variable="p", subject="s",
              severity="critical", value=9.0, message="dropped", details={})
    a = mdb.fire(since=T0, **kw)
    assert a is not None and a.state == "firing"
    assert mdb.fire(since=T0 + timedelta(minutes=5), **kw) is None  # deduplicated
    with pytest.raises(Exception, match="comment"):
        mdb.acknowledge(a.id, by="ana", comment="  ")
    acked = mdb.acknowledge(a.id, by="ana", comment="looking at the model", at=T0)
    assert (acked.acknowledged_by, acked.ack_comment) == ("ana", "looking at the model")
    with pytest.raises(AlertConflict, match="acknowledged already by ana"):
        mdb.acknowledge(a.id, by="bo", comment="me too")
    with pytest.raises(UnknownAlertError, match="no alert has id 999"):
        mdb.acknowledge(999, by="bo", comment="x")
    r = mdb.resolve(a.id, at=T0 + timedelta(hours=1), value=0.0, message="back")
    assert r.state == "resolved" and mdb.fire(since=T0 + timedelta(hours=2), **kw) is not None  # a new one
    kinds = [e["kind"] for e in mdb.alert(a.id).events]
    assert kinds == ["fired", "acknowledged", "resolved"]
    assert [x.state for x in mdb.alerts()] == ["firing", "resolved"]
    # the history is append-only
    from sqlalchemy import delete

    from forecast.db.tables import monitor_alert_events

    with pytest.raises(Exception, match="append-only"):
        with mdb._write.begin() as c:
            c.execute(delete(monitor_alert_events))


def test_state_documents_and_features(mdb):
    assert mdb.get_state("d", "v", "detector", {"n": 0}) == {"n": 0}
    mdb.put_state("d", "v", "detector", {"n": 1})
    mdb.put_state("d", "v", "detector", {"n": 2})
    assert mdb.get_state("d", "v", "detector") == {"n": 2}
    mdb.put_features("d", "v", [(T0, 0, {"a": 1.0}), (T0 + timedelta(minutes=5), 0, {"a": 2.0})], T0)
    mdb.put_features("d", "v", [(T0, 1, {"a": 3.0})], T0)  # a revised slot replaces its features
    assert [(t, r, f["a"]) for t, r, f in mdb.features("d", "v")] == [(T0, 1, 3.0), (T0 + timedelta(minutes=5), 0, 2.0)]
