"""Continuous verification through the worker's cycle: every matured forecast scored beside persistence and
extrapolation on the same cases, per lead and per region, with the observation revisions it used; a
revised (or late) observation adds a final verification beside the preliminary one and the monitor uses
the final one; scores equal those of `forecast hindcast` over the same inits (slow: trains a model)."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from monitorkit import feed_cycles, monitored_world

from forecast.clock import FixedClock
from forecast.monitoring import MonitorHook
from forecast.monitoring.report import skill_doc
from forecast.monitoring.store import MonitorDB
from forecast.timeutil import iso
from forecast.worker.cycle import open_service, run_cycle
from forecast.worker.inbox import feed_folders
from testkit import trains_model
from workerkit import START, STEP, drop


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Three hours of feed through monitored cycles (the hook inside the cycle), then the revised file of
    one slot, as the sample's manifest plants it."""
    tmp = tmp_path_factory.mktemp("verify")
    world = monitored_world(tmp, hours=2.5, faults=("revised", "late"), monitoring={"reference_hours": 1.0})
    st, cat, sample, manifest = world
    clock = FixedClock(START)
    hook = MonitorHook(st, background=False)
    svc = open_service(st, cat.id, clock=clock, hooks=[hook])
    reports = feed_cycles(svc, world, clock, START, START + 28 * STEP)
    db = MonitorDB(st.db_url)
    before = {r["init_time"]: r for r in db.verifications(cat.id, "precipitation_rate", methods=["model"])}
    rev = next(s for s in manifest["slots"] if s["status"] == "revised")
    inbox, _, _ = feed_folders(st, cat)
    clock.set(START + 29 * STEP + timedelta(minutes=1))
    drop(sample / rev["files"][1], inbox)
    last = run_cycle(svc)
    reports.append(last)
    yield world, svc, db, reports, before, rev, last
    hook.close()
    db.close()


def test_matured_forecasts_are_verified_with_their_references_per_lead_and_region(run):
    world, svc, db, reports, before, rev, _ = run
    st, cat, *_ = world
    rows = db.verifications(cat.id, "precipitation_rate")
    methods = {r["method"] for r in rows}
    assert methods == {"model", "persistence", "extrapolation"}
    inits = sorted({r["init_time"] for r in rows})
    # an init matures once its last valid slot (12 leads = 1 h later) arrived: the first ones are verified
    assert inits[0] == START and len(inits) >= 14
    assert all(t + timedelta(minutes=60) <= START + 29 * STEP for t in inits)
    r = next(r for r in rows if r["method"] == "model" and r["init_time"] == inits[-1])  # after the revised slot
    assert r["stage"] == "preliminary" and r["version"] == 0 and len(r["obs_revisions"]) == len(r["lead_s"]) == 12
    assert r["forecast_method"] in ("extrapolation", "persistence") and r["fallback"]  # no model: the fallback
    assert set(r["strata"]) == {"west", "east"} and r["regimes"]
    assert len(r["scores"]["rmse"]) == 12 and set(r["scores"]["csi"]) == {  # the catalog's warning thresholds
        f"{t:g}" for t in cat.variables["precipitation_rate"].thresholds}
    # the hook's time is the cycle's verify stage
    assert all("verify" in rep["stages"] for rep in reports)


