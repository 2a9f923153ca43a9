"""End-of-training work of the probabilistic head: the detection product's cut-offs, chosen on training
windows (never validation ones) so that its frequency bias is ~1 per lead and threshold, and the figures the
registry keeps: on validation, the head's Brier score and skill against the sample climatology, and frequency
bias and CSI of the detection product beside those of the mean (deterministic) forecast.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from forecast.model.lightning import NowcastDataModule, NowcastModule, WindowDataset
from forecast.model.probabilistic import detection_field, detection_level, fit_cutoffs

log = logging.getLogger(__name__)

__all__ = ["CALIBRATION_STRIDE", "calibrate", "training_windows", "window_outputs"]

#: the cut-offs are fitted on every CALIBRATION_STRIDE-th cell along y and x (memory: the probabilities of all
#: training windows are held at once)
CALIBRATION_STRIDE = 2


def training_windows(dm: NowcastDataModule, max_windows: int | None = None) -> WindowDataset:
    """Full-grid windows evenly spaced over the training starts (at most ``max_windows``, default
    ``training.max_val_windows``)."""
    cfg = dm.cfg
    starts = dm.split.train
    cap = max_windows or cfg.training.max_val_windows
    if len(starts) > cap:
        starts = starts[np.linspace(0, len(starts) - 1, cap).round().astype(int)]
    return WindowDataset(dm.series, starts, cfg, dm.norm, train=False, multiple=2 ** cfg.network.depth)


def window_outputs(module: NowcastModule, ds: WindowDataset, shape: tuple[int, int]
                   ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Per full-grid window: ``(fields (lead, y, x), prob (threshold, lead, y, x), obs, valid)`` cropped to
    ``shape``, from one forward pass each."""
    ny, nx = shape
    for i in range(len(ds)):
        item = ds[i]
        fields, prob = module.predict_both_fields(item["x"].numpy(), item["base"].numpy())
        yield (fields[:, :ny, :nx], prob[:, :, :ny, :nx], item["target_phys"].numpy()[:, :ny, :nx],
               item["mask"].numpy()[:, :ny, :nx] > 0)


def calibrate(module: NowcastModule, dm: NowcastDataModule) -> dict[str, Any]:
    """Set ``module.detection_cutoffs`` from training windows (`fit_cutoffs` on every ``CALIBRATION_STRIDE``-th
    cell along y and x of each window, one forward pass each) and return the figures (JSON-ready): the cut-offs,
    the detection product's frequency bias on those training cells, and the validation scores."""
    thr = module.thresholds
    shape = dm.series.values.shape[1:]
    train = training_windows(dm)
    module.eval()
    t = np.asarray(thr, dtype=np.float64)
    sub = (slice(None), slice(None, None, CALIBRATION_STRIDE), slice(None, None, CALIBRATION_STRIDE))
    probs, events, valids = [], [], []
    for _, prob, obs, valid in window_outputs(module, train, shape):
        p, o, v = prob[(slice(None), *sub)], obs[sub], valid[sub]
        n = v.shape[0]
        probs.append(p.reshape(len(thr), n, -1).astype(np.float32))
        with np.errstate(invalid="ignore"):
            events.append((o[None] >= t[:, None, None, None]).reshape(len(thr), n, -1))
        valids.append(v.reshape(n, -1))
    prob_c, ev_c, val_c = (np.concatenate(a, axis=-1) for a in (probs, events, valids))
    cutoffs = fit_cutoffs(prob_c, ev_c, val_c)
    module.detection_cutoffs.copy_(torch.from_numpy(cutoffs).to(module.detection_cutoffs))
    level = detection_level(prob_c, cutoffs)
    on_val = _contingency(module, dm.val_ds, shape, cutoffs)
    out: dict[str, Any] = {"thresholds": list(thr), "train_windows": len(train), "val_windows": len(dm.val_ds),
                           "calibration_stride": CALIBRATION_STRIDE,
                           "cutoffs": {f"{x:g}": [_num(c) for c in cutoffs[:, i]] for i, x in enumerate(thr)},
                           "train": {}, "validation": {}}
    for i, x in enumerate(thr):
        key = f"{x:g}"
        n_ev = int((ev_c[i] & val_c).sum())
        n_fc = int(((level >= i + 1) & val_c).sum())
        out["train"][key] = {"events": n_ev, "detection_frequency_bias": _num(n_fc / n_ev) if n_ev else None}
        c = on_val
        nn_, ev = c["n"][i], c["events"][i]
        base = ev / nn_ if nn_ else math.nan
        bs = c["sse"][i] / nn_ if nn_ else math.nan
        clim = base * (1 - base)
        out["validation"][key] = {
            "n": int(nn_), "base_rate": _num(base), "brier": _num(bs), "brier_climatology": _num(clim),
            "bss": _num(1 - bs / clim) if clim > 0 else None,
            "detection_frequency_bias": _bias(c["det"][i]), "detection_csi": _csi(c["det"][i]),
            "mean_frequency_bias": _bias(c["mean"][i]), "mean_csi": _csi(c["mean"][i])}
    log.info("detection cut-offs set on %d training windows: %s", len(train), out["cutoffs"])
    return out


def _contingency(module: NowcastModule, ds: WindowDataset, shape, cutoffs: np.ndarray) -> dict[str, np.ndarray]:
    """Per threshold, pooled over leads and windows: (hits, misses, false alarms) of the detection product
    and of the mean forecast; the head's summed squared error, events and cells."""
    thr = np.asarray(module.thresholds, dtype=np.float64)
    k = len(thr)
    det = np.zeros((k, 3), np.int64)
    mean = np.zeros((k, 3), np.int64)
    sse = np.zeros(k)
    ev = np.zeros(k, np.int64)
    cnt = np.zeros(k, np.int64)
    for fields, prob, obs, valid in window_outputs(module, ds, shape):
        dfield = detection_field(fields, prob, cutoffs, thr)
        for i, t in enumerate(thr):
            o = (obs >= t)[valid]
            for acc, f in ((det, dfield), (mean, fields)):
                fc = (f >= t)[valid]
                acc[i] += [(fc & o).sum(), (~fc & o).sum(), (fc & ~o).sum()]
            sse[i] += float(((prob[i][valid] - o) ** 2).sum())
            ev[i] += int(o.sum())
            cnt[i] += int(valid.sum())
    return {"det": det, "mean": mean, "sse": sse, "events": ev, "n": cnt}


def _bias(c: np.ndarray) -> float | None:
    hits, misses, fa = (int(v) for v in c)
    return _num((hits + fa) / (hits + misses)) if hits + misses else None


def _csi(c: np.ndarray) -> float | None:
    hits, misses, fa = (int(v) for v in c)
    return _num(hits / (hits + misses + fa)) if hits + misses + fa else None


def _num(v: float) -> float | None:
    v = float(v)
    return round(v, 6) if math.isfinite(v) else None
