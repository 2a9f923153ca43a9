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
    """0/1 probabilities (threshold, lead_time, y, x) of ``fields >= threshold``; NaN where a field is NaN."""
    f = np.asarray(fields, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        p = (f[None] >= thresholds[:, None, None, None]).astype(np.float64)
    p[:, np.isnan(f)] = np.nan
    return p


def ensemble_probabilities(members: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """The fraction of members ``>= threshold`` (threshold, lead_time, y, x) from members (member, lead_time,
    y, x); NaN where any member is NaN."""
    m = np.asarray(members, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        p = (m[None] >= thresholds[:, None, None, None, None]).mean(axis=1)
    p[:, np.isnan(m).any(axis=0)] = np.nan
    return p


def finish_probabilities(det: xr.DataArray, probabilities: np.ndarray, thresholds: np.ndarray,
                         fill: np.ndarray | None, attrs: dict[str, Any] | None = None) -> xr.DataArray:
    """The `probability_output` of ``probabilities``: cells the method left NaN (inflow edges, cells never
    observed) taken from ``fill`` (persistence 0/1), values clipped to [0, 1] and made non-increasing
    across the increasing thresholds (a float rounding in a convolution must not break the order)."""
    p = np.array(probabilities, dtype=np.float64)
    if fill is not None:
        hole = np.isnan(p)
        p[hole] = fill[hole]
    p = np.clip(p, 0.0, 1.0)
    finite = np.isfinite(p)
    p = np.where(finite, np.minimum.accumulate(np.where(finite, p, np.inf), axis=0), np.nan)
    return probability_output(det, p, thresholds, attrs)
