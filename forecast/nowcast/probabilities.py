"""Exceedance probabilities beside a forecast: what the Forecaster stores as ``<variable>_exceedance_<t>``
(see `forecast.catalog.exceedance_name`): the answering nowcaster's own probabilities when it has them,
else the neighbourhood probability of the deterministic field that answered; each with its annotation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr

from forecast.catalog import exceedance_name
from forecast.nowcast.base import unit_interval
from forecast.nowcast.exceedance import finish_probabilities
from forecast.nowcast.neighbourhood import neighbourhood_fractions
from forecast.plausibility import annotate_probability, annotation_attrs, annotation_counts

__all__ = ["NEIGHBOURHOOD_SIZE", "ModelAnswer", "check_probabilities", "is_probabilistic",
           "neighbourhood_probabilities", "probability_dataset"]

#: the window (cells, odd) of the neighbourhood probability of a deterministic forecast: the default of the
#: neighbourhood persistence baseline, so that both mean the same thing
NEIGHBOURHOOD_SIZE = 9


@dataclass
class ModelAnswer:
    """What a model run under the deadline gave: its deterministic forecast (None: ``reason`` says why) and,
    for a probabilistic model asked for thresholds, its probabilities (None: ``probability_error`` says why,
    or the model has none)."""

    out: xr.DataArray | None
    reason: str | None = None
    probabilities: xr.DataArray | None = None
    probability_error: str | None = None


def is_probabilistic(nowcaster: Any) -> bool:
    """Whether ``nowcaster`` forecasts probabilities itself: its ``probabilistic`` flag when it has one (a
    learned model trained without a probabilistic head says False), else whether it has
    ``predict_probabilities``."""
    return bool(getattr(nowcaster, "probabilistic", hasattr(nowcaster, "predict_probabilities")))


def check_probabilities(p: Any, det: xr.DataArray, thresholds: np.ndarray) -> xr.DataArray:
    """A nowcaster's probabilities as (threshold, lead_time, y, x) matching ``det`` and ``thresholds``, with
    ``det``'s coordinates.

    Raises:
        ValueError: the result has other dims, sizes or thresholds (the message names what differs).
    """
    if not isinstance(p, xr.DataArray):
        raise ValueError(f"predict_probabilities returned a {type(p).__name__}, not an xarray.DataArray")
    want = ("threshold", "lead_time", "y", "x")
    if set(p.dims) != set(want):
        raise ValueError(f"predict_probabilities returned dims {p.dims}; expected {want}")
    p = p.transpose(*want)
    shape = (len(thresholds), det.sizes["lead_time"], det.sizes["y"], det.sizes["x"])
    if p.shape != shape:
        raise ValueError(f"predict_probabilities returned shape {p.shape}; expected {shape}")
    if "threshold" in p.coords and not np.allclose(np.asarray(p["threshold"].values, dtype=float), thresholds):
        raise ValueError(f"predict_probabilities answered thresholds {p['threshold'].values.tolist()}; "
                         f"asked for {thresholds.tolist()}")
    # the forecast's own coordinates, so that values and probabilities line up exactly when stored together
    own = {k: c for k, c in det.coords.items() if set(c.dims) <= set(want)}
    return p.assign_coords({**own, "threshold": ("threshold", thresholds, p["threshold"].attrs
                                                 if "threshold" in p.coords else {})})


def neighbourhood_probabilities(det: xr.DataArray, values: np.ndarray, thresholds: np.ndarray,
                                size: int = NEIGHBOURHOOD_SIZE) -> xr.DataArray:
    """The neighbourhood probability (threshold, lead_time, y, x) of the deterministic ``values`` (lead_time,
    y, x; the fields that answered, ``det`` gives their coordinates): per lead, the share of the cells with a
    value in the ``size`` x ``size`` window that are ``>= threshold`` (`neighbourhood_fractions`)."""
    probs = neighbourhood_fractions(values, thresholds, size)
    return finish_probabilities(det, probs, thresholds, None, {"size": size})


def probability_dataset(probs: xr.DataArray, *, variable: str, units: str | None, long_name: str | None,
                        degraded: np.ndarray, attrs: dict[str, Any]) -> tuple[xr.Dataset, dict[str, int]]:
    """The stored form of ``probs`` (threshold, lead_time, y, x): one float32 ``<variable>_exceedance_<t>``
    (lead_time, y, x) per threshold with its ``_annotation`` (`annotate_probability`), attrs ``units`` "1",
    ``threshold``, ``threshold_units``, ``variable`` and ``long_name``; and the annotation counts."""
    thresholds = np.asarray(probs["threshold"].values, dtype=np.float64)
    values = unit_interval(probs.values)
    coords = {name: probs[name] for name in ("lead_time", "valid_time", "y", "x", "lat", "lon") if name in probs.coords}
    data: dict[str, Any] = {}
    counts = np.zeros(4, dtype=np.int64)
    what = long_name or variable.replace("_", " ")
    for k, t in enumerate(thresholds):
        name = exceedance_name(variable, float(t))
        ann = annotate_probability(values[k], degraded=degraded)
        counts += np.array(list(annotation_counts(ann).values()))
        a = {"units": "1", "long_name": f"probability that {what} is at or above {float(t):g} {units or ''}".rstrip(),
             "threshold": float(t), "threshold_units": units or "", "variable": variable, **attrs}
        data[name] = (("lead_time", "y", "x"), values[k], a)
        data[f"{name}_annotation"] = (("lead_time", "y", "x"), ann, annotation_attrs())
    ok = annotation_counts(np.zeros(0, np.uint8))
    return xr.Dataset(data, coords=coords), dict(zip(ok, (int(c) for c in counts)))
