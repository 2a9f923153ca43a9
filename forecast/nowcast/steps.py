"""STEPS (Bowler et al. 2006, Seed et al. 2013) through pysteps: a stochastic ensemble nowcast whose
member fraction gives exceedance probabilities."""

from __future__ import annotations

import logging
import threading
from typing import Any

import numpy as np
import xarray as xr

from forecast.errors import BadInputError
from forecast.nowcast.base import WET_THRESHOLD, Prepared, check_thresholds
from forecast.nowcast.exceedance import binary_probabilities, ensemble_probabilities, finish_probabilities
from forecast.nowcast.lagrangian import PystepsMethod
from forecast.nowcast.motion import advect, missing_pysteps_dependency, to_db

logger = logging.getLogger(__name__)


def _positive_int(value: Any, name: str, least: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
        raise BadInputError(f"{name} must be an integer >= {least}, got {value!r}")
    return int(value)


class Steps(PystepsMethod):
    """The pysteps STEPS ensemble: S-PROG's cascade with stochastic noise and motion perturbations.

    ``pysteps.nowcasts.steps.forecast`` on the last ``ar_order + 1`` inputs transformed to dB as
    `SProg` does (threshold ``wet_threshold`` -> -10 dB, dry -15 dB), with the Lucas-Kanade motion of
    `Extrapolation` (``forecast.nowcast.motion``, shared and cached), ``n_cascade_levels`` = 6 FFT
    levels, AR(2), nonparametric noise, "bps" motion perturbations (``kmperpixel`` from the grid's x
    spacing when it is in metres, else 1; ``timestep`` the input spacing in minutes), "incremental"
    masking and "cdf" probability matching. ``n_ens_members`` members (default 8: about what a 2-core
    hindcast affords) from ``seed`` (fixed: the same inputs give the same ensemble).

    ``predict`` is the ensemble mean (mm h-1), ``predict_probabilities`` the fraction of members
    ``>= threshold``, ``predict_ensemble`` the members (member, lead_time, y, x). Cells outside the
    observed domain come back NaN from pysteps; their probabilities are persistence's 0/1. Falls back
    as `SProg` (extrapolation when an AR input slot is entirely missing; persistence when dry, without
    motion or when pysteps fails): the "members" are then copies of that one forecast.
    """

    name = "steps"

    def __init__(self, *, n_ens_members: int = 8, seed: int = 24, wet_threshold: float = WET_THRESHOLD,
                 n_cascade_levels: int = 6, ar_order: int = 2, n_motion_frames: int = 3,
                 lk_options: dict[str, Any] | None = None):
        super().__init__(wet_threshold=wet_threshold, n_motion_frames=n_motion_frames, lk_options=lk_options)
        self.n_ens_members = _positive_int(n_ens_members, "n_ens_members", 2)
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise BadInputError(f"seed must be a non-negative integer, got {seed!r}")
        self.seed = int(seed)
        self.n_cascade_levels = _positive_int(n_cascade_levels, "n_cascade_levels")
        if isinstance(ar_order, bool) or ar_order not in (1, 2):
            raise BadInputError(f"ar_order must be 1 or 2, got {ar_order!r}")
        self.ar_order = int(ar_order)
        self.min_slots = max(self.n_motion_frames, self.ar_order + 1)
        self._local = threading.local()  # the members of the current call (one instance may serve threads)

    def _precheck(self, prep: Prepared) -> str | None:
        ar_in = prep.values[-(self.ar_order + 1):]
        empty = [str(t) for t, f in zip(prep.times[-(self.ar_order + 1):], ar_in) if not np.isfinite(f).any()]
        if empty:
            return f"input slot(s) {', '.join(empty)} entirely missing; STEPS needs {self.ar_order + 1} observed slots"
        return None

    def _forecast(self, prep: Prepared, velocity: np.ndarray,
                  timesteps: int | list[float]) -> tuple[np.ndarray, dict[str, Any]]:
        from pysteps import nowcasts
        from pysteps.utils import transformation

        db = to_db(prep.values[-(self.ar_order + 1):], self.wet_threshold)
        precip_thr = 10.0 * np.log10(self.wet_threshold)
        dt_min = float(prep.spacing(self.ar_order + 1) / np.timedelta64(1, "m"))
        src = prep.inputs
        km = 1.0
        if "x" in src.coords and src.sizes["x"] > 1 and src["x"].attrs.get("units", "m") == "m":
            km = abs(float(src["x"].values[1] - src["x"].values[0])) / 1000.0
        try:
            out = nowcasts.get_method("steps")(
                db, velocity, timesteps, n_ens_members=self.n_ens_members, n_cascade_levels=self.n_cascade_levels,
                precip_thr=precip_thr, norain_thr=0.0, kmperpixel=km, timestep=dt_min, ar_order=self.ar_order,
                extrap_method="semilagrangian", decomp_method="fft", bandpass_filter_method="gaussian",
                noise_method="nonparametric", vel_pert_method="bps", mask_method="incremental",
                probmatching_method="cdf", seed=self.seed, num_workers=1, fft_method="numpy", domain="spatial")
        except missing_pysteps_dependency():
            raise
        except Exception as e:  # e.g. a nonstationary AR fit on a field that only moved
            logger.warning("steps failed at %s (%s: %s); using extrapolation", prep.init_time, type(e).__name__, e)
            fields = advect(prep, velocity, timesteps, outval=np.nan, interp_order=1)
            return fields, {"fallback": f"extrapolation: steps failed: {type(e).__name__}: {e}",
                            "fallback_method": "extrapolation"}
        members = transformation.dB_transform(np.asarray(out, dtype=np.float64), threshold=precip_thr,
                                              zerovalue=0.0, inverse=True)[0]
        members = np.where(np.isnan(members), np.nan, np.maximum(members, 0.0))
        self._local.members = members
        with np.errstate(invalid="ignore"):
            mean = members.mean(axis=0)
        return mean, {}

    def _attrs(self) -> dict[str, Any]:
        return {"motion_method": "pysteps LK", "n_ens_members": self.n_ens_members, "seed": self.seed,
                "n_cascade_levels": self.n_cascade_levels, "ar_order": self.ar_order}

    def predict_ensemble(self, inputs: xr.DataArray, *, n_leads: int, step: np.timedelta64,
                         mask: xr.DataArray | None = None) -> xr.DataArray:
        """The members (member, lead_time, y, x), float32, with ``predict``'s coordinates and attrs (the
        ensemble mean is ``predict``). After a fallback every member is the fallback forecast.

        Raises: BadInputError for bad ``n_leads``, ``step``, ``inputs`` or ``mask``.
        """
        self._local.members = None
        det = self.predict(inputs, n_leads=n_leads, step=step, mask=mask)
        members = self._local.members
        self._local.members = None
        if members is None or det.attrs.get("fallback"):
            members = np.broadcast_to(det.values, (self.n_ens_members, *det.shape))
        ens = xr.DataArray(np.asarray(members, dtype=np.float32), dims=("member", *det.dims),
                           coords={**det.coords, "member": np.arange(self.n_ens_members)},
                           name=det.name, attrs=dict(det.attrs))
        ens.attrs["ensemble_mean_is_predict"] = 1
        return ens

    def predict_probabilities(self, inputs: xr.DataArray, *, n_leads: int, step: np.timedelta64,
                              thresholds: Any, mask: xr.DataArray | None = None) -> xr.DataArray:
        """The fraction of members ``>= threshold`` (threshold, lead_time, y, x); see the class docstring.

        Raises: BadInputError for bad ``thresholds``, ``n_leads``, ``step``, ``inputs`` or ``mask``.
        """
        thr = check_thresholds(thresholds)
        return probabilities_from_ensemble(self.predict_ensemble(inputs, n_leads=n_leads, step=step, mask=mask),
                                           thr, inputs, mask)


def probabilities_from_ensemble(ens: xr.DataArray, thresholds: np.ndarray, inputs: xr.DataArray,
                                mask: xr.DataArray | None) -> xr.DataArray:
    """Member fractions of ``ens`` as `probability_output`, NaN cells filled with persistence's 0/1."""
    from forecast.nowcast.persistence import Persistence

    det = ens.mean("member", keep_attrs=True)
    det = det.astype(np.float32)
    n_leads = ens.sizes["lead_time"]
    step = ens["lead_time"].values[0]
    pers = Persistence().predict(inputs, n_leads=n_leads, step=step, mask=mask).values
    return finish_probabilities(det, ensemble_probabilities(ens.values, thresholds), thresholds,
                                binary_probabilities(pers, thresholds))
