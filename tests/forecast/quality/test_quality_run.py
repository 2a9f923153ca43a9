"""QC over the store: the sample's planted faults are flagged as intended, values never change,
re-runs are incremental and human decisions survive unless the value changed."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from typer.testing import CliRunner

from testkit import ROOT
from forecast.catalog import load_catalog
from forecast.cli import app
from forecast.ingest.batch import ingest
from forecast.quality import ReviewDecision, qc_config, run_qc, write_decisions
from forecast.quality.run import dirty_segments
from qc.pipeline import time_reach
from forecast.synthetic.generate import generate_sample
from forecast.stores import ObservationStore, open_observations
from qc.flags import QCFlag, TestBit

P = "precipitation_rate"
START = datetime(2026, 7, 15, 12, 0, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def radar_world(tmp_path_factory):
    """A 3 h radar sample with every fault, ingested in feed order and QC'd once."""
    tmp = tmp_path_factory.mktemp("qcworld")
    cat = load_catalog(ROOT / "catalogs" / "radar_precip.yaml")
    out = tmp / "samples"
    manifest = generate_sample(cat, start=START, hours=3, out=out, faults=["all"], seed=3)
    store = ObservationStore(tmp / "store")
    end = START + timedelta(hours=3)
    b = manifest["batches"]
    ingest(cat, [out / p for p in b["main"]], store=store, available_at=end, scheduler="sync")
    ingest(cat, [out / p for p in b["late"] + b["duplicates"]], store=store, available_at=end + timedelta(minutes=40),
           scheduler="sync")
    before = open_observations(cat.id, store=store)[P].values.copy()
    rep = run_qc(cat, store=store)
    return cat, store, manifest, rep, before, out


def _cells(fault):
    if "cells" in fault:
        return [tuple(c) for c in fault["cells"]]
    y0, y1, x0, x1 = fault["bbox"]
    return [(y, x) for y in range(y0, y1 + 1) for x in range(x0, x1 + 1)]


def _at(ds, t):
    return ds.sel(time=np.datetime64(t.rstrip("Z")))


def test_planted_faults_are_flagged_as_intended(radar_world):
    cat, store, manifest, rep, _, _ = radar_world
    assert rep.committed and rep.slots_checked == 36
    ds = open_observations(cat.id, store=store)
    qc, tests = ds[f"{P}_qc"], ds[f"{P}_qc_tests"]
    kinds = {f["kind"] for f in manifest["faults"]}
    assert {"spike", "impossible", "stuck", "record_extreme", "missing"} <= kinds
    for f in manifest["faults"]:
        if f["kind"] == "impossible":
            q = _at(qc, f["times"][0]).values
            t = _at(tests, f["times"][0]).values
            for y, x in _cells(f):
                assert q[y, x] == QCFlag.FAIL and t[y, x] & TestBit.PHYSICAL_RANGE, f
        elif f["kind"] == "spike":
            q = _at(qc, f["times"][0]).values
            for y, x in _cells(f):
                assert q[y, x] in (QCFlag.SUSPECT, QCFlag.FAIL), f
                # its good neighbours are not flagged (the usual spike tests' weakness)
                nb = q[max(0, y - 1):y + 2, max(0, x - 1):x + 2].copy()
                nb[min(y, 1), min(x, 1)] = QCFlag.GOOD
                assert (nb == QCFlag.GOOD).all(), (f, nb)
        elif f["kind"] == "stuck":
            last = f["times"][-1]
            t = _at(tests, last).values
            assert all(t[y, x] & TestBit.FLAT_LINE for y, x in _cells(f)), f
        elif f["kind"] == "record_extreme":
            for when in f["times"]:
                cells = f.get("cells_by_time", {}).get(when) or _cells(f)
                q = _at(qc, when).values
                t = _at(tests, when).values
                for y, x in cells:
                    # a real extreme: SUSPECT (for a human), never FAIL, raised by the climatology test
                    assert q[y, x] == QCFlag.SUSPECT and t[y, x] & TestBit.CLIMATOLOGY, (when, y, x)
        elif f["kind"] == "missing":
            for when in f["times"]:
                if np.datetime64(when.rstrip("Z")) in ds.time.values:
                    assert (_at(qc, when).values == QCFlag.MISSING).all()


def test_values_stay_byte_identical(radar_world):
    cat, store, _, _, before, _ = radar_world
    after = open_observations(cat.id, store=store)[P].values
    assert before.tobytes() == after.tobytes()


def test_rerun_with_nothing_new_changes_nothing(radar_world):
    cat, store, _, _, _, _ = radar_world
    head = store.head()
    rep = run_qc(cat, store=store)
    assert not rep.committed and rep.slots_checked == 0 and store.head() == head


