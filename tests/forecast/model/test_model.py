"""The nowcast model: data windows and masks, the Lightning module, training + registry, and
`forecast predict` with provenance, annotations and every fallback path."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
import yaml

from testkit import ROOT, small_doc, write_catalog, trains_model
from forecast.catalog import parse_catalog
from forecast.errors import BadInputError
from forecast.model.config import ModelConfig, load_model_config, parse_model_config
from forecast.model.data import (Normaliser, Series, advect, estimate_motion, model_inputs, probability_match,
                                 split_windows, usable_windows)

P = "precipitation_rate"
START = datetime(2026, 7, 15, 12, 0, tzinfo=timezone.utc)
HOURS = 3
TINY = {"inputs": 3, "leads": 3,
        "network": {"base_channels": 4, "depth": 2},
        "training": {"max_epochs": 1, "samples_per_epoch": 8, "patch": 16, "batch_size": 4, "max_val_windows": 2}}


# -- pure data layer ------------------------------------------------------------------------------------

def moving_blobs(n: int = 40, ny: int = 32, nx: int = 48, v=(0.0, 2.0), seed: int = 0) -> np.ndarray:
    """Gaussian rain cells moving ``v`` cells per slot (rows, cols)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:ny, 0:nx]
    centres = rng.uniform((0, 0), (ny, nx * 3), size=(6, 2)) - (0, nx)
    out = np.zeros((n, ny, nx), np.float32)
    for t in range(n):
        for cy, cx in centres:
            out[t] += 20 * np.exp(-(((yy - cy - v[0] * t) ** 2 + (xx - cx - v[1] * t) ** 2) / 18.0))
    return out


def series_of(values: np.ndarray, usable: np.ndarray | None = None) -> Series:
    n = values.shape[0]
    times = np.datetime64("2026-07-15T12:00", "s") + np.arange(n) * np.timedelta64(300, "s")
    return Series(dataset="d", variable=P, times=times, values=values,
                  usable=np.isfinite(values) if usable is None else usable,
                  revisions=np.zeros(n, "int16"), available_at=times, step=np.timedelta64(300, "s"),
                  attrs={"physical_range": [0.0, 500.0], "units": "mm h-1"})


def test_split_has_a_gap_and_no_validation_target_inside_any_training_window():
    usable = np.ones((100, 4, 4), bool)
    k, n = 6, 12
    sp = split_windows(usable, k, n, val_fraction=0.25)
    train_slots = {s + i for s in sp.train for i in range(k + n)}
    val_targets = {s + k + i for s in sp.val for i in range(n)}
    val_slots = {s + i for s in sp.val for i in range(k + n)}
    assert not train_slots & val_targets and not train_slots & val_slots
    assert min(val_slots) - max(train_slots) > k + n  # a gap of at least one window
    assert len(sp.train) > 0 and len(sp.val) > 0


def test_split_refuses_too_little_data_with_a_clear_sentence():
    with pytest.raises(BadInputError, match="ingest more data"):
        split_windows(np.ones((30, 4, 4), bool), 6, 12, val_fraction=0.25)


def test_windows_skip_mostly_missing_inputs_and_targets():
    usable = np.ones((30, 4, 4), bool)
    usable[0:3] = False  # windows starting at 0 have 3 of 4 input slots empty
    usable[20:30] = False  # windows whose targets are all empty
    starts = usable_windows(usable, 4, 2)
    assert 0 not in starts and 1 in starts
    assert all(usable[s + 4:s + 6].any() for s in starts)


def test_model_inputs_fill_unusable_cells_and_carry_the_mask():
    vals = np.full((3, 8, 8), 5.0, np.float32)
    vals[2, 0, 0] = 400.0  # a FAIL value, unusable: must not reach the model
    usable = np.ones_like(vals, bool)
    usable[2, 0, 0] = False
    norm = Normaliser(transform="log1p", mean=0.0, std=1.0, phys_scale=1.0)
    x, base, motion = model_inputs(vals, usable, np.datetime64("2026-07-15T06:00"), norm, 2, motion=(0.0, 0.0))
    assert x.shape == (2 * 3 + 2 + 2, 8, 8)
    assert x[2, 0, 0] == pytest.approx(np.log1p(5.0))  # filled from the previous usable slot
    assert x[3 + 2, 0, 0] == 0.0 and x[3 + 2, 1, 1] == 1.0  # mask channel of the last slot
    assert x[6, 0, 0] == pytest.approx(1.0) and x[7, 0, 0] == pytest.approx(0.0, abs=1e-6)  # 06 UTC: sin 1, cos 0
    assert np.allclose(base, np.log1p(5.0))


