"""Value-by-value checks: ``missing`` (NaN), ``physical_range`` (impossible: FAIL) and
``climatology`` (beyond the monthly record: SUSPECT)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from qc.checks.common import (
    FAIL,
    NOT_EVALUATED,
    SUSPECT,
    apply,
    as_float,
    is_xr,
    mark_missing,
    nan_mask,
    outside,
    time_first,
)
from qc.checks.halo import is_dask
from qc.errors import QCError

__all__ = ["missing", "physical_range", "climatology"]


# --------------------------------------------------------------------------------------------
# missing


def missing_core(x, *, core=None, nan=None):
    """numpy core of ``missing`` (also run by ``qc.pipeline``)."""
    x = as_float(x)
    out = np.ones(x.shape, dtype=np.uint8)
    return mark_missing(out, nan_mask(x, nan))


def missing(values):
    """Flag absent values.

    Rule: NaN -> MISSING (9), anything else GOOD (1).

    Raises:
        QCError: when the values are not numeric.
    """
    return apply(missing_core, values)


# --------------------------------------------------------------------------------------------
# physical range


def range_core(x, *, low, high, core=None, nan=None):
    """numpy core of ``physical_range`` (also run by ``qc.pipeline``)."""
    x = as_float(x)
    out = np.ones(x.shape, dtype=np.uint8)
    np.copyto(out, FAIL, where=outside(x, low, high))
    return mark_missing(out, nan_mask(x, nan))


def _check_range(low, high, what="physical_range"):
    if low is None and high is None:
        raise QCError(f"{what} needs low and/or high, got neither")
    for name, v in (("low", low), ("high", high)):
        if v is not None and not np.isfinite(v):
            raise QCError(f"{what} {name} must be a finite number, got {v!r}")
    if low is not None and high is not None and not low < high:
        raise QCError(f"{what} needs low < high, got low={low!r}, high={high!r}")


def physical_range(values, *, low: float | None = None, high: float | None = None):
    """Flag physically impossible values.

    Rule: value < low or value > high -> FAIL (4); otherwise GOOD; NaN -> MISSING. The bounds
    themselves are possible values.

    Raises:
        QCError: when neither bound is given, a bound is not finite, or low >= high.
    """
    _check_range(low, high)
    return apply(range_core, values, low=low, high=high)


# --------------------------------------------------------------------------------------------
# climatology


def _month_runs(months: np.ndarray):
    """(start, stop, month) for each run of equal months along the time axis."""
    if months.size == 0:
        return []
    cuts = np.flatnonzero(months[1:] != months[:-1]) + 1
    starts = np.concatenate([[0], cuts])
    stops = np.concatenate([cuts, [months.size]])
    return [(int(a), int(b), int(months[a])) for a, b in zip(starts, stops)]


def _bound(vec, ref, m: int, dtype) -> Any:
    """The record for month ``m``: the cell's own (gridded reference) where it has one, else the
    monthly vector's; NaN where there is none."""
    scalar = np.nan if vec is None else vec[m - 1]
    if ref is None:
        return dtype.type(scalar)
    cell = np.asarray(ref[m - 1], dtype=dtype)
    if np.isfinite(scalar):
        cell = np.where(np.isnan(cell), dtype.type(scalar), cell)
    return cell


def climatology_core(x, months, *refs, record_min, record_max, ref_kinds, core=None, nan=None):
    """numpy core of ``climatology`` (also run by ``qc.pipeline``)."""
    x = as_float(x)
    months = np.asarray(months).reshape(-1)
    refs = dict(zip(ref_kinds, refs))
    out = np.ones(x.shape, dtype=np.uint8)
    for a, b, m in _month_runs(months):
        lo = _bound(record_min, refs.get("min"), m, x.dtype)
        hi = _bound(record_max, refs.get("max"), m, x.dtype)
        xs, o = x[a:b], out[a:b]
        np.copyto(o, SUSPECT, where=xs < lo)  # NaN bound -> False
        np.copyto(o, SUSPECT, where=xs > hi)
        unjudged = np.isnan(lo) & np.isnan(hi)
        if np.any(unjudged):
            np.copyto(o, NOT_EVALUATED, where=unjudged)
    return mark_missing(out, nan_mask(x, nan))