def test_revision_rechecks_slot_with_neighbours_and_decisions_survive_unless_value_changed(radar_world):
    cat, store, manifest, _, _, out = radar_world
    ext = next(f for f in manifest["faults"] if f["kind"] == "record_extreme")
    when = ext["times"][0]
    cells = np.array([[int(np.datetime64(when.rstrip("Z"), "s").astype("int64")), y, x] for y, x in _cells(ext)[:5]])
    sid = write_decisions(cat, [ReviewDecision(decision_id=7, variable=P, cells=cells, accepted=True)], store=store)
    log = store.log(cat.id, limit=1)[0]
    assert log["snapshot"] == sid and log["metadata"]["decisions"] == [7]
    ds = open_observations(cat.id, store=store)
    q = _at(ds[f"{P}_qc"], when).values
    t = _at(ds[f"{P}_qc_tests"], when).values
    for _, y, x in cells:
        assert q[y, x] == QCFlag.GOOD and t[y, x] & TestBit.REVIEWED_ACCEPTED and t[y, x] & TestBit.CLIMATOLOGY
    # re-checking everything keeps the decision: the value it judged did not change
    rep = run_qc(cat, store=store, since=START)
    assert rep.committed and rep.reviews_kept == 5 and rep.reviews_dropped == 0
    q = _at(open_observations(cat.id, store=store)[f"{P}_qc"], when).values
    assert all(q[y, x] == QCFlag.GOOD for _, y, x in cells)
    # the revised file: only its slot and its temporal neighbours are re-checked
    b = manifest["batches"]["revised"]
    rep_i = ingest(cat, [out / p for p in b], store=store, available_at=START + timedelta(hours=5), scheduler="sync")
    assert rep_i.revisions
    rep = run_qc(cat, store=store)
    back, fwd = time_reach(qc_config(cat))
    k = int((np.datetime64(rep_i.revisions[0].rstrip("Z")) - np.datetime64(START.replace(tzinfo=None))) // np.timedelta64(5, "m"))
    assert rep.committed and rep.slots_checked == min(35, k + back) - max(0, k - fwd) + 1
    # a decision on a revised value is dropped: write one on the revised slot, revise it again
    rslot = rep_i.revisions[0]
    rcells = np.array([[int(np.datetime64(rslot.rstrip("Z"), "s").astype("int64")), 0, 0]])
    write_decisions(cat, [ReviewDecision(decision_id=8, variable=P, cells=rcells, accepted=False)], store=store)
    assert _at(open_observations(cat.id, store=store)[f"{P}_qc"], rslot).values[0, 0] == QCFlag.FAIL
    import xarray as xr

    src = xr.open_dataset(out / b[0])
    src[P].values[0, 0, 0] = src[P].values[0, 0, 0] + 1.0
    third = out / "third.nc"
    src.to_netcdf(third)
    ingest(cat, [third], store=store, available_at=START + timedelta(hours=6), scheduler="sync")
    rep = run_qc(cat, store=store)
    assert rep.reviews_dropped >= 1
    t = _at(open_observations(cat.id, store=store)[f"{P}_qc_tests"], rslot).values
    assert not t[0, 0] & TestBit.REVIEWED_REJECTED


def test_cli_qc_run_json(radar_world, monkeypatch, tmp_path):
    cat, store, _, _, _, _ = radar_world
    monkeypatch.setenv("FORECAST_STORE", store.location)
    monkeypatch.setenv("FORECAST_CATALOGS", str(ROOT / "catalogs"))
    monkeypatch.setenv("FORECAST_HOME", str(tmp_path))
    res = CliRunner().invoke(app, ["qc", "run", cat.id, "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["dataset"] == cat.id and len(doc["qc_config_hash"]) == 64 and "counts" in doc
    res = CliRunner().invoke(app, ["qc", "run", "nope", "--json"])
    assert res.exit_code == 2


def test_surface_obs_cross_variable_and_degc(tmp_path):
    cat = load_catalog(ROOT / "catalogs" / "surface_obs.yaml")
    manifest = generate_sample(cat, start=datetime(2026, 7, 14, tzinfo=timezone.utc), hours=24, out=tmp_path / "s",
                               faults=["spike", "impossible"], seed=5)
    store = ObservationStore(tmp_path / "store")
    ingest(cat, [tmp_path / "s" / p for p in manifest["batches"]["main"]], store=store, scheduler="sync")
    rep = run_qc(cat, store=store)
    assert rep.committed and set(rep.counts) == {"air_temperature", "dew_point_temperature"}
    ds = open_observations(cat.id, store=store)
    assert 250 < float(ds["air_temperature"].mean()) < 320  # stored in K
    for f in manifest["faults"]:
        if f["kind"] == "impossible":
            q = _at(ds[f"{f['variable']}_qc"], f["times"][0]).values
            assert all(q[y, x] == QCFlag.FAIL for y, x in _cells(f))


def test_segments_cover_dirty_slots_with_their_halo():
    dirty = np.zeros(100, bool)
    dirty[[10, 12, 60]] = True
    assert dirty_segments(dirty, (3, 3), 1000, 1100, 50) == [(1007, 1016), (1057, 1064)]
    assert dirty_segments(dirty, (3, 3), 1000, 1100, 4) == [(1007, 1011), (1011, 1015), (1015, 1016), (1057, 1061),
                                                             (1061, 1064)]
    assert dirty_segments(np.zeros(5, bool), (3, 3), 0, 5, 10) == []
    edge = np.zeros(10, bool)
    edge[[0, 9]] = True
    assert dirty_segments(edge, (2, 2), 0, 10, 100) == [(0, 3), (7, 10)]
    # a flag looks 36 slots back and 2 ahead: a changed slot re-checks 2 before it and 36 after it
    assert dirty_segments(dirty, (36, 2), 1000, 1100, 100) == [(1008, 1049), (1058, 1097)]
    newest = np.zeros(100, bool)
    newest[99] = True
    assert dirty_segments(newest, (36, 2), 1000, 1100, 100) == [(1097, 1100)]


def test_reach_of_the_checks_follows_their_rules():
    from qc.config import load_qc_config

    cfg = load_qc_config({"variables": {
        "a": [{"test": "spike", "suspect": 1.0, "max_gap": 2}],
        "b": [{"test": "rate_of_change", "suspect_per_step": 1.0, "max_gap": 1},
              {"test": "flat_line", "tolerance": 0.0, "suspect_count": 6, "fail_count": 12}]}})
    assert time_reach(cfg) == (12, 3)
    assert time_reach(load_qc_config({"variables": {"a": [{"test": "rate_of_change", "suspect_per_step": 1.0,
                                                                 "max_gap": 4}]}})) == (10, 0)


def test_record_storm_is_one_queue_item_and_decisions_reach_the_flags(tmp_path, monkeypatch):
    """qc run -> one review item for the planted storm; accept via the CLI -> GOOD; a reject of an
    extreme needs a second operator (four eyes) before the flags become FAIL."""
    cat = load_catalog(ROOT / "catalogs" / "radar_precip.yaml")
    manifest = generate_sample(cat, start=START, hours=2, out=tmp_path / "s", faults=["record_extreme", "spike"], seed=11)
    monkeypatch.setenv("FORECAST_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("FORECAST_CATALOGS", str(ROOT / "catalogs"))
    runner = CliRunner()
    res = runner.invoke(app, ["ingest", cat.id, str(tmp_path / "s"), "--json"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["qc", "run", cat.id, "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["events_added"] >= 2
    items = json.loads(runner.invoke(app, ["qc", "queue", cat.id, "--json"]).stdout)["items"]
    ext = next(f for f in manifest["faults"] if f["kind"] == "record_extreme")
    storm = [i for i in items if "climatology" in i["test_names"]]
    assert len(storm) == 1 and storm[0]["n_slots"] == len(ext["times"])
    assert storm[0]["n_cells"] >= sum(len(c) for c in ext["cells_by_time"].values())  # plus suspect rims
    assert items[0]["id"] == storm[0]["id"]  # the most hazardous first
    # re-running QC enqueues nothing twice
    res = runner.invoke(app, ["qc", "run", cat.id, "--since", "2026-07-15T12:00Z", "--json"])
    assert json.loads(res.stdout)["events_added"] == 0
    # one cell first (operators may decide part of an event), then the rest
    t1, y1, x1 = ext["times"][0], *ext["cells_by_time"][ext["times"][0]][0]
    res = runner.invoke(app, ["qc", "decide", str(storm[0]["id"]), "accept", "--by", "ana", "--comment", "gauge agrees",
                              "--cell", f"{t1},{y1},{x1}", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["item_state"] == "open"
    res = runner.invoke(app, ["qc", "decide", str(storm[0]["id"]), "accept", "--by", "ana", "--comment", "real", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["flags_snapshot"]
    store = ObservationStore(tmp_path / "home" / "observations.icechunk")
    when = ext["times"][1]
    q = _at(open_observations(cat.id, store=store)[f"{P}_qc"], when).values
    assert all(q[y, x] == QCFlag.GOOD for y, x in ext["cells_by_time"][when])
    spike = next(i for i in items if i["id"] != storm[0]["id"])
    sid = str(spike["id"])
    res = runner.invoke(app, ["qc", "decide", sid, "reject", "--by", "ana", "--comment", "artefact", "--json"])
    assert res.exit_code == 0, res.stdout
    assert json.loads(res.stdout)["status"] in ("final", "awaiting_second")
    if json.loads(res.stdout)["status"] == "awaiting_second":
        again = runner.invoke(app, ["qc", "decide", sid, "reject", "--by", "ana", "--comment", "again", "--json"])
        assert again.exit_code == 2 and "error" in json.loads(again.stdout)
        res = runner.invoke(app, ["qc", "decide", sid, "reject", "--by", "ben", "--comment", "agreed", "--json"])
        assert res.exit_code == 0 and json.loads(res.stdout)["outcome"] == "rejected"
    detail = json.loads(runner.invoke(app, ["qc", "show", sid, "--json"]).stdout)
    assert detail["state"] == "decided"
    res = runner.invoke(app, ["qc", "decide", "99999", "accept", "--by", "ana", "--comment", "x"])
    assert res.exit_code == 2 and "review item 99999 does not exist" in res.stderr


def test_qc_run_writes_decisions_taken_elsewhere_into_the_flags(tmp_path, monkeypatch):
    """A decision taken through the API (queue only, no write-back) reaches the flags on the next qc run."""
    from forecast.review import ReviewQueue

    cat = load_catalog(ROOT / "catalogs" / "radar_precip.yaml")
    manifest = generate_sample(cat, start=START, hours=1, out=tmp_path / "s", faults=["record_extreme"], seed=11)
    monkeypatch.setenv("FORECAST_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("FORECAST_CATALOGS", str(ROOT / "catalogs"))
    runner = CliRunner()
    assert runner.invoke(app, ["ingest", cat.id, str(tmp_path / "s"), "--json"]).exit_code == 0
    first = json.loads(runner.invoke(app, ["qc", "run", cat.id, "--json"]).stdout)
    assert first["decisions_snapshot"] is None
    queue = ReviewQueue(f"sqlite:///{tmp_path / 'home' / 'review.db'}")
    storm = next(i for i in queue.list(dataset=cat.id) if "climatology" in i.test_names)
    queue.decide(storm.id, "accept", by="api-user", comment="radar loop confirms")
    queue.close()
    res = runner.invoke(app, ["qc", "run", cat.id, "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["decisions_snapshot"]
    ext = next(f for f in manifest["faults"] if f["kind"] == "record_extreme")
    when = ext["times"][0]
    store = ObservationStore(tmp_path / "home" / "observations.icechunk")
    q = _at(open_observations(cat.id, store=store)[f"{P}_qc"], when).values
    assert all(q[y, x] == QCFlag.GOOD for y, x in ext["cells_by_time"][when])


@pytest.mark.slow
def test_flags_checked_slot_by_slot_as_files_arrive_equal_one_pass_over_the_final_values(tmp_path):
    """Incremental QC re-checks only the slots a new, late or revised one can change: after every file of a
    3 h feed (late, duplicate and revised files included) was ingested and QC'd on its own, the flags equal
    those of one QC pass over the same final values."""
    cat = load_catalog(ROOT / "catalogs" / "radar_precip.yaml")
    out = tmp_path / "s"
    manifest = generate_sample(cat, start=START, hours=3, out=out, faults=["all"], seed=3)
    b = manifest["batches"]
    waves = [b["main"], b["late"] + b["duplicates"], b["revised"]]
    assert all(waves), {k: len(v) for k, v in b.items()}
    end = START + timedelta(hours=3)

    one = ObservationStore(tmp_path / "one")
    for n, wave in enumerate(waves):
        ingest(cat, [out / p for p in wave], store=one, available_at=end + timedelta(minutes=20 * n), scheduler="sync")
    assert run_qc(cat, store=one).committed

    inc = ObservationStore(tmp_path / "inc")
    checked = []
    for n, wave in enumerate(waves):
        for i, p in enumerate(sorted(wave)):
            ingest(cat, [out / p], store=inc, available_at=end + timedelta(minutes=20 * n, seconds=i), scheduler="sync")
            checked.append(run_qc(cat, store=inc).slots_checked)
    a, c = open_observations(cat.id, store=one), open_observations(cat.id, store=inc)
    np.testing.assert_array_equal(a[P].values, c[P].values)
    for name in (f"{P}_qc", f"{P}_qc_tests"):
        np.testing.assert_array_equal(a[name].values, c[name].values, err_msg=name)
    back, fwd = time_reach(qc_config(cat))
    # an on-time slot re-checks itself and the `fwd` before it (a few more after a gap: the missing slots),
    # not the history a flat line looks back over
    on_time = sorted(checked[:len(waves[0])])
    assert on_time[len(on_time) // 2] == fwd + 1 and on_time[-1] < back