def test_motion_estimate_and_advection_follow_a_moving_field():
    f = np.log1p(moving_blobs(6, 64, 64, v=(1.0, 3.0)))
    dy, dx = estimate_motion(f, np.ones_like(f, bool))
    assert dy == pytest.approx(1.0, abs=0.35) and dx == pytest.approx(3.0, abs=0.35)
    moved = advect(f[-1], (dy, dx), 2)
    truth = np.log1p(moving_blobs(8, 64, 64, v=(1.0, 3.0)))[6:8]
    inner = (slice(None), slice(10, -10), slice(10, -10))
    assert np.abs(moved - truth)[inner].mean() < 0.5 * np.abs(f[-1] - truth)[inner].mean()


def test_probability_matching_restores_the_observed_distribution():
    ref = np.arange(100, dtype=np.float32).reshape(10, 10)
    fc = np.stack([ref * 0.1, (ref * 0.1)[::-1]])
    out = probability_match(fc, ref)
    assert np.allclose(np.sort(out[0].ravel()), np.sort(ref.ravel()))
    assert np.array_equal(np.argsort(out[1].ravel()), np.argsort(fc[1].ravel()))


def test_model_config_is_strict_and_names_the_path(tmp_path):
    with pytest.raises(BadInputError, match=r"training\.pach: unknown key"):
        parse_model_config({"training": {"pach": 32}})
    with pytest.raises(BadInputError, match="multiple of 2\\*\\*network.depth"):
        parse_model_config({"training": {"patch": 20}, "network": {"depth": 3}})
    p = tmp_path / "m.yaml"
    p.write_text(yaml.safe_dump(TINY))
    assert load_model_config(p).inputs == 3
    with pytest.raises(BadInputError, match="cannot read the model config"):
        load_model_config(tmp_path / "missing.yaml")


def test_datamodule_masks_exclude_unusable_targets_and_stats_come_from_training_only():
    pytest.importorskip("torch")
    from forecast.model.lightning import NowcastDataModule

    vals = moving_blobs(60)
    usable = np.ones_like(vals, bool)
    usable[45, 5:10, 5:10] = False  # FAIL / rejected in the validation period
    vals[50:] = 100.0  # a wildly different validation period must not move the statistics
    cfg = ModelConfig.model_validate(TINY)
    dm = NowcastDataModule(series_of(vals, usable), cfg)
    ref = Normaliser.fit(vals[:dm.split.val_first_slot - dm.split.gap], usable[:dm.split.val_first_slot - dm.split.gap],
                         transform="log1p")
    assert dm.norm.mean == pytest.approx(ref.mean, rel=1e-9) and dm.norm.mean < 1.0 < np.log1p(100.0)
    for i in range(len(dm.val_ds)):
        item = dm.val_ds[i]
        s = dm.val_starts[i]
        for j in range(cfg.leads):
            if s + cfg.inputs + j == 45:
                assert item["mask"][j, 5:10, 5:10].sum() == 0
                assert item["mask"][j, 20:25, 20:25].min() == 1
    item = dm.train_ds[0]
    assert item["x"].shape == (2 * 3 + 2 + 3, 16, 16) and item["target"].shape == (3, 16, 16)


@pytest.mark.slow
def test_lightning_fast_dev_run_on_cpu():
    pytest.importorskip("torch")
    import lightning as L

    from forecast.model.lightning import NowcastDataModule, NowcastModule
    from forecast.model.fit import make_trainer

    cfg = ModelConfig.model_validate(TINY)
    L.seed_everything(0, verbose=False)
    dm = NowcastDataModule(series_of(moving_blobs(60)), cfg)
    module = NowcastModule(config=cfg.to_dict(), norm=dm.norm.to_dict())
    trainer = make_trainer(cfg, fast_dev_run=True)
    trainer.fit(module, datamodule=dm)
    assert trainer.state.finished and np.isfinite(float(trainer.callback_metrics["train_loss"]))
    out = module.predict_fields(dm.val_ds[0]["x"].numpy(), dm.val_ds[0]["base"].numpy())
    assert out.shape[0] == 3 and (out >= 0).all()  # the non-negative head


