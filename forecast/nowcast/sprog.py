"""S-PROG (Seed 2003) through pysteps: extrapolation whose small scales decay as observed."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from forecast.errors import BadInputError
from forecast.nowcast.base import WET_THRESHOLD, Prepared
from forecast.nowcast.lagrangian import PystepsMethod
from forecast.nowcast.motion import advect, missing_pysteps_dependency, to_db

logger = logging.getLogger(__name__)


class SProg(PystepsMethod):
    """S-PROG (Seed 2003): extrapolation whose small scales decay as fast as they were observed to.

    pysteps' ``nowcasts.get_method("sprog")`` with its FFT cascade decomposition: the dB field
    (threshold ``wet_threshold`` -> ``precip_thr`` = 10 log10(0.1) = -10 dB, dry cells -15 dB) is split
    into ``n_cascade_levels`` = 6 spatial scales by Gaussian band-pass filters (pysteps' default since
    its issue #385; for 256 km at 1 km the levels run from the domain size down to ~2 km), each scale
    follows its own AR(``ar_order`` = 2) process fitted to the last 3 inputs in Lagrangian coordinates,
    and the recomposed field is mapped back to the observed distribution (``probmatching_method``
    "cdf") so that rain area and intensities stay realistic while small features fade. The result is
    back-transformed to mm h-1 (below 0.1 mm h-1 becomes 0). Motion as in `Extrapolation`.

    pysteps' S-PROG takes no ``kmperpixel`` / ``timestep``: velocities are pixels per input step
    and the output steps are multiples of the input spacing (other steps are interpolated by pysteps).
    Cells missing in any of the last ``ar_order + 1`` inputs are treated by pysteps as outside the
    radar domain and come back NaN at every lead. When one of those slots is missing entirely, or the
    cascade / AR model cannot be fitted (a field that only moved has lag-1 correlation 1, which pysteps
    rejects as nonstationary), the forecast is plain `Extrapolation` with the same motion and says so
    in ``fallback``; without motion it is persistence.
    """

    name = "sprog"

    def __init__(self, *, wet_threshold: float = WET_THRESHOLD, n_cascade_levels: int = 6, ar_order: int = 2,
                 probmatching_method: str | None = "cdf", conditional: bool = False, n_motion_frames: int = 3,
                 lk_options: dict[str, Any] | None = None):
        super().__init__(wet_threshold=wet_threshold, n_motion_frames=n_motion_frames, lk_options=lk_options)
        if isinstance(n_cascade_levels, bool) or not isinstance(n_cascade_levels, (int, np.integer)) \
                or n_cascade_levels < 1:
            raise BadInputError(f"n_cascade_levels must be an integer >= 1, got {n_cascade_levels!r}")
        if isinstance(ar_order, bool) or ar_order not in (1, 2):
            raise BadInputError(f"ar_order must be 1 or 2, got {ar_order!r}")
        if probmatching_method not in ("cdf", "mean", None):
            raise BadInputError(f"probmatching_method must be 'cdf', 'mean' or None, got {probmatching_method!r}")
        self.n_cascade_levels = int(n_cascade_levels)
        self.ar_order = int(ar_order)
        self.probmatching_method = probmatching_method
        self.conditional = bool(conditional)
        self.min_slots = max(self.n_motion_frames, self.ar_order + 1)

    def _precheck(self, prep: Prepared) -> str | None:
        ar_in = prep.values[-(self.ar_order + 1):]
        empty = [str(t) for t, f in zip(prep.times[-(self.ar_order + 1):], ar_in) if not np.isfinite(f).any()]
        if empty:
            return f"input slot(s) {', '.join(empty)} entirely missing; S-PROG needs {self.ar_order + 1} observed slots"
        return None

    def _forecast(self, prep: Prepared, velocity: np.ndarray,
                  timesteps: int | list[float]) -> tuple[np.ndarray, dict[str, Any]]:
        from pysteps import nowcasts
        from pysteps.utils import transformation

        db = to_db(prep.values[-(self.ar_order + 1):], self.wet_threshold)
        precip_thr = 10.0 * np.log10(self.wet_threshold)
        try:
            out = nowcasts.get_method("sprog")(
                db, velocity, timesteps,
                precip_thr=precip_thr, norain_thr=0.0, n_cascade_levels=self.n_cascade_levels,
                extrap_method="semilagrangian", decomp_method="fft", bandpass_filter_method="gaussian",
                ar_order=self.ar_order, conditional=self.conditional, probmatching_method=self.probmatching_method,
                num_workers=1, fft_method="numpy", domain="spatial")
        except missing_pysteps_dependency():
            raise
        except Exception as e:
            # e.g. "nonstationary AR(p) process" when the field only moved and did not change at all
            # (lag-1 correlation 1): extrapolation is then what S-PROG would have converged to
            logger.warning("sprog's cascade / AR model failed at %s (%s: %s); using extrapolation",
                           prep.init_time, type(e).__name__, e)
            fields = advect(prep, velocity, timesteps, outval=np.nan, interp_order=1)
            return fields, {"fallback": f"extrapolation: sprog failed: {type(e).__name__}: {e}",
                            "fallback_method": "extrapolation"}
        fields = transformation.dB_transform(np.asarray(out, dtype=np.float64), threshold=precip_thr,
                                             zerovalue=0.0, inverse=True)[0]
        return fields, {}

    def _attrs(self) -> dict[str, Any]:
        return {"motion_method": "pysteps LK", "n_cascade_levels": self.n_cascade_levels, "ar_order": self.ar_order,
                "probmatching_method": str(self.probmatching_method)}
