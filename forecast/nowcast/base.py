"""What every nowcasting method shares: the `Nowcaster` protocol, argument checks, input preparation
(QC mask applied to a private float64 copy) and the output DataArray (lead_time, y, x) with its
coordinates and attrs, including the persistence fallback every method may take."""

from __future__ import annotations

import datetime as _dt
import logging
from typing import Any, Protocol, runtime_checkable

import numpy as np
import xarray as xr

from forecast.errors import BadInputError, ForecastError

logger = logging.getLogger(__name__)

#: Rain rate (mm h-1) below which a cell counts as dry: the usual radar detection limit, and the
#: threshold of the dB transform used for motion estimation and S-PROG.
WET_THRESHOLD = 0.1
#: dB value given to dry cells (pysteps' examples use threshold - 5 dB, i.e. -15 dB for 0.1 mm h-1).
DB_ZEROVALUE = -15.0


class NotFittedError(ForecastError, RuntimeError):
    """A method that learns from training data was asked to predict before `fit`."""


@runtime_checkable
class Nowcaster(Protocol):
    """What every baseline (and later the learned model) offers.

    ``inputs`` are the k most recent slots up to and including the init time, dims (time, y, x), NaN
    where missing; cells where ``mask`` is False (unusable by QC) are treated as missing. The result
    has dims (lead_time, y, x), lead_time = step, 2 step, ..., n_leads step (timedelta64), float32, with
    coordinates ``valid_time`` (along lead_time) and ``init_time`` (scalar), attrs ``method`` and, when
    the method could not run as designed, ``fallback`` (the reason) and ``fallback_method``.
    Inputs are never modified. Bad observations never raise; bad arguments raise `BadInputError`
    (a ValueError) naming the argument.
    """

    name: str

    def fit(self, obs: xr.DataArray) -> Nowcaster: ...

    def predict(self, inputs: xr.DataArray, *, n_leads: int, step: np.timedelta64,
                mask: xr.DataArray | None = None) -> xr.DataArray: ...


@runtime_checkable
class ProbabilisticNowcaster(Nowcaster, Protocol):
    """A nowcaster that also forecasts the probability of exceeding thresholds.

    ``predict_probabilities`` takes the same inputs as ``predict`` plus the thresholds (in the variable's
    units, increasing; the catalog's ``thresholds``) and returns dims (threshold, lead_time, y, x), float32
    in [0, 1], with a ``threshold`` coordinate (attrs ``units`` of the variable) and the coordinates and
    attrs of ``predict``'s output (see `probability_output`). Where the method cannot run as designed it
    falls back and says so in ``fallback``, as ``predict`` does.
    A class whose instances may or may not forecast probabilities (the learned model: only checkpoints with the
    probabilistic head do) says so in a ``probabilistic: bool`` attribute; check
    ``getattr(x, "probabilistic", hasattr(x, "predict_probabilities"))`` rather than ``isinstance`` alone.
    """

    def predict_probabilities(self, inputs: xr.DataArray, *, n_leads: int, step: np.timedelta64,
                              thresholds: Any, mask: xr.DataArray | None = None) -> xr.DataArray: ...