@pytest.fixture(scope="module")
@trains_model
def world(tmp_path_factory):
    """A 3 h radar sample on a 32 x 48 grid, ingested and QC'd; a tiny model trained and registered."""
    from forecast.ingest.batch import ingest
    from forecast.registry.training import train_model
    from forecast.quality.run import run_qc
    from forecast.synthetic.generate import generate_sample
    from forecast.settings import Settings
    from forecast.stores import store_for

    tmp = tmp_path_factory.mktemp("modelworld")
    doc = small_doc("radar_precip", ny=32, nx=48)
    path = write_catalog(tmp / "catalogs", doc)
    cat = parse_catalog(doc, str(path))
    st = Settings(home=tmp / "home", catalogs=tmp / "catalogs")
    out = tmp / "samples"
    manifest = generate_sample(cat, start=START, hours=HOURS, out=out, faults=[], seed=5)
    store = store_for(st)
    ingest(cat, [out / p for p in manifest["batches"]["main"]], store=store,
           available_at=START + timedelta(hours=HOURS), scheduler="sync")
    run_qc(cat, store=store)
    cfg = tmp / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(TINY))
    doc = train_model(st, cat.id, P, config_path=cfg)
    return st, cat, doc, cfg


INIT = START + timedelta(hours=2)
AS_OF = START + timedelta(hours=HOURS)


def test_train_registers_a_candidate_with_everything_that_made_it(world):
    st, cat, doc, _ = world
    from forecast.registry.store import ModelRegistry

    assert doc["version"] == "v1" and doc["stage"] == "candidate"
    from forecast.stores import store_for

    assert doc["snapshot"] == store_for(st).head()
    assert doc["catalog_hash"] == cat.hash and len(doc["qc_config_hash"]) == 64
    assert doc["hyperparameters"]["inputs"] == 3 and doc["versions"]["torch"].startswith("2.13")
    assert [r["lead_minutes"] for r in doc["metrics"]["leads"]] == [5, 10, 15]
    assert all("rmse_persistence" in r for r in doc["metrics"]["leads"])
    reg = ModelRegistry(st.db_url, st.models_dir)
    ckpt = reg.checkpoint_path("v1")
    import hashlib

    assert hashlib.sha256(ckpt.read_bytes()).hexdigest() == doc["checkpoint_sha256"]
    assert (ckpt.parent / "config.yaml").exists()


def test_train_gives_the_catalog_thresholds_to_the_probabilistic_head(world):
    st, cat, doc, _ = world
    import torch

    from forecast.registry.store import ModelRegistry

    thr = [float(t) for t in cat.variables[P].thresholds]
    prob = doc["metrics"]["probabilistic"]
    assert thr and prob["thresholds"] == thr and set(prob["validation"]) == {f"{t:g}" for t in thr}
    ckpt = torch.load(ModelRegistry(st.db_url, st.models_dir).checkpoint_path("v1"), map_location="cpu",
                      weights_only=False)
    assert ckpt["hyper_parameters"]["thresholds"] == thr
    assert ckpt["state_dict"]["detection_cutoffs"].shape == (3, len(thr))
    for t, row in prob["train"].items():  # the detection product's frequency bias on its training cells
        assert row["detection_frequency_bias"] is None or abs(row["detection_frequency_bias"] - 1) < 0.1, (t, row)


def _predict(st, **kw):
    from forecast.nowcast.predict import predict

    return predict(st, "radar_precip", INIT, as_of=AS_OF, **kw)


def test_predict_with_the_named_model_writes_provenance_and_annotations(world):
    st, cat, doc, _ = world
    from forecast.stores.forecasts import forecast_store_for

    rep = _predict(st, model="v1")
    assert rep["method"] == "model" and rep["fallback"] is None and rep["run"] == "v1"
    prov = rep["provenance"]
    assert prov["model"]["version"] == "v1" and prov["model"]["checkpoint_sha256"] == doc["checkpoint_sha256"]
    assert len(prov["observations"]["input_slots"]) == 3
    assert prov["observations"]["input_slots"][-1]["time"] == "2026-07-15T14:00:00Z"
    assert prov["observations"]["snapshot"] and prov["qc"]["config_hash"] and prov["catalog_hash"] == cat.hash
    assert sum(prov["qc"]["input_quality"].values()) == pytest.approx(1.0)
    assert prov["software"]["torch"]
    fs = forecast_store_for(st)
    ds = fs.open("radar_precip", "v1")
    assert ds[P].dims == ("init_time", "lead_time", "y", "x") and ds.sizes["lead_time"] == 3
    assert fs.provenance("radar_precip", INIT, "v1")["model"]["version"] == "v1"
    assert set(np.unique(ds[f"{P}_annotation"].values)) <= {0, 1, 2, 3}
    again = _predict(st, model="v1")  # idempotent
    assert again["written"] is False and again["snapshot"] == rep["snapshot"]


