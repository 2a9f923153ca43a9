"""Lagrangian persistence (extrapolation) and the checks shared by the motion-based methods."""

from __future__ import annotations

import logging
import time as _time
from typing import Any

import numpy as np
import xarray as xr

from forecast.errors import BadInputError
from forecast.nowcast.base import (
    WET_THRESHOLD,
    Prepared,
    check_n_leads,
    check_step,
    fallback,
    gap_filled,
    output,
    prepare,
)
from forecast.nowcast.motion import (
    advect,
    estimate_motion,
    missing_pysteps_dependency,
    motion_attrs,
)
from forecast.nowcast.quiet import quiet_pysteps

logger = logging.getLogger(__name__)


#: Keywords of pysteps' ``dense_lucaskanade`` that ``lk_options`` may set.
LK_OPTIONS = frozenset({"lk_kwargs", "fd_method", "fd_kwargs", "interp_method", "interp_kwargs", "nr_std_outlier",
                         "k_outlier", "size_opening", "decl_scale"})


class PystepsMethod:
    """Shared checks of the motion-based methods: fall back to persistence on bad observations."""

    name = ""
    min_slots = 3

    def __init__(self, *, wet_threshold: float, n_motion_frames: int, lk_options: dict[str, Any] | None):
        if not np.isfinite(wet_threshold) or wet_threshold <= 0:
            raise BadInputError(f"wet_threshold must be a positive rain rate in mm h-1, got {wet_threshold!r}")
        if isinstance(n_motion_frames, bool) or not isinstance(n_motion_frames, (int, np.integer)) \
                or n_motion_frames < 2:
            raise BadInputError(f"n_motion_frames must be an integer >= 2, got {n_motion_frames!r}")
        if lk_options is not None and not isinstance(lk_options, dict):
            raise BadInputError(f"lk_options must be a dict of dense_lucaskanade options, got {lk_options!r}")
        unknown = sorted(set(lk_options or {}) - LK_OPTIONS)
        if unknown:
            raise BadInputError(f"unknown lk_options {', '.join(unknown)}; allowed: {', '.join(sorted(LK_OPTIONS))}")
        self.wet_threshold = float(wet_threshold)
        self.n_motion_frames = int(n_motion_frames)
        self.lk_options = dict(lk_options or {})

    def fit(self, obs: xr.DataArray):
        """Nothing to learn: motion and AR parameters are estimated from each forecast's own inputs."""
        return self

    def predict(self, inputs: xr.DataArray, *, n_leads: int, step: np.timedelta64,
                mask: xr.DataArray | None = None) -> xr.DataArray:
        """Raises: BadInputError for bad ``n_leads``, ``step``, ``inputs`` (too few or uneven slots) or ``mask``."""
        n_leads, step = check_n_leads(n_leads), check_step(step)
        prep = prepare(inputs, mask, min_slots=self.min_slots, method=self.name)
        dt = prep.spacing(len(prep.times))  # older slots fill holes, moved by whole steps
        t0 = _time.perf_counter()
        frames = prep.values[-max(self.n_motion_frames, self.min_slots):]
        fb = dict(n_leads=n_leads, step=step, method=self.name)
        if not np.isfinite(frames).any():
            return fallback(prep, reason=f"all cells of the last {len(frames)} inputs are missing or unusable", **fb)
        last = gap_filled(prep.values)
        if not (last >= self.wet_threshold).any():
            return fallback(prep, reason=f"no precipitation >= {self.wet_threshold:g} mm h-1 at the init time; "
                                          "nothing to move", **fb)
        with quiet_pysteps():
            missing_dep = missing_pysteps_dependency()
            try:
                mot = estimate_motion(prep.values[-self.n_motion_frames:], threshold=self.wet_threshold,
                                       lk_options=self.lk_options)
                attrs = motion_attrs(prep, mot, dt)
                if mot.velocity is None:
                    return fallback(prep, reason=mot.reason, attrs=attrs, **fb)
                # in units of the input spacing; pysteps interpolates between AR steps for fractions
                timesteps: int | list[float] = (
                    n_leads if step == dt else [float((k * step) / dt) for k in range(1, n_leads + 1)])
                reason = self._precheck(prep)
                if reason:
                    # the motion is there but the method's own needs are not met: extrapolation
                    logger.info("%s fell back to extrapolation at %s: %s", self.name, prep.init_time, reason)
                    fields = advect(prep, mot.velocity, timesteps, outval=np.nan, interp_order=1)
                    attrs.update({"fallback": f"extrapolation: {reason}", "fallback_method": "extrapolation"})
                else:
                    fields, extra = self._forecast(prep, mot.velocity, timesteps)
                    attrs.update(extra)
            except missing_dep:
                raise
            except Exception as e:  # a numerical failure on odd data must not cost the forecast
                logger.warning("%s failed at %s; using persistence", self.name, prep.init_time, exc_info=True)
                return fallback(prep, reason=f"{self.name} failed: {type(e).__name__}: {e}", **fb)
        fields = np.where(np.isnan(fields), np.nan, np.maximum(fields, 0.0))
        attrs["wet_threshold_mm_h"] = self.wet_threshold
        attrs.update(self._attrs())
        logger.debug("%s at %s: %d leads in %.2f s", self.name, prep.init_time, n_leads, _time.perf_counter() - t0)
        return output(prep, fields, step=step, method=self.name, attrs=attrs)

    def _precheck(self, prep: Prepared) -> str | None:
        return None

    def _forecast(self, prep: Prepared, velocity: np.ndarray,
                  timesteps: int | list[float]) -> tuple[np.ndarray, dict[str, Any]]:
        """The forecast fields (n_leads, y, x) in mm h-1 and attrs to add."""
        raise NotImplementedError

    def _attrs(self) -> dict[str, Any]:
        return {}


