"""The model's probabilistic head: bin probabilities and exceedance, the masked cross-entropy, a tiny training
run whose probabilities beat climatology, the detection product and its cut-offs, and old checkpoints
without the head."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

torch = pytest.importorskip("torch")

from forecast.errors import BadInputError, NotProbabilisticError  # noqa: E402
from forecast.model.config import ModelConfig, parse_model_config  # noqa: E402
from forecast.model.data import Normaliser  # noqa: E402
from forecast.model.lightning import NowcastModule  # noqa: E402
from forecast.model.probabilistic import (  # noqa: E402
    bin_index,
    detection_field,
    exceedance,
    fit_cutoffs,
    masked_cross_entropy,
)

from testkit import trains_model  # noqa: E402
from test_model import TINY, moving_blobs, series_of  # noqa: E402  (tests/forecast/model is on sys.path)

THR = [1.0, 5.0]
STEP = np.timedelta64(300, "s")
NORM = Normaliser(transform="log1p", mean=0.3, std=0.8, phys_scale=3.0)


def module(thresholds=THR, **training) -> NowcastModule:
    cfg = ModelConfig.model_validate({**TINY, "training": {**TINY["training"], **training}})
    torch.manual_seed(0)
    return NowcastModule(config=cfg.to_dict(), norm=NORM.to_dict(), thresholds=thresholds)


def test_head_gives_bin_probabilities_and_non_increasing_exceedance():
    m = module([0.1, 1.0, 5.0])
    with torch.no_grad():
        m.net.prob_head.conv.weight.normal_(0, 1.0)  # an arbitrary (trained-looking) head
    x, base = torch.randn(2, 11, 16, 16), torch.randn(2, 3, 16, 16)
    z, logits = m.forward_both(x, base)
    assert z.shape == (2, 3, 16, 16) and logits.shape == (2, 3, 4, 16, 16)
    assert torch.allclose(torch.softmax(logits, 2).sum(2), torch.ones(2, 3, 16, 16), atol=1e-5)
    p = exceedance(logits)
    assert p.shape == (2, 3, 3, 16, 16)
    assert (p >= 0).all() and (p <= 1).all() and (p.diff(dim=2) <= 1e-6).all()
    assert torch.equal(z, m(x, base))  # the deterministic output is the same with or without the head


def test_inference_computes_the_training_pass_probabilities_one_lead_at_a_time():
    m = module([0.1, 1.0, 5.0])
    with torch.no_grad():
        m.net.prob_head.conv.weight.normal_(0, 1.0)
        m.net.prob_head.conv.bias.normal_(0, 1.0)
        m.net.prob_head.log_sharpness.normal_(1.0, 0.5)  # a different sharpness per lead
    x, base = torch.randn(2, 11, 64, 64), 2 * torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        z, logits = m.forward_both(x, base)
        z2, prob = m.net.forward_exceedance(x, base)
    assert prob.shape == (2, 3, 3, 64, 64)  # (batch, threshold, lead, y, x)
    assert torch.equal(z, z2)
    assert torch.allclose(prob, exceedance(logits).transpose(1, 2), atol=1e-6)
    assert m.net.prob_head.exceedance(m.net._features(x), base).shape == prob.shape


def test_the_inference_layout_gives_the_training_layouts_numbers():
    """`for_inference` (channels-last weights and inputs, oneDNN's fast path on CPU): the same forecast and
    probabilities as the module in its training layout, up to float rounding."""
    a = module([0.1, 1.0, 5.0])
    with torch.no_grad():
        a.net.prob_head.conv.weight.normal_(0, 1.0)
        a.net.head.weight.normal_(0, 0.1)
    b = module([0.1, 1.0, 5.0])
    b.load_state_dict(a.state_dict())
    b.for_inference()
    rng = np.random.default_rng(1)
    x = rng.normal(size=(11, 40, 56)).astype("float32")
    base = rng.normal(size=(3, 40, 56)).astype("float32")
    fa, pa = a.eval().predict_both_fields(x, base)
    fb, pb = b.predict_both_fields(x, base)
    assert b.net.down[0].body[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert fb.shape == fa.shape == (3, 40, 56) and pb.shape == pa.shape == (3, 3, 40, 56)
    np.testing.assert_allclose(fb, fa, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(pb, pa, atol=1e-5)
    np.testing.assert_allclose(b.predict_fields(x, base), fa, rtol=1e-5, atol=1e-5)
    assert np.abs(fa).max() > 0.1 and pa.std() > 0.01  # numbers worth comparing


def test_untrained_head_is_softened_lagrangian_persistence():
    m = module()
    phys = torch.zeros(1, 3, 16, 16)
    phys[..., 8:] = 20.0  # dry left half, heavy rain in the right half
    base = torch.from_numpy(NORM.forward(phys.numpy()))
    _, logits = m.forward_both(torch.zeros(1, 11, 16, 16), base)
    assert torch.equal(logits.argmax(2)[:, :, :, [0, 15]], bin_index(phys, torch.tensor(THR))[:, :, :, [0, 15]])
    p = exceedance(logits)[0]  # (lead, threshold, y, x)
    assert (p[:, :, :, 0] < 0.05).all() and (p[:, :, :, 15] > 0.95).all()  # far from the edge: persistence
    assert 0.3 < p[0, 0, 8, 7] < 0.7 and 0.3 < p[0, 0, 8, 8] < 0.7  # at the edge: uncertain
    assert (p[2, 0, 8, :8] >= p[0, 0, 8, :8]).all()  # the neighbourhood widens with lead
    assert 0 < p.min() and p.max() < 1  # softened, never a hard 0 or 1


def test_cross_entropy_ignores_masked_cells():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 3, 3, 8, 8, generator=g)
    target = torch.rand(2, 3, 8, 8, generator=g) * 10
    mask = (torch.rand(2, 3, 8, 8, generator=g) > 0.3).float()
    thr = torch.tensor(THR)
    ce = masked_cross_entropy(logits, target, mask, thr)
    moved = torch.where(mask > 0, target, torch.full_like(target, 50.0))
    assert masked_cross_entropy(logits, moved, mask, thr) == ce
    assert masked_cross_entropy(logits, target + 3.0, mask, thr) != ce  # unmasked targets do count
    # and through the module's whole loss: masked targets change nothing
    m = module()
    batch = {"x": torch.randn(2, 11, 8, 8, generator=g), "base": torch.randn(2, 3, 8, 8, generator=g),
             "target": torch.randn(2, 3, 8, 8, generator=g), "target_phys": target, "mask": mask}
    loss, _ = m._loss(batch)
    other = dict(batch, target_phys=moved, target=torch.where(mask > 0, batch["target"], torch.full_like(target, 9.0)))
    assert torch.allclose(m._loss(other)[0], loss)
    off = module(probability_loss_weight=0.0)
    assert torch.allclose(off._loss(batch)[0], off._regression_loss(off(batch["x"], batch["base"]), batch))


def test_loss_is_finite_for_an_observation_far_from_the_prior():
    m = module()
    with torch.no_grad():
        m.net.prob_head.log_sharpness.fill_(7.0)  # a very sharp smooth part: exp(-1100 * 6) underflows
    batch = {"x": torch.zeros(1, 11, 8, 8), "base": torch.full((1, 3, 8, 8), 8.0),  # ~800 mm/h, dry observed
             "target": torch.zeros(1, 3, 8, 8), "target_phys": torch.zeros(1, 3, 8, 8), "mask": torch.ones(1, 3, 8, 8)}
    loss, _ = m._loss(batch)
    loss.backward()
    assert torch.isfinite(loss) and all(torch.isfinite(p.grad).all() for p in m.parameters() if p.grad is not None)


def test_probability_loss_weight_is_strict():
    assert parse_model_config({}).training.probability_loss_weight == 1.0
    with pytest.raises(BadInputError, match="training.probability_loss_weight"):
        parse_model_config({"training": {"probability_loss_weight": -1}})


def test_cutoffs_give_the_detection_product_a_frequency_bias_of_one():
    rng = np.random.default_rng(0)
    prob = rng.uniform(size=(2, 1, 50, 50))
    prob[1] = prob[0] * rng.uniform(size=(1, 50, 50))  # non-increasing along threshold
    obs = np.select([rng.uniform(size=(1, 50, 50)) < 0.05, rng.uniform(size=(1, 50, 50)) < 0.25], [7.0, 3.0], 0.0)
    valid = rng.uniform(size=(1, 50, 50)) < 0.9
    events = obs[None] >= np.array(THR)[:, None, None, None]
    cut = fit_cutoffs(prob.reshape(2, 1, -1), events.reshape(2, 1, -1), valid.reshape(1, -1))
    field = detection_field(np.full((1, 50, 50), 3.0, np.float32), prob, cut, THR)
    for k, t in enumerate(THR):  # the product, not each probability alone, has the observed frequency
        assert abs((field >= t)[valid].sum() / events[k][valid].sum() - 1) < 0.01
    assert np.array_equal(field >= 5.0, prob[1] >= cut[0, 1])
    assert np.array_equal(field >= 1.0, (prob[0] >= cut[0, 0]) | (prob[1] >= cut[0, 1]))
    assert set(np.unique(field[(field >= 1) & (field < 5)])) == {3.0}  # the mean value, inside its bin
    assert np.isnan(fit_cutoffs(prob.reshape(2, 1, -1), events.reshape(2, 1, -1) & False, valid.reshape(1, -1))).all()


def test_cutoffs_do_not_detect_every_cell_of_a_tie():
    prob = np.full((1, 1, 1000), 1e-6)  # the prior's floor everywhere ...
    prob[0, 0, :3] = [0.4, 0.2, 0.1]  # ... but three cells
    events = np.zeros((1, 1, 1000), bool)
    events[0, 0, [0, 500, 501, 502, 503]] = True  # five events: the fourth and fifth would take the floor
    cut = fit_cutoffs(prob, events, np.ones((1, 1000), bool))
    assert cut[0, 0] == pytest.approx(0.1)  # three detections (bias 0.6), not a thousand (bias 200)


# -- a tiny training run -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
@trains_model
def trained(tmp_path_factory):
    """A few seconds of training on moving rain cells, with the head at 1 and 5 mm/h."""
    from forecast.model.fit import fit

    cfg = ModelConfig.model_validate({**TINY, "training": {**TINY["training"], "max_epochs": 3,
                                                           "samples_per_epoch": 32, "max_val_windows": 4}})
    series = series_of(moving_blobs(60))
    fitted = fit(series, cfg, workdir=tmp_path_factory.mktemp("head"), dataset="d", variable="precipitation_rate",
                 thresholds=THR)
    return fitted, series


def inputs_of(series, end: int, k: int = 3) -> xr.DataArray:
    return xr.DataArray(series.values[end - k:end], dims=("time", "y", "x"),
                        coords={"time": series.times[end - k:end].astype("datetime64[ns]")}, name="precipitation_rate",
                        attrs={"units": "mm h-1"})


def brier_on_training_windows(mod: NowcastModule, fitted) -> tuple[float, float]:
    """(Brier score of ``mod`` at the lowest threshold, Brier score of the base rate) on training windows."""
    from forecast.model.detection import training_windows, window_outputs

    dm = fitted.datamodule
    sse = n = ev = 0.0
    for _, prob, obs, valid in window_outputs(mod, training_windows(dm), dm.series.values.shape[1:]):
        o = (obs >= THR[0])[valid]
        sse += float(((prob[0][valid] - o) ** 2).sum())
        ev += o.sum()
        n += o.size
    base = ev / n
    return sse / n, base * (1 - base)


def test_trained_head_beats_climatology_and_the_untrained_head(trained):
    fitted, _ = trained
    bs, clim = brier_on_training_windows(fitted.module, fitted)
    untrained = NowcastModule(**{k: v for k, v in fitted.module.hparams.items()})
    bs0, _ = brier_on_training_windows(untrained, fitted)
    assert bs < 0.5 * clim and bs < bs0, (bs, bs0, clim)
    val = fitted.training["probabilistic"]["validation"]["1"]
    assert val["bss"] > 0 and val["n"] > 0


def test_detection_cutoffs_give_bias_near_one_on_training_data(trained):
    from forecast.model.detection import training_windows, window_outputs

    fitted, _ = trained
    cut = fitted.module.detection_cutoffs.numpy()
    assert cut.shape == (3, 2) and not np.any(cut < 0) and not np.any(cut > 1)
    dm = fitted.datamodule
    counts = np.zeros((2, 2))
    for fields, prob, obs, valid in window_outputs(fitted.module, training_windows(dm), dm.series.values.shape[1:]):
        det = detection_field(fields, prob, cut, THR)
        for i, t in enumerate(THR):
            counts[i] += [(det >= t)[valid].sum(), (obs >= t)[valid].sum()]
    bias = counts[:, 0] / counts[:, 1]
    assert np.all((bias > 0.8) & (bias < 1.25)), bias


def test_checkpoint_predicts_probabilities_and_the_detection_product(trained):
    from forecast.model.learned import LearnedNowcaster
    from forecast.nowcast import ProbabilisticNowcaster

    fitted, series = trained
    nc = LearnedNowcaster.from_checkpoint(fitted.checkpoint, version="v9")
    assert nc.probabilistic and isinstance(nc, ProbabilisticNowcaster) and nc.thresholds == tuple(THR)
    assert torch.equal(nc.module.detection_cutoffs, fitted.module.detection_cutoffs)  # kept in the checkpoint
    da = inputs_of(series, 50)
    p = nc.predict_probabilities(da, n_leads=3, step=STEP, thresholds=THR)
    assert p.dims == ("threshold", "lead_time", "y", "x") and p.dtype == np.float32
    assert p["threshold"].values.tolist() == THR and p.attrs["units"] == "1"
    assert float(p.min()) >= 0 and float(p.max()) <= 1 and bool((p.diff("threshold") <= 0).all())
    high = nc.predict_probabilities(da, n_leads=2, step=STEP, thresholds=[5.0])
    np.testing.assert_array_equal(high.values[0], p.values[1, :2])
    mean = nc.predict(da, n_leads=3, step=STEP)
    det, p2 = nc.predict_both(da, n_leads=3, step=STEP)
    xr.testing.assert_identical(det, mean)
    np.testing.assert_array_equal(p2.values, p.values)
    with pytest.raises(BadInputError, match=r"\[2\.0\].*trained at \[1\.0, 5\.0\]"):
        nc.predict_probabilities(da, n_leads=3, step=STEP, thresholds=[1.0, 2.0])
    dnc = LearnedNowcaster.from_checkpoint(fitted.checkpoint, product="detection")
    d = dnc.predict(da, n_leads=3, step=STEP)
    assert d.attrs["product"] == "detection" and "product" not in mean.attrs
    cut = fitted.module.detection_cutoffs.numpy()
    hit = p.values >= cut.T[:, :, None, None]
    np.testing.assert_array_equal(d.values >= 5.0, hit[1])
    np.testing.assert_array_equal(d.values >= 1.0, hit[0] | hit[1])
    with pytest.raises(BadInputError, match="product must be one of mean, detection"):
        LearnedNowcaster(fitted.module, product="median")


def test_predict_then_probabilities_share_one_forward_pass(trained):
    from forecast.model.learned import LearnedNowcaster

    fitted, series = trained
    nc = LearnedNowcaster.from_checkpoint(fitted.checkpoint)
    da, other = inputs_of(series, 50), inputs_of(series, 60)
    fresh = nc.predict_probabilities(da, n_leads=3, step=STEP, thresholds=THR)
    calls = []
    forward = nc.module.predict_both_fields
    nc.module.predict_both_fields = lambda *a: calls.append(1) or forward(*a)
    nc.predict(da, n_leads=3, step=STEP)
    kept = nc.predict_probabilities(da, n_leads=3, step=STEP, thresholds=[5.0])
    assert len(calls) == 1  # the probabilities of predict's own pass
    np.testing.assert_array_equal(kept.values[0], fresh.values[1])
    assert kept["threshold"].attrs == fresh["threshold"].attrs
    again = nc.predict_probabilities(da, n_leads=3, step=STEP, thresholds=THR)  # kept once only
    assert len(calls) == 2 and np.array_equal(again.values, fresh.values)
    nc.predict(da, n_leads=3, step=STEP)
    moved = nc.predict_probabilities(other, n_leads=3, step=STEP, thresholds=THR)  # other inputs: a new pass
    assert len(calls) == 4
    np.testing.assert_array_equal(moved.values, nc.predict_probabilities(other, n_leads=3, step=STEP,
                                                                          thresholds=THR).values)


def test_old_checkpoint_without_head_loads_predicts_and_refuses_probabilities(trained, tmp_path):
    from forecast.model.fit import fit
    from forecast.model.learned import LearnedNowcaster

    _, series = trained
    cfg = ModelConfig.model_validate(TINY)
    fitted = fit(series, cfg, workdir=tmp_path, dataset="d", variable="precipitation_rate")  # no thresholds
    assert not fitted.module.has_head and "probabilistic" not in fitted.training
    ck = torch.load(fitted.checkpoint, map_location="cpu", weights_only=False)
    del ck["hyper_parameters"]["thresholds"]  # as written before the head existed
    assert not any("prob_head" in k or "cutoffs" in k for k in ck["state_dict"])
    old = tmp_path / "old.ckpt"
    torch.save(ck, old)
    nc = LearnedNowcaster.from_checkpoint(old, version="v1")
    da = inputs_of(series, 50)
    out = nc.predict(da, n_leads=3, step=STEP)
    assert out.shape == (3, 32, 48) and np.isfinite(out.values).all()
    assert nc.probabilistic is False
    assert getattr(nc, "probabilistic", hasattr(nc, "predict_probabilities")) is False
    with pytest.raises(NotProbabilisticError, match="v1 was trained without thresholds"):
        nc.predict_probabilities(da, n_leads=3, step=STEP, thresholds=THR)
    with pytest.raises(NotProbabilisticError):
        LearnedNowcaster.from_checkpoint(old, product="detection")


def test_expected_count_level_detects_as_many_cells_as_the_probabilities_expect():
    """Per lead and threshold, round(sum P) cells, the most probable, nested from the highest threshold down."""
    from forecast.model.probabilistic import clip_to_level, expected_count_level

    rng = np.random.default_rng(0)
    p10 = rng.uniform(0, 0.2, (2, 30, 30))
    p1 = np.clip(p10 + rng.uniform(0, 0.5, (2, 30, 30)), 0, 1)
    prob = np.stack([p1, p10])
    prob[:, 1, 0, 0] = np.nan  # unknown: never detected
    level = expected_count_level(prob)
    assert level.shape == (2, 30, 30) and level[1, 0, 0] == 0
    for li in range(2):
        assert (level[li] >= 2).sum() == round(float(np.nansum(p10[li] if li == 0 else prob[1, 1])))
        assert (level[li] >= 1).sum() == round(float(np.nansum(prob[0, li])))
        # the cells detected at 1 beyond those of 10 are the most probable of the rest
        only1 = level[li] == 1
        rest = (level[li] == 0) & np.isfinite(prob[0, li])
        assert prob[0, li][only1].min() >= prob[0, li][rest].max()
    field = clip_to_level(np.full((2, 30, 30), 3.0, np.float32), level, (1.0, 10.0))
    assert ((field >= 1.0) == (level >= 1)).all() and ((field >= 10.0) == (level >= 2)).all()