def test_predict_without_production_model_falls_back_and_says_why(world):
    st, *_ = world
    rep = _predict(st)
    assert rep["method"] in ("extrapolation", "persistence") and rep["run"] == "production"
    assert "no model" in rep["fallback"]["reason"] and rep["provenance"]["model"] is None


def test_fallback_when_the_model_raises(world, monkeypatch):
    st, *_ = world
    from forecast.model.learned import LearnedNowcaster

    def boom(self, *a, **k):
        raise RuntimeError("NaN weights")

    monkeypatch.setattr(LearnedNowcaster, "predict", boom)
    rep = _predict(st, model="v1")
    assert rep["fallback"]["reason"].startswith("model v1 failed: RuntimeError: NaN weights")
    assert rep["method"] in ("extrapolation", "persistence") and rep["written"] is True


def test_fallback_when_the_deadline_is_missed(world):
    st, *_ = world
    rep = _predict(st, model="v1", deadline=0.0)
    assert "exceeded the deadline" in rep["fallback"]["reason"]


def test_fallback_when_inputs_are_mostly_fail(world, monkeypatch):
    st, *_ = world
    import forecast.nowcast.predict as fp
    from qc.flags import QCFlag

    real = fp.read_inputs

    def degraded(*a, **k):
        ds = real(*a, **k)
        q = ds[f"{P}_qc"].values.copy()
        q[:, :, :40] = QCFlag.FAIL
        ds[f"{P}_qc"] = (ds[f"{P}_qc"].dims, q)
        return ds

    monkeypatch.setattr(fp, "read_inputs", degraded)
    rep = _predict(st, model="v1")
    assert "FAIL, rejected or missing" in rep["fallback"]["reason"]
    q = rep["provenance"]["qc"]["input_quality"]
    assert q["FAIL"] > 0.8
    assert rep["annotations"]["degraded_inputs"] >= 3 * 32 * 40  # every lead of the FAIL columns


def test_fallback_when_the_checkpoint_is_deleted_or_tampered(world):
    st, *_ = world
    from forecast.registry.store import ModelRegistry

    reg = ModelRegistry(st.db_url, st.models_dir)
    ckpt = reg.get("v1").checkpoint
    saved = ckpt.read_bytes()
    try:
        ckpt.write_bytes(saved + b"tampered")
        rep = _predict(st, model="v1")
        assert "sha256" in rep["fallback"]["reason"]
        ckpt.unlink()
        rep = _predict(st, model="v1")
        assert "missing" in rep["fallback"]["reason"]
    finally:
        ckpt.write_bytes(saved)


def test_annotations_mark_implausible_extreme_and_degraded_without_clipping():
    from forecast.catalog import load_catalog
    from forecast.plausibility import annotate

    var = load_catalog(ROOT / "catalogs" / "radar_precip.yaml").variables[P]
    rec = dict(physical_range=var.physical_range, record_min=var.climatological_record.min,
               record_max=var.climatological_record.max)
    v = np.array([[[1.0, 260.0, 600.0, -1.0]]], np.float32)  # July record 250, range 0..500
    deg = np.array([[False, False, False, False]])
    ann = annotate(v, np.array(["2026-07-15T12:00"], "datetime64[ns]"), degraded=deg, **rec)
    assert ann.tolist() == [[[0, 1, 2, 2]]]
    ann = annotate(v, np.array(["2026-01-15T12:00"], "datetime64[ns]"), degraded=np.array([[True, False, False, False]]),
                   **rec)
    assert ann.tolist() == [[[3, 1, 2, 2]]]  # January record 60
    assert v[0, 0, 2] == 600.0  # never clipped


def test_cli_predict_bad_inputs_exit_2_with_one_sentence(world, monkeypatch):
    st, *_ = world
    from typer.testing import CliRunner

    from forecast.cli import app

    monkeypatch.setenv("FORECAST_HOME", str(st.home))
    monkeypatch.setenv("FORECAST_CATALOGS", str(st.catalogs))
    r = CliRunner()
    cases = [
        (["--init", "2026-07-15T14:02Z"], "not on the time axis"),
        (["--init", "2026-07-15T14:00Z", "--model", "v99"], "v99"),
        (["--init", "2026-07-14T14:00Z"], "no observations"),
    ]
    for args, msg in cases:
        res = r.invoke(app, ["predict", "radar_precip", *args, "--json"])
        assert res.exit_code == 2, res.output
        assert msg in json.loads(res.stdout)["error"]
    res = r.invoke(app, ["predict", "radar_precip", "--init", "2026-07-15T14:00Z", "--as-of", "2026-07-15T15:00Z",
                         "--model", "v1", "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert {"method", "fallback", "snapshot", "provenance"} <= set(doc)
