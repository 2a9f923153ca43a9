"""The trained nowcast model behind the same `Nowcaster` interface as the baselines."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xarray as xr

from forecast.errors import BadInputError, NotProbabilisticError
from forecast.model.data import model_inputs, probability_match
from forecast.model.lightning import NowcastModule
from forecast.model.probabilistic import detection_field
from forecast.nowcast.base import check_n_leads, check_step, check_thresholds, output, prepare, probability_output

log = logging.getLogger(__name__)


PRODUCTS = ("mean", "detection")


class LearnedNowcaster:
    """A trained `NowcastModule` as a `Nowcaster`: ``predict(inputs, n_leads=, step=, mask=)``.

    ``inputs`` must hold at least the model's k slots at the model's time step (the last k are used);
    ``n_leads`` at most the leads it was trained for.

    A module trained with thresholds (the probabilistic head; ``probabilistic`` is True) is also a
    `ProbabilisticNowcaster`: ``predict_probabilities`` at any subset of its ``thresholds``, and ``predict``
    may give the detection product (``product="detection"``) instead of the mean forecast (``"mean"``,
    the default). ``predict_both`` gives the deterministic forecast and the probabilities of one pass.
    """

    name = "model"

    def __init__(self, module: NowcastModule, *, version: str | None = None, sha256: str | None = None,
                 product: str = "mean"):
        self.module = module.for_inference()
        self.cfg = module.cfg
        self.norm = module.norm
        self.version = version
        self.sha256 = sha256
        self.step = np.timedelta64(int(module.hparams.get("step_seconds", 300)), "s")
        # the probabilities of the last `predict` of a probabilistic model, kept (once) for the
        # `predict_probabilities` that callers make next on the same inputs: one forward pass for both
        self._pending: tuple[bytes, xr.DataArray] | None = None
        if product not in PRODUCTS:
            raise BadInputError(f"product must be one of {', '.join(PRODUCTS)}, got {product!r}", param="product")
        if product == "detection":
            self._require_head("the detection product")
            if bool((module.detection_cutoffs < 0).any()):
                raise NotProbabilisticError(
                    "the model's checkpoint holds no detection cut-offs (they are set at the end of `forecast "
                    "train`); use product='mean'", param="product")
        self.product = product

    @classmethod
    def from_checkpoint(cls, path: str | Path, *, version: str | None = None, sha256: str | None = None,
                        device: str = "cpu", product: str = "mean") -> LearnedNowcaster:
        from forecast.model.fit import quiet_lightning

        quiet_lightning()
        module = NowcastModule.load_from_checkpoint(str(path), map_location=device, weights_only=False)
        return cls(module, version=version, sha256=sha256, product=product)

    @property
    def min_slots(self) -> int:
        return self.cfg.inputs

    @property
    def probabilistic(self) -> bool:
        """Whether this model forecasts probabilities (it has the probabilistic head); callers test this
        rather than ``isinstance(x, ProbabilisticNowcaster)``, which every LearnedNowcaster passes."""
        return self.module.has_head

    @property
    def thresholds(self) -> tuple[float, ...]:
        """The thresholds the head was trained at (empty without the head)."""
        return self.module.thresholds

    def fit(self, obs: xr.DataArray) -> LearnedNowcaster:
        """Trained already (see `forecast train`)."""
        return self

    def predict(self, inputs: xr.DataArray, *, n_leads: int, step: np.timedelta64,
                mask: xr.DataArray | None = None) -> xr.DataArray:
        if self.probabilistic:
            det, prob = self.predict_both(inputs, n_leads=n_leads, step=step, mask=mask)
            self._pending = (_inputs_key(inputs, n_leads, step, mask), prob)
            return det
        prep, fields, _, attrs, step = self._run(inputs, n_leads, step, mask, both=False)
        return output(prep, fields, step=step, method=self.name, attrs=attrs)

    def predict_both(self, inputs: xr.DataArray, *, n_leads: int, step: np.timedelta64,
                     thresholds: Any = None, mask: xr.DataArray | None = None) -> tuple[xr.DataArray, xr.DataArray]:
        """One forward pass: ``(deterministic, probabilities)``; the deterministic one is ``predict``'s
        (the mean forecast, or the detection product when ``product="detection"``), the probabilities
        those of ``predict_probabilities`` (``thresholds`` None: every trained threshold).

        Raises:
            NotProbabilisticError: the model has no probabilistic head.
            BadInputError: a threshold the model was not trained at, or a bad argument.
        """
        self._require_head("exceedance probabilities")
        idx, thr = self._threshold_index(thresholds)
        prep, fields, prob, attrs, step = self._run(inputs, n_leads, step, mask, both=True)
        if self.product == "detection":
            cut = self.module.detection_cutoffs.detach().cpu().numpy()[:n_leads]
            fields = detection_field(fields, prob, cut, self.thresholds)
            attrs |= {"product": "detection", "detection_thresholds": list(self.thresholds),
                      "detection_rule": "the highest threshold whose exceedance probability reaches its cut-off "
                      "(set on training windows for a frequency bias of 1); value: the mean forecast clipped "
                      "into that bin"}
        det = output(prep, fields, step=step, method=self.name, attrs=attrs)
        return det, probability_output(det, prob[idx], thr, {"probability_source": "model head"})

    def predict_probabilities(self, inputs: xr.DataArray, *, n_leads: int, step: np.timedelta64, thresholds: Any,
                              mask: xr.DataArray | None = None) -> xr.DataArray:
        """Exceedance probabilities (threshold, lead_time, y, x) at ``thresholds``, a subset of the trained
        ones (see `ProbabilisticNowcaster`). Right after ``predict`` on the same inputs, that pass's."""
        pending, self._pending = self._pending, None
        if pending is not None and pending[0] == _inputs_key(inputs, n_leads, step, mask):
            return pending[1].isel(threshold=self._threshold_index(thresholds)[0])
        return self.predict_both(inputs, n_leads=n_leads, step=step, thresholds=check_thresholds(thresholds),
                                 mask=mask)[1]

    def _require_head(self, what: str) -> None:
        if not self.probabilistic:
            raise NotProbabilisticError(
                f"model {self.version or '(unversioned)'} was trained without thresholds and has no probabilistic "
                f"head, so it cannot give {what}; retrain it for a variable with catalog thresholds")

    def _threshold_index(self, thresholds: Any) -> tuple[np.ndarray, np.ndarray]:
        trained = np.asarray(self.thresholds, dtype=np.float64)
        if thresholds is None:
            return np.arange(len(trained)), trained
        asked = check_thresholds(thresholds)
        idx = [int(np.argmin(np.abs(trained - t))) for t in asked]
        missing = [float(t) for t, i in zip(asked, idx) if not np.isclose(trained[i], t, rtol=1e-6, atol=1e-9)]
        if missing:
            raise BadInputError(
                f"thresholds {missing} are not among those the model was trained at {trained.tolist()}; ask for a "
                f"subset of them", param="thresholds")
        return np.asarray(idx), asked

    def _run(self, inputs, n_leads, step, mask, *, both: bool):
        n_leads, step = check_n_leads(n_leads), check_step(step)
        if n_leads > self.cfg.leads:
            raise BadInputError(f"n_leads {n_leads} exceeds the {self.cfg.leads} leads the model was trained for")
        if step != self.step.astype(step.dtype):
            raise BadInputError(f"step {step} differs from the model's time step {self.step}")
        prep = prepare(inputs, mask, min_slots=self.cfg.inputs, method=self.name)
        k = self.cfg.inputs
        prep.spacing(k)  # the last k slots must be evenly spaced
        vals = prep.values[-k:]
        usable = np.isfinite(vals)
        x, base, motion = model_inputs(vals, usable, prep.init_time, self.norm, self.cfg.leads)
        prob = None
        with torch.inference_mode():
            if both:
                fields, prob = self.module.predict_both_fields(x, base)
                fields, prob = fields[:n_leads], prob[:, :n_leads]
            else:
                fields = self.module.predict_fields(x, base)[:n_leads]
        if self.cfg.production.probability_matching:
            fields = probability_match(fields, np.where(usable[-1], vals[-1], np.nan))
        attrs: dict[str, Any] = {"motion_rows_cols_per_step": [round(motion[0], 3), round(motion[1], 3)],
                                 "model_version": self.version or "", "probability_matching": int(
                                     self.cfg.production.probability_matching)}
        return prep, fields, prob, attrs, step


def _inputs_key(inputs: xr.DataArray, n_leads: int, step: Any, mask: xr.DataArray | None) -> bytes:
    """A digest of everything a forecast depends on: values, times, mask, leads and step."""
    h = hashlib.blake2b(digest_size=16)
    h.update(repr((int(n_leads), str(step), inputs.shape, inputs.dims)).encode())
    h.update(np.ascontiguousarray(inputs.values).tobytes())
    for name in inputs.dims:
        if name in inputs.coords:
            h.update(np.ascontiguousarray(inputs[name].values).tobytes())
    if mask is not None:
        h.update(np.ascontiguousarray(np.asarray(mask)).tobytes())
    return h.digest()