class Extrapolation(PystepsMethod):
    """Lagrangian persistence: the last field moved along the observed motion.

    Motion: pysteps' Lucas-Kanade (``motion.get_method("LK")``) on the last ``n_motion_frames`` inputs,
    transformed to dB (``dB_transform``, threshold ``wet_threshold`` = 0.1 mm h-1, dry cells -15 dB, as
    in pysteps' examples: log-rates give the feature detector contrast in light rain as well as in
    cores). Only the most recent run of consecutive slots that are not entirely missing is used (at
    least 2). Holes in a slot are filled from the slot before it; cells missing in all of them stay NaN,
    which pysteps masks (no features on or within 5 px of them).
    LK defaults of pysteps are kept (Shi-Tomasi corners, 50x50 px window, 3 pyramid levels, outliers
    beyond 3 sd among 30 neighbours dropped, vectors declustered over 20 px, inverse-distance
    interpolation); ``lk_options`` passes other ``dense_lucaskanade`` keywords.

    Advection: pysteps' semi-Lagrangian scheme (``extrapolation.get_method("semilagrangian")``,
    linear interpolation, one midpoint iteration) applied to the rain rate in mm h-1, which conserves
    the rate better than moving dB values. Before moving, missing cells of the last slot are filled
    from earlier slots moved forward by the same motion. Cells whose source lies outside the domain
    get ``outval`` (NaN by default: no information, for the caller to fill). Rates are kept >= 0.
    """

    name = "extrapolation"
    min_slots = 3

    def __init__(self, *, wet_threshold: float = WET_THRESHOLD, n_motion_frames: int = 3,
                 outval: float = np.nan, interp_order: int = 1, lk_options: dict[str, Any] | None = None):
        super().__init__(wet_threshold=wet_threshold, n_motion_frames=n_motion_frames, lk_options=lk_options)
        if interp_order not in (0, 1, 3):
            raise BadInputError(f"interp_order must be 0, 1 or 3, got {interp_order!r}")
        self.min_slots = self.n_motion_frames
        self.outval = float(outval)
        self.interp_order = int(interp_order)

    def _forecast(self, prep: Prepared, velocity: np.ndarray,
                  timesteps: int | list[float]) -> tuple[np.ndarray, dict[str, Any]]:
        return advect(prep, velocity, timesteps, outval=self.outval, interp_order=self.interp_order), {}

    def _attrs(self) -> dict[str, Any]:
        return {"motion_method": "pysteps LK", "extrapolation_method": "pysteps semilagrangian"}
