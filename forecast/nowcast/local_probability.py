"""Local Lagrangian probability (Germann and Zawadzki 2004) through pysteps: the extrapolated field's
exceedance, smoothed over a neighbourhood that grows with lead time."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import xarray as xr

from forecast.errors import BadInputError
from forecast.nowcast.base import WET_THRESHOLD, check_thresholds, gap_filled, prepare
from forecast.nowcast.exceedance import binary_probabilities, finish_probabilities
from forecast.nowcast.lagrangian import Extrapolation
from forecast.nowcast.motion import estimate_motion
from forecast.nowcast.quiet import quiet_pysteps

logger = logging.getLogger(__name__)


class LocalProbability(Extrapolation):
    """``pysteps.nowcasts.lagrangian_probability.forecast``: the last field (holes filled from earlier
    slots) moved along the Lucas-Kanade motion of `Extrapolation`, its exceedance ``>= threshold``
    averaged over a square window of ``int(lead_steps * slope)`` cells (``slope`` cells per input step,
    pysteps' default 5), counting only cells with a value.

    ``predict`` is `Extrapolation` (under the name ``local_probability``). When extrapolation falls back
    to persistence (dry, no motion, missing inputs) the probabilities are persistence's 0/1 and say so in
    ``fallback``; cells pysteps leaves NaN (inflow edges) also take persistence's 0/1.
    """

    name = "local_probability"

    def __init__(self, *, slope: float = 5.0, wet_threshold: float = WET_THRESHOLD, n_motion_frames: int = 3,
                 lk_options: dict[str, Any] | None = None):
        super().__init__(wet_threshold=wet_threshold, n_motion_frames=n_motion_frames, lk_options=lk_options)
        if isinstance(slope, bool) or not isinstance(slope, (int, float, np.number)) or not np.isfinite(slope) \
                or slope < 0:
            raise BadInputError(f"slope must be a non-negative number of cells per input step, got {slope!r}")
        self.slope = float(slope)

    def predict_probabilities(self, inputs: xr.DataArray, *, n_leads: int, step: np.timedelta64,
                              thresholds: Any, mask: xr.DataArray | None = None) -> xr.DataArray:
        """Exceedance probabilities (threshold, lead_time, y, x); see the class docstring.

        Raises: BadInputError for bad ``thresholds``, ``n_leads``, ``step``, ``inputs`` or ``mask``.
        """
        thr = check_thresholds(thresholds)
        det = self.predict(inputs, n_leads=n_leads, step=step, mask=mask)
        pers = binary_probabilities(gap_filled_fields(inputs, mask, n_leads, self.min_slots, self.name), thr)
        attrs = {"slope": self.slope}
        if det.attrs.get("fallback"):
            return finish_probabilities(det, pers, thr, None, attrs)
        prep = prepare(inputs, mask, min_slots=self.min_slots, method=self.name)
        dt = prep.spacing(len(prep.times))
        step64 = det["lead_time"].values[0]
        timesteps: int | list[float] = (
            n_leads if step64 == dt else [float((k * step64) / dt) for k in range(1, n_leads + 1)])
        try:
            from pysteps.nowcasts import lagrangian_probability

            with quiet_pysteps():
                mot = estimate_motion(prep.values[-self.n_motion_frames:], threshold=self.wet_threshold,
                                      lk_options=self.lk_options)  # cached: the motion predict used
                base = gap_filled(prep.values)
                probs = np.stack([lagrangian_probability.forecast(base, mot.velocity, timesteps, float(t),
                                                                  slope=self.slope) for t in thr])
        except Exception as e:  # noqa: BLE001 - odd data must not cost the forecast
            logger.warning("local_probability failed at %s; using persistence", prep.init_time, exc_info=True)
            attrs.update({"fallback": f"persistence: local_probability failed: {type(e).__name__}: {e}",
                          "fallback_method": "persistence"})
            return finish_probabilities(det, pers, thr, None, attrs)
        return finish_probabilities(det, probs, thr, pers, attrs)


def gap_filled_fields(inputs: xr.DataArray, mask: xr.DataArray | None, n_leads: int, min_slots: int,
                      method: str) -> np.ndarray:
    """Persistence's fields (lead_time, y, x): the last slot, holes filled from earlier ones."""
    prep = prepare(inputs, mask, min_slots=min_slots, method=method)
    field = gap_filled(prep.values)
    return np.broadcast_to(field, (n_leads, *field.shape))
