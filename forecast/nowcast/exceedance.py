"""What the probabilistic baselines share: exceedance probabilities from an ensemble, 0/1 probabilities
from a deterministic field (the persistence fallback), filling cells a method left empty, and the output
of ``predict_probabilities``."""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from forecast.nowcast.base import probability_output

__all__ = ["binary_probabilities", "ensemble_probabilities", "finish_probabilities"]


def binary_probabilities(fields: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """0/1 probabilities (threshold, lead_time, y, x) of ``fields >= threshold``; NaN where a field is NaN
    (float32: the stored precision)."""
    f = np.asarray(fields)
    nan = np.isnan(f)
    p = np.empty((len(thresholds), *f.shape), dtype=np.float32)
    with np.errstate(invalid="ignore"):
        for k, t in enumerate(thresholds):
            np.greater_equal(f, t, out=p[k], casting="unsafe")
            p[k][nan] = np.nan
    return p


def ensemble_probabilities(members: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """The fraction of members ``>= threshold`` (threshold, lead_time, y, x) from members (member, lead_time,
    y, x); NaN where any member is NaN (float32; one threshold at a time, so that a 1000 x 1000 ensemble
    never makes a threshold x member temporary)."""
    m = np.asarray(members)
    nan = np.isnan(m).any(axis=0)
    p = np.empty((len(thresholds), *m.shape[1:]), dtype=np.float32)
    with np.errstate(invalid="ignore"):
        for k, t in enumerate(thresholds):
            np.divide(np.count_nonzero(m >= t, axis=0), m.shape[0], out=p[k], casting="unsafe")
            p[k][nan] = np.nan
    return p


def finish_probabilities(det: xr.DataArray, probabilities: np.ndarray, thresholds: np.ndarray,
                         fill: np.ndarray | None, attrs: dict[str, Any] | None = None) -> xr.DataArray:
    """The `probability_output` of ``probabilities``: cells the method left NaN (inflow edges, cells never
    observed) taken from ``fill`` (persistence 0/1), values clipped to [0, 1] and made non-increasing
    across the increasing thresholds (a float rounding in a convolution must not break the order)."""
    p = np.array(probabilities, dtype=np.float32)  # a copy: the caller's array is left alone
    if fill is not None:
        np.copyto(p, np.asarray(fill, dtype=np.float32), where=np.isnan(p))
    np.clip(p, 0.0, 1.0, out=p)  # NaN stays NaN
    # each threshold at most the smallest finite probability of the lower ones (NaN stays NaN): in place,
    # one (lead_time, y, x) running minimum instead of threshold-sized temporaries
    low = np.full(p.shape[1:], np.inf, dtype=np.float32)
    for k in range(p.shape[0]):
        np.fmin(low, p[k], out=low)  # fmin skips NaN
        np.minimum(p[k], low, out=p[k])  # minimum keeps NaN
    return probability_output(det, p, thresholds, attrs)