def test_a_revised_slot_adds_a_final_verification_and_the_monitor_uses_it(run):
    world, svc, db, reports, before, rev, last = run
    st, cat, *_ = world
    t_rev = np.datetime64(rev["time"].rstrip("Z"), "s").astype("datetime64[s]").astype(int)
    assert rev["time"] in last["ingest"]["revisions"]
    staged = db.staged_inits(cat.id, "precipitation_rate")
    # exactly the verified inits whose valid times include the revised slot
    expect = sorted(t for t in before if 0 < t_rev - int(t.timestamp()) <= 12 * 300)
    assert staged == expect and staged
    t = staged[0]
    versions = db.verifications(cat.id, "precipitation_rate", methods=["model"], current=None, init=t)
    pre, fin = versions
    assert (pre["stage"], fin["stage"]) == ("preliminary", "final") and fin["current"] and not pre["current"]
    k = (t_rev - int(t.timestamp())) // 300 - 1
    assert pre["obs_revisions"][k] == 0 and fin["obs_revisions"][k] == 1
    assert pre["scores"]["rmse"][k] != fin["scores"]["rmse"][k]  # the verdict moved at that lead
    doc = skill_doc(st, cat.id, n_boot=20)
    assert doc["staged"]["n_inits"] == len(staged)
    moved = doc["staged"]["inits"][0]
    assert moved["preliminary"]["stage"] == "preliminary" and moved["final"]["stage"] == "final"
    assert doc["windows"]["short"]["stage"] == "current"
    pre_doc = skill_doc(st, cat.id, n_boot=20, stage="preliminary")
    assert pre_doc["windows"]["long"]["n_inits"] == doc["windows"]["long"]["n_inits"]


def test_features_drift_and_the_snapshot_come_from_the_store(run):
    world, svc, db, *_ = run
    st, cat, *_ = world
    feats = db.features(cat.id, "precipitation_rate")
    assert len(feats) >= 25 and {"wet_fraction", "intensity", "missing_share", "edge_contrast@west"} <= set(feats[-1][2])
    snap = db.get_state(cat.id, "precipitation_rate", "snapshot")
    short = snap["drift"]["short"]
    assert short["reference"]["source"].startswith("the first 1 h of data")
    assert short["features"] or short["note"]
    assert snap["skill"]["short"]["n_inits"] > 0 and snap["detector"]["n"] > 0
    from forecast.monitoring.report import drift_doc, status_doc

    assert drift_doc(st, cat.id)["reference"]["n_slots"] == 12
    assert status_doc(st)["datasets"][cat.id]["precipitation_rate"]["last_verified_init"]


def test_the_window_skill_has_the_contract_keys(run):
    world, *_ = run
    st, cat, *_ = world
    doc = skill_doc(st, cat.id, n_boot=20)
    for w in ("short", "long"):
        d = doc["windows"][w]
        assert d["n_inits"] > 0 and d["leads"]
        lead = d["leads"][5]
        assert {"model", "persistence", "extrapolation", "skill"} <= set(lead)
        sk = lead["skill"]["persistence"]
        assert {"rmse_skill", "lower", "upper", "better", "worse"} <= set(sk)
        assert sk["rmse_skill"] == pytest.approx(1 - lead["model"]["rmse"] / lead["persistence"]["rmse"])


# -- the same numbers as the hindcast -------------------------------------------------------------------------


@pytest.fixture(scope="module")
@trains_model
def equal_world(tmp_path_factory):
    """A backfilled store (every slot available at its own time), a tiny model in production, the worker's
    cycles at each init with the monitor; then a hindcast of that model over the same inits."""
    from forecast.ingest import ingest
    from forecast.model.runtime import set_threads
    from forecast.quality import run_qc
    from forecast.registry import ModelRegistry, promote
    from forecast.registry.training import train_model
    from forecast.stores import store_for
    from forecast.worker.cycle import run_cycle

    tmp = tmp_path_factory.mktemp("equal")
    st, cat, sample, manifest = monitored_world(tmp, hours=20.0)
    files = sorted(sample.glob("*.nc"))
    ingest(cat, files, store=store_for(st), latency=timedelta(0), scheduler="sync", workers=1)
    run_qc(cat, store=store_for(st), scheduler="sync")
    cfg = tmp / "model.yaml"
    cfg.write_text("training: {max_epochs: 1, samples_per_epoch: 8, patch: 16, batch_size: 4, max_val_windows: 2}\n"
                   "network: {base_channels: 4, depth: 1}\n")
    doc = train_model(st, cat.id, "precipitation_rate", config_path=cfg, end=START + timedelta(hours=18))
    with ModelRegistry(st.db_url, st.models_dir) as reg:
        promote(st, reg, doc["version"], by="test", reason="equality test", override=True)
    set_threads(1)  # as the hindcast: one thread, the same float sums
    clock = FixedClock(START)
    hook = MonitorHook(st, background=False, max_inits=500)
    svc = open_service(st, cat.id, clock=clock, hooks=[hook])
    t0, t1 = START + timedelta(hours=18), START + timedelta(hours=18, minutes=55)
    t = t0
    while t <= t1:
        clock.set(t + timedelta(seconds=30))
        run_cycle(svc, init=t)
        t += STEP
    clock.set(t1 + timedelta(hours=2))
    hook.monitor(svc).run(clock.now(), max_inits=500)
    return st, cat, doc["version"], t0, t1