def _records(name: str, vec) -> np.ndarray | None:
    if vec is None:
        return None
    arr = np.asarray(vec, dtype=np.float64).reshape(-1)
    if arr.size != 12:
        raise QCError(f"{name} needs 12 monthly values (January first), got {arr.size}")
    return arr


def _months_for(values, months, time_dim):
    if months is None:
        if is_xr(values) and time_dim in values.coords and np.issubdtype(values[time_dim].dtype, np.datetime64):
            return values[time_dim].dt.month.values
        raise QCError(
            "climatology needs `months` (the calendar month 1..12 of each time slot), got None "
            "(it can only be derived from a DataArray with a datetime time coordinate)"
        )
    m = np.asarray(months)
    if m.ndim != 1 or not np.issubdtype(m.dtype, np.integer):
        raise QCError(f"months must be a 1-D integer array (one month 1..12 per time slot), got {m.dtype} {m.shape}")
    if m.size and (m.min() < 1 or m.max() > 12):
        raise QCError(f"months must lie in 1..12, got values from {m.min()} to {m.max()}")
    return m


def climatology(
    values,
    *,
    months=None,
    record_min=None,
    record_max=None,
    reference=None,
    time_dim: str = "time",
):
    """Flag values beyond the climatological record: possible, but never seen, so SUSPECT.

    Rule: value < record_min[month] or value > record_max[month] -> SUSPECT (3); otherwise GOOD.
    ``months`` gives the calendar month (1..12) of each slot along the time axis (derived from
    the time coordinate when ``values`` is a DataArray and ``months`` is None). With a gridded
    ``reference`` (a mapping / xarray Dataset with ``"min"`` and/or ``"max"``, each shaped
    ``(12, *values.shape[1:])``, January first), each cell is judged against its own record and
    the monthly vectors only where the cell's reference is NaN. A month without any record
    (NaN in the vectors and the reference) is NOT_EVALUATED. NaN values -> MISSING.

    Raises:
        QCError: when no record is given at all, a vector does not hold 12 values, months are
            outside 1..12 or do not match the time axis, or the reference has the wrong shape.
    """
    rmin = _records("record_min", record_min)
    rmax = _records("record_max", record_max)
    refs, kinds = [], []
    if reference is not None:
        if not isinstance(reference, Mapping) and not hasattr(reference, "data_vars"):
            raise QCError(
                f"reference must be a mapping / Dataset with 'min' and/or 'max', got {type(reference).__name__}"
            )
        for side in ("min", "max"):
            if side in reference:
                r = reference[side]
                r = r.data if is_xr(r) else r
                if not is_dask(r):
                    r = np.asarray(r)
                refs.append(r)
                kinds.append(side)
        if not kinds:
            raise QCError(f"reference needs a 'min' and/or 'max' entry, got keys {list(reference)}")
    if rmin is None and rmax is None and not kinds:
        raise QCError("climatology needs record_min, record_max or a reference, got none of them")
    m = _months_for(values, months, time_dim)
    shape = values.shape if not is_xr(values) else time_first(values, time_dim)[0].shape
    if m.size != shape[0]:
        raise QCError(f"months has {m.size} entries but the time axis has {shape[0]} slots")
    for r, side in zip(refs, kinds):
        if tuple(r.shape) != (12, *shape[1:]):
            raise QCError(f"reference {side!r} must have shape {(12, *shape[1:])}, got {tuple(r.shape)}")
    side_inputs = [(m, "time")] + [(r, "month_spatial") for r in refs]
    return apply(
        climatology_core,
        values,
        time_dim=time_dim,
        side=side_inputs,
        record_min=rmin,
        record_max=rmax,
        ref_kinds=tuple(kinds),
    )
