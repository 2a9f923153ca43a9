"""The trained nowcast model behind the same `Nowcaster` interface as the baselines."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xarray as xr

from forecast.errors import BadInputError
from forecast.model.data import model_inputs, probability_match
from forecast.model.lightning import NowcastModule
from forecast.nowcast.base import check_n_leads, check_step, output, prepare

log = logging.getLogger(__name__)


class LearnedNowcaster:
    """A trained `NowcastModule` as a `Nowcaster`: ``predict(inputs, n_leads=, step=, mask=)``.

    ``inputs`` must hold at least the model's k slots at the model's time step (the last k are used);
    ``n_leads`` at most the leads it was trained for.
    """

    name = "model"

    def __init__(self, module: NowcastModule, *, version: str | None = None, sha256: str | None = None):
        self.module = module.eval()
        self.cfg = module.cfg
        self.norm = module.norm
        self.version = version
        self.sha256 = sha256
        self.step = np.timedelta64(int(module.hparams.get("step_seconds", 300)), "s")

    @classmethod
    def from_checkpoint(cls, path: str | Path, *, version: str | None = None, sha256: str | None = None,
                        device: str = "cpu") -> LearnedNowcaster:
        from forecast.model.fit import quiet_lightning

        quiet_lightning()
        module = NowcastModule.load_from_checkpoint(str(path), map_location=device, weights_only=False)
        return cls(module, version=version, sha256=sha256)

    @property
    def min_slots(self) -> int:
        return self.cfg.inputs

    def fit(self, obs: xr.DataArray) -> LearnedNowcaster:
        """Trained already (see `forecast train`)."""
        return self

    def predict(self, inputs: xr.DataArray, *, n_leads: int, step: np.timedelta64,
                mask: xr.DataArray | None = None) -> xr.DataArray:
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
        with torch.inference_mode():
            fields = self.module.predict_fields(x, base)[:n_leads]
        if self.cfg.production.probability_matching:
            fields = probability_match(fields, np.where(usable[-1], vals[-1], np.nan))
        attrs: dict[str, Any] = {"motion_rows_cols_per_step": [round(motion[0], 3), round(motion[1], 3)],
                                 "model_version": self.version or "", "probability_matching": int(
                                     self.cfg.production.probability_matching)}
        return output(prep, fields, step=step, method=self.name, attrs=attrs)