def test_the_model_record_keeps_the_training_periods_input_statistics(equal_world):
    from forecast.registry import ModelRegistry

    st, cat, version, *_ = equal_world
    with ModelRegistry(st.db_url, st.models_dir) as reg:
        ref = reg.get(version).extra["input_reference"]
    assert ref["n_slots"] > 100 and {"wet_fraction", "intensity", "intensity_p90", "motion_speed", "missing_share",
                                     "fail_share"} <= set(ref["summary"])
    assert "slots" not in ref  # the per-slot features sit beside it, for the monitor
    with MonitorDB(st.db_url) as db:
        kept = db.get_state(cat.id, "precipitation_rate", f"reference:{version}")
    assert len(kept["reference"]["slots"]) == ref["n_slots"]


def test_scores_in_the_monitor_equal_the_hindcasts_over_the_same_inits(equal_world, tmp_path):
    from forecast.evaluation.hindcast import run_hindcast
    from forecast.monitoring.config import monitoring_config
    from forecast.monitoring.skill import window_skill

    st, cat, version, t0, t1 = equal_world
    hc = run_hindcast(st, cat.id, model=version, start=t0, end=t1, every="5min",
                      baselines=("persistence", "extrapolation"), n_boot=100, scheduler="sync", out=tmp_path / "hc")
    cfg = monitoring_config(cat)
    with MonitorDB(st.db_url) as db:
        doc = window_skill(db, cat, "precipitation_rate", cfg, start=t0, end=t1, n_boot=100)
    mon, ref = doc["summary"], hc["summary"]
    assert doc["n_inits"] == hc["inits"]["verified"] == 12
    for m in ("model", "persistence", "extrapolation"):
        a, b = mon["methods"][m], ref["methods"][m]
        for key in ("rmse", "mae", "bias", "correlation"):
            np.testing.assert_allclose(np.array(a["continuous"][key], float), np.array(b["continuous"][key], float),
                                       rtol=0, atol=1e-9, err_msg=f"{m} {key}")
        for thr, blk in b["categorical"].items():
            for key in ("csi", "pod", "far", "ets"):
                np.testing.assert_allclose(np.array(a["categorical"][thr][key], float), np.array(blk[key], float),
                                           atol=1e-9, err_msg=f"{m} {key} {thr}")
        assert a["fss"]  # the monitor's FSS thresholds and windows are a subset of the hindcast's
        for thr, ws in a["fss"].items():
            for w, v in ws.items():
                np.testing.assert_allclose(np.array(v, float), np.array(b["fss"][thr][w], float), atol=1e-9)
    for r in ("persistence", "extrapolation"):
        for key in ("diff", "lower", "upper"):
            np.testing.assert_allclose(np.array(mon["bootstrap"]["model"][r]["rmse"][key], float),
                                       np.array(ref["bootstrap"]["model"][r]["rmse"][key], float), atol=1e-9)
    assert iso(t0) == ref["methods"]["model"]["first_init"]


def test_the_background_hook_returns_at_once_and_passes_in_its_thread(run):
    world, svc, db, *_ = run
    hook = MonitorHook(world[0], background=True)
    try:
        doc = hook(svc, {"dataset": svc.catalog.id})
        assert doc["monitor"]["mode"] == "background"
        assert hook.wait(120) and hook.errors == {}
        assert hook.last[svc.catalog.id]["variables"]["precipitation_rate"]["verified"]["new"] == 0  # all done
        doc = hook(svc, {"dataset": svc.catalog.id})
        assert doc["monitor"]["last_pass"]["variables"]
    finally:
        hook.close()