def check_thresholds(thresholds: Any) -> np.ndarray:
    """``thresholds`` as a strictly increasing float64 array, or a BadInputError naming what is wrong."""
    try:
        t = np.asarray(thresholds, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise BadInputError(f"thresholds must be a sequence of numbers, got {thresholds!r}") from None
    if t.size == 0 or not np.all(np.isfinite(t)) or np.any(np.diff(t) <= 0):
        raise BadInputError(f"thresholds must be finite and strictly increasing, got {t.tolist()}")
    return t


def unit_interval(probabilities: Any) -> np.ndarray:
    """``probabilities`` as float32 in [0, 1] (NaN kept): the array itself when it already is, a clipped copy
    only when a value lies outside (the caller's array is never changed; at 1000 x 1000 it is 480 MB)."""
    p = np.asarray(probabilities, dtype=np.float32)
    with np.errstate(invalid="ignore"):
        if p.size and (np.nanmin(p, initial=0.0) < 0.0 or np.nanmax(p, initial=1.0) > 1.0):
            p = np.clip(p, 0.0, 1.0)
    return p


def probability_output(deterministic: xr.DataArray, probabilities: np.ndarray, thresholds: np.ndarray,
                       attrs: dict[str, Any] | None = None) -> xr.DataArray:
    """Exceedance probabilities (threshold, lead_time, y, x) beside a method's deterministic ``output``:
    same coordinates and attrs (``units`` becomes "1"), plus the ``threshold`` coordinate."""
    thr_attrs = {"long_name": "exceedance threshold"}
    if "units" in deterministic.attrs:
        thr_attrs["units"] = deterministic.attrs["units"]
    out_attrs = {k: v for k, v in deterministic.attrs.items() if k not in ("units", "standard_name", "long_name")}
    out_attrs["units"] = "1"
    out_attrs["long_name"] = "probability of exceeding the threshold"
    if attrs:
        out_attrs.update(attrs)
    return xr.DataArray(unit_interval(probabilities), dims=("threshold", "lead_time", "y", "x"),
                        coords={**{k: c for k, c in deterministic.coords.items()},
                                "threshold": ("threshold", thresholds, thr_attrs)},
                        name=deterministic.name, attrs=out_attrs)


# --------------------------------------------------------------------------------------------------
# argument checks and the shared input / output handling


def check_n_leads(n_leads: Any) -> int:
    if isinstance(n_leads, bool) or not isinstance(n_leads, (int, np.integer)):
        raise BadInputError(f"n_leads must be a positive integer, got {n_leads!r}")
    if n_leads <= 0:
        raise BadInputError(f"n_leads must be a positive integer, got {n_leads}")
    return int(n_leads)


def check_step(step: Any) -> np.timedelta64:
    if isinstance(step, _dt.timedelta):  # also pandas.Timedelta
        step = np.timedelta64(int(round(step.total_seconds() * 1e9)), "ns")
    if not isinstance(step, np.timedelta64) or np.datetime_data(step.dtype)[0] == "generic":
        raise BadInputError(f"step must be a np.timedelta64 with a unit (e.g. np.timedelta64(5, 'm')), got {step!r}")
    step = step.astype("timedelta64[ns]")
    if step <= np.timedelta64(0, "ns"):
        raise BadInputError(f"step must be positive, got {step}")
    return step


class Prepared:
    """The inputs as a float64 copy with unusable cells set to NaN, plus what the output needs."""

    def __init__(self, inputs: xr.DataArray, values: np.ndarray, times: np.ndarray):
        self.inputs = inputs
        self.values = values  # (time, y, x), our own copy
        self.times = times  # datetime64[ns]

    @property
    def init_time(self) -> np.datetime64:
        return self.times[-1]

    def spacing(self, last: int) -> np.timedelta64:
        """The regular spacing of the last ``last`` slots (they feed a motion or AR model)."""
        t = self.times[-last:]
        d = np.diff(t)
        if len(d) == 0:
            raise BadInputError("inputs need at least 2 time slots to define a time spacing")
        if np.any(d != d[0]) or d[0] <= np.timedelta64(0, "ns"):
            raise BadInputError(
                f"the last {last} time slots of inputs must be evenly spaced (got {', '.join(str(x) for x in t)}); "
                "pass consecutive slots, with NaN for missing ones, instead of dropping them")
        return d[0]


def validated(inputs: Any, *, min_slots: int, method: str, what: str = "inputs") -> tuple[xr.DataArray, np.ndarray]:
    """``inputs`` as (time, y, x) and its times, or a BadInputError naming ``what`` is wrong."""
    if not isinstance(inputs, xr.DataArray):
        raise BadInputError(f"{what} must be an xarray.DataArray with dims (time, y, x), got {type(inputs).__name__}")
    if set(inputs.dims) != {"time", "y", "x"}:
        raise BadInputError(f"{what} must have dims (time, y, x), got {inputs.dims}")
    inputs = inputs.transpose("time", "y", "x")
    if inputs.sizes["time"] < min_slots:
        raise BadInputError(
            f"{what} has {inputs.sizes['time']} time slot(s); {method} needs at least {min_slots} "
            f"(the most recent slots up to the init time)")
    if "time" not in inputs.coords or not np.issubdtype(inputs["time"].dtype, np.datetime64):
        raise BadInputError(f"{what} needs a datetime64 'time' coordinate")
    times = inputs["time"].values.astype("datetime64[ns]")
    if np.any(np.isnat(times)) or np.any(np.diff(times) <= np.timedelta64(0, "ns")):
        raise BadInputError(f"the 'time' coordinate of {what} must be strictly increasing and free of NaT")
    return inputs, times


def load_values(inputs: xr.DataArray, mask_values: np.ndarray | None) -> np.ndarray:
    """A float64 copy of ``inputs`` with non-finite and masked-out cells set to NaN."""
    # np.array copies, so nothing below can write into the caller's (possibly shared) buffer
    values = np.array(inputs.values, dtype=np.float64)
    values[~np.isfinite(values)] = np.nan
    if mask_values is not None:
        values[~mask_values] = np.nan
    return values


def prepare(inputs: Any, mask: Any, *, min_slots: int, method: str) -> Prepared:
    inputs, times = validated(inputs, min_slots=min_slots, method=method)
    values = load_values(inputs, None if mask is None else mask_values(check_mask(mask, inputs), inputs))
    return Prepared(inputs, values, times)


def check_mask(mask: Any, inputs: xr.DataArray, what: str = "inputs") -> xr.DataArray:
    """``mask`` checked against ``inputs`` (dims, sizes, coordinates, dtype), without computing it."""
    if not isinstance(mask, xr.DataArray):
        raise BadInputError(f"mask must be an xarray.DataArray of booleans or None, got {type(mask).__name__}")
    extra = set(mask.dims) - set(inputs.dims)
    if extra:
        raise BadInputError(f"mask has dims {mask.dims}; they must be among the dims of {what} {inputs.dims}")
    for d in mask.dims:
        if mask.sizes[d] != inputs.sizes[d]:
            raise BadInputError(f"mask has {mask.sizes[d]} entries along {d!r}, {what} has {inputs.sizes[d]}")
    if mask.dtype != bool:
        raise BadInputError(f"mask must hold booleans (True = usable), got dtype {mask.dtype}")
    try:
        xr.align(inputs, mask, join="exact", copy=False)
    except ValueError as e:
        raise BadInputError(f"mask's coordinates differ from those of {what}: {e}") from None
    return mask


def mask_values(mask: xr.DataArray, inputs: xr.DataArray) -> np.ndarray:
    return np.asarray(mask.broadcast_like(inputs).transpose(*inputs.dims).values)


def gap_filled(values: np.ndarray) -> np.ndarray:
    """The last slot, with missing cells taken from the most recent earlier slot that has them."""
    out = values[-1].copy()
    for k in range(values.shape[0] - 2, -1, -1):
        hole = np.isnan(out)
        if not hole.any():
            break
        out[hole] = values[k][hole]
    return out


def output(prep: Prepared, fields: np.ndarray, *, step: np.timedelta64, method: str,
            attrs: dict[str, Any] | None = None, fallback: str | None = None) -> xr.DataArray:
    n_leads = fields.shape[0]
    lead = (np.arange(1, n_leads + 1) * step).astype("timedelta64[ns]")
    src = prep.inputs
    coords: dict[str, Any] = {
        "lead_time": ("lead_time", lead, {"standard_name": "forecast_period", "long_name": "lead time"}),
        "valid_time": ("lead_time", prep.init_time + lead, {"standard_name": "time", "long_name": "valid time"}),
        "init_time": ((), prep.init_time, {"standard_name": "forecast_reference_time",
                                           "long_name": "initialisation time (last input slot)"}),
    }
    for name, c in src.coords.items():
        if name not in coords and name != "time" and "time" not in c.dims:
            coords[name] = c.variable.copy(deep=False)
    out_attrs = {k: v for k, v in src.attrs.items() if k in ("units", "standard_name", "long_name")}
    last = prep.values[-1]
    out_attrs["method"] = method
    out_attrs["input_slots"] = int(prep.values.shape[0])
    out_attrs["input_coverage"] = float(np.isfinite(last).mean()) if last.size else 0.0
    if attrs:
        out_attrs.update(attrs)
    if fallback is not None:
        out_attrs["fallback"] = fallback
        out_attrs["fallback_method"] = "persistence"
    return xr.DataArray(fields.astype(np.float32, copy=False), dims=("lead_time", "y", "x"), coords=coords,
                        name=src.name, attrs=out_attrs)


def persistence_fields(prep: Prepared, n_leads: int) -> np.ndarray:
    field = gap_filled(prep.values)
    return np.broadcast_to(field, (n_leads, *field.shape)).copy()


def fallback(prep: Prepared, *, n_leads: int, step: np.timedelta64, method: str, reason: str,
              attrs: dict[str, Any] | None = None) -> xr.DataArray:
    logger.info("%s fell back to persistence at %s: %s", method, prep.init_time, reason)
    return output(prep, persistence_fields(prep, n_leads), step=step, method=method, attrs=attrs,
                   fallback=f"persistence: {reason}")
