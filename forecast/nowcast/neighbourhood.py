"""Neighbourhood persistence: the share of cells at or above a threshold around each cell, in the last
field, at every lead (the simplest probabilistic reference)."""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from forecast.errors import BadInputError
from forecast.nowcast.base import check_n_leads, check_step, check_thresholds, fallback, gap_filled, output, prepare
from forecast.nowcast.exceedance import finish_probabilities


class NeighbourhoodPersistence:
    """Persistence as a neighbourhood probability (Theis et al. 2005).

    ``predict`` is Eulerian persistence. ``predict_probabilities``: in the last field (holes filled from
    earlier slots, as persistence), the fraction of the cells with a value inside the ``size`` x ``size``
    window centred on each cell (odd, default 9 cells) that are ``>= threshold``, the same at every lead;
    cells beyond the grid edge do not count. Where no slot has a value it is NaN; when every input cell is
    missing or unusable it says so in ``fallback``.
    """

    name = "neighbourhood_persistence"
    min_slots = 1

    def __init__(self, *, size: int = 9):
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1 or size % 2 == 0:
            raise BadInputError(f"size must be a positive odd number of cells (a centred window), got {size!r}")
        self.size = int(size)

    def fit(self, obs: xr.DataArray) -> NeighbourhoodPersistence:
        """Nothing to learn."""
        return self

    def predict(self, inputs: xr.DataArray, *, n_leads: int, step: np.timedelta64,
                mask: xr.DataArray | None = None) -> xr.DataArray:
        """Eulerian persistence. Raises: BadInputError for bad ``n_leads``, ``step``, ``inputs`` or ``mask``."""
        n_leads, step = check_n_leads(n_leads), check_step(step)
        prep = prepare(inputs, mask, min_slots=self.min_slots, method=self.name)
        if not np.isfinite(prep.values).any():
            return fallback(prep, n_leads=n_leads, step=step, method=self.name,
                            reason="every input cell is missing or unusable")
        field = gap_filled(prep.values)
        return output(prep, np.broadcast_to(field, (n_leads, *field.shape)).copy(), step=step, method=self.name,
                      attrs={"size": self.size})

    def predict_probabilities(self, inputs: xr.DataArray, *, n_leads: int, step: np.timedelta64,
                              thresholds: Any, mask: xr.DataArray | None = None) -> xr.DataArray:
        """Neighbourhood exceedance fractions (threshold, lead_time, y, x); see the class docstring.

        Raises: BadInputError for bad ``thresholds``, ``n_leads``, ``step``, ``inputs`` or ``mask``.
        """
        thr = check_thresholds(thresholds)
        det = self.predict(inputs, n_leads=n_leads, step=step, mask=mask)
        probs = neighbourhood_fractions(np.asarray(det.values[:1], dtype=np.float64), thr, self.size)
        probs = np.broadcast_to(probs, (len(thr), det.sizes["lead_time"], *probs.shape[2:]))
        return finish_probabilities(det, probs, thr, None, {"size": self.size})


def neighbourhood_fractions(fields: np.ndarray, thresholds: np.ndarray, size: int) -> np.ndarray:
    """Per field (n, y, x) and threshold: the fraction of the cells with a value inside the ``size`` x ``size``
    window centred on each cell that are ``>= threshold`` (threshold, n, y, x); cells beyond the grid edge do
    not count, NaN where the cell itself has no value."""
    from scipy.ndimage import uniform_filter

    f = np.asarray(fields)
    probs = np.full((len(thresholds), *f.shape), np.nan, dtype=np.float32)
    # box sums of integer counts (uniform_filter's mean times the window area), rounded back to integers
    # (exact in float32: at most size^2 cells)
    area = size * size
    for j, field in enumerate(f):
        have = np.isfinite(field)
        n_have = np.rint(uniform_filter(have.astype(np.float32), size, mode="constant") * area)
        usable = have & (n_have > 0)
        np.maximum(n_have, 1, out=n_have)
        with np.errstate(invalid="ignore", divide="ignore"):
            for k, t in enumerate(thresholds):
                events = (have & (field >= t)).astype(np.float32)
                ev = np.rint(uniform_filter(events, size, mode="constant") * area)
                np.divide(ev, n_have, out=probs[k, j], where=usable)
    return probs
