"""What every check shares: the flag codes as uint8, numeric coercion and NaN handling, parameter
validation, grading an excess against suspect / fail thresholds, and the dispatch of a numpy core
over numpy / dask / xarray input (``apply``).
"""

from __future__ import annotations

import numpy as np

from qc.checks.halo import is_dask, run_core, whole_blocks
from qc.errors import QCError
from qc.flags import QCFlag

GOOD, NOT_EVALUATED, SUSPECT, FAIL, MISSING = (np.uint8(int(f)) for f in QCFlag)

#: Cells per sub-block the cores work on at a time: small enough that a handful of float32
#: intermediates stay in cache (measured on a 2-core EPYC: 2-4x faster than whole 48x1000x1000
#: blocks, whose every pass goes to main memory). Read at call time (``common.SLAB_CELLS``), so
#: tests may lower it.
SLAB_CELLS = 1 << 19


# --------------------------------------------------------------------------------------------
# values and NaN


def as_float(x) -> np.ndarray:
    """The values as a float array, without copying float input (integers cannot hold NaN)."""
    x = np.asarray(x)
    if x.dtype.kind == "f":
        return x
    if x.dtype.kind in "iu":
        return x.astype(np.float64)
    raise QCError(f"QC checks need numeric values, got an array of dtype {x.dtype}")


def cast(x: np.ndarray, v: float | None):
    """A threshold in the data's dtype (so float32 data is never promoted to float64)."""
    return None if v is None else x.dtype.type(v)


def nan_mask(x: np.ndarray, nan: np.ndarray | None | bool = None) -> np.ndarray | None:
    """Boolean NaN mask, or None when there is no NaN (lets callers take gap-free fast paths).

    ``nan`` may be passed in by a caller that already knows it (False: no NaN).
    """
    if nan is False:
        return None
    if nan is None:
        nan = np.isnan(x)
    return nan if nan.any() else None


def mark_missing(out: np.ndarray, nan: np.ndarray | None) -> np.ndarray:
    """``out`` with MISSING where ``nan`` (a mask from ``nan_mask``; None: nothing is missing)."""
    if nan is not None:
        np.copyto(out, MISSING, where=nan)
    return out


def not_evaluated(shape: tuple[int, ...], nan: np.ndarray | None) -> np.ndarray:
    """Flags for values a check cannot judge at all (a series too short): NOT_EVALUATED, MISSING at NaN."""
    return mark_missing(np.full(shape, NOT_EVALUATED, dtype=np.uint8), nan)


def outside(x: np.ndarray, low: float | None, high: float | None) -> np.ndarray:
    """Where ``x < low`` or ``x > high`` (a bound of None is no bound; NaN is never outside)."""
    below = None if low is None else x < cast(x, low)
    above = None if high is None else x > cast(x, high)
    if below is None:
        return np.zeros(x.shape, dtype=bool) if above is None else above
    if above is not None:
        below |= above
    return below


def grade(out: np.ndarray, excess: np.ndarray, suspect, fail, where: np.ndarray | None = None) -> np.ndarray:
    """Raise ``out`` to SUSPECT where ``excess > suspect`` and to FAIL where ``excess > fail`` (None:
    never FAIL), only where ``where`` (default: everywhere). A NaN excess raises nothing."""
    raised = excess > suspect
    if where is not None:
        raised &= where
    np.copyto(out, SUSPECT, where=raised)
    if fail is not None:
        raised = excess > fail
        if where is not None:
            raised &= where
        np.copyto(out, FAIL, where=raised)
    return out


# --------------------------------------------------------------------------------------------
# parameters (a bad option is an exception at once; a bad value only ever a flag)


def require_positive(name: str, v: float | None, *, allow_zero: bool = False) -> None:
    if v is None:
        raise QCError(f"{name} is required, got None")
    if not np.isfinite(v) or (v < 0 if allow_zero else v <= 0):
        want = "a finite number >= 0" if allow_zero else "a finite number > 0"
        raise QCError(f"{name} must be {want}, got {v!r}")


def require_above(name_hi: str, hi: float | None, name_lo: str, lo: float) -> None:
    if hi is not None and not hi > lo:
        raise QCError(f"{name_hi} must be greater than {name_lo} ({lo!r}), got {hi!r}")


def require_int_at_least(name: str, v: int, low: int) -> None:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low:
        raise QCError(f"{name} must be an integer >= {low}, got {v!r}")


# --------------------------------------------------------------------------------------------
# numpy / dask / xarray dispatch


def is_xr(values) -> bool:
    import xarray as xr

    return isinstance(values, xr.DataArray)


def time_first(values, time_dim: str):
    """For a DataArray: (the DataArray with time first, its original dims)."""
    if time_dim not in values.dims:
        raise QCError(f"values need a {time_dim!r} dimension for this temporal check, got dims {values.dims}")
    order = (time_dim, *[d for d in values.dims if d != time_dim])
    return values.transpose(*order), values.dims


def wrap(result, template, dims_back=None):
    """``result`` as a DataArray like ``template`` (named ``<name>_qc``), dims restored to ``dims_back``."""
    import xarray as xr

    da_ = xr.DataArray(result, dims=template.dims, coords=template.coords)
    if dims_back is not None and tuple(dims_back) != tuple(template.dims):
        da_ = da_.transpose(*dims_back)
    if template.name is not None:
        da_.name = f"{template.name}_qc"
    return da_


def apply(core, values, *, time_dim: str | None = None, halo=None, side=(), **params):
    """Dispatch a numpy core over numpy / dask / xarray input (time moved to axis 0 if needed)."""
    if is_xr(values):
        if time_dim is not None:
            v, dims_back = time_first(values, time_dim)
        else:
            v, dims_back = values, None
        res = apply(core, v.data, halo=halo, side=side, **params)
        return wrap(res, v, dims_back)
    if not is_dask(values):
        values = as_float(values)
    elif values.dtype.kind in "iu":
        values = values.astype(np.float64)
    elif values.dtype.kind != "f":
        raise QCError(f"QC checks need numeric values, got an array of dtype {values.dtype}")
    return run_core(whole_blocks(core), values, halo=halo, side=side, **params)


def by_rows(fn):
    """Run a temporal block function on slabs of rows (axis 1): the time axis stays whole."""

    def run(x, *, core=None, nan=None, **kw):
        x = as_float(x)
        if x.ndim < 2 or x.size <= SLAB_CELLS or not (nan is None or nan is False):
            return fn(x, nan=nan, **kw)
        per_row = x.size // x.shape[1]
        rows = max(1, SLAB_CELLS // per_row)
        out = np.empty(x.shape, dtype=np.uint8)
        for a in range(0, x.shape[1], rows):
            out[:, a : a + rows] = fn(x[:, a : a + rows], nan=nan, **kw)
        return out

    run.__name__ = fn.__name__.replace("_block", "_core")
    return run
