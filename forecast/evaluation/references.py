"""What verification compares against beyond the forecasts themselves: the event thresholds of a
variable and the climatology baseline fitted on training data only."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import numpy as np

from forecast.catalog import Catalog
from forecast.errors import BadInputError
from forecast.timeutil import iso, parse_time, utc

log = logging.getLogger(__name__)

#: Event thresholds (mm/h) for precipitation-like variables when the catalog names none.
PRECIPITATION_THRESHOLDS = (1.0, 10.0, 30.0, 50.0)


def is_precipitation(catalog: Catalog, variable: str) -> bool:
    """Whether ``variable`` is precipitation-like (by its standard name, long name or id)."""
    var = catalog.variables[variable]
    name = f"{var.standard_name} {var.long_name or ''} {variable}".lower()
    return any(w in name for w in ("precipitation", "rainfall", "rain_rate", "snowfall"))


def probabilistic_baselines(catalog: Catalog, variable: str) -> tuple[str, ...]:
    """The probabilistic baselines a hindcast of ``variable`` runs: all of
    `forecast.nowcast.PROBABILISTIC_BASELINES` for precipitation-like variables (STEPS and the local
    Lagrangian probability model rain rates: dB transform, wet threshold), else neighbourhood persistence."""
    from forecast.nowcast import PROBABILISTIC_BASELINES

    if is_precipitation(catalog, variable):
        return PROBABILISTIC_BASELINES
    return tuple(m for m in PROBABILISTIC_BASELINES if m == "neighbourhood_persistence")


def default_thresholds(catalog: Catalog, variable: str) -> tuple[float, ...]:
    """The catalog's verification thresholds if it names some, else (1, 10, 30, 50) for precipitation-like
    variables, the 0/10/20/30 degC marks for temperatures in K, otherwise four evenly spaced values inside
    the physical range."""
    var = catalog.variables[variable]
    named = getattr(var, "thresholds", None) or getattr(var, "verification_thresholds", None)
    if named:
        return tuple(float(t) for t in named)
    if is_precipitation(catalog, variable):
        return PRECIPITATION_THRESHOLDS
    if var.units.strip() == "K":
        return (273.15, 283.15, 293.15, 303.15)
    lo, hi = var.physical_range
    return tuple(float(lo + (hi - lo) * f) for f in (0.2, 0.4, 0.6, 0.8))


def fit_climatology(settings, catalog: Catalog, variable: str, store, snapshot: str, start: datetime,
                     training: list[str] | None, suspect: bool):
    """Climatology on usable observations strictly before ``start`` as known at ``start`` (and within the
    model's training period when known). Returns (fitted or None, provenance dict)."""
    from forecast.nowcast import Climatology
    from forecast.stores import open_observations
    from qc.flags import usable_mask

    step = timedelta(seconds=int(catalog.time.step_seconds))
    hi = start - step
    lo = None
    if training:
        t0, t1 = (parse_time(p) for p in training)
        lo, hi = t0, min(hi, t1)
    if lo is not None and lo > hi:
        return None, {"skipped": f"the model's training period {training[0]} .. {training[1]} does not lie before "
                                 f"the start {iso(start)}"}
    try:
        # without a training period: from the first slot known at the start (an explicit start would
        # otherwise reach back to the beginning of the axis)
        ds = open_observations(catalog.id, store=store, start=lo, end=hi if lo is not None else None, as_of=start,
                               snapshot=snapshot)
    except BadInputError as e:
        return None, {"skipped": str(e)}
    ds = ds.sel(time=slice(None, np.datetime64(utc(hi).replace(tzinfo=None), "ns")))
    if ds.sizes["time"] == 0:
        return None, {"skipped": f"no observations before the start {iso(start)} as known at the start"}
    mask = None
    if f"{variable}_qc" in ds:
        mask = usable_mask(ds[f"{variable}_qc"], ds[f"{variable}_qc_tests"], include_unreviewed_suspect=suspect)
    try:
        clim = Climatology().fit(ds[variable], mask=mask)
    except BadInputError as e:
        return None, {"skipped": f"no usable observation before the start {iso(start)} ({e})"}
    times = ds["time"].values
    return clim, {"fitted_on": [str(np.datetime64(times[0], "s")) + "Z", str(np.datetime64(times[-1], "s")) + "Z"],
                  "as_of": iso(start), "samples": int(getattr(clim, "train_samples_", 0)),
                  "within_training_period": bool(training)}
