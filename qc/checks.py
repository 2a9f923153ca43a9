"""The QC checks: pure functions from values to uint8 QARTOD flags shaped like the values.

A check never changes or drops a value; it only says what it thinks of it. Each check accepts a
numpy array, a dask array (the result stays lazy; neighbourhood checks overlap blocks by exactly
the neighbours they look at, so chunked and whole-array results are identical) or an xarray
DataArray (numpy- or dask-backed; the result is a DataArray with the same dims and coords).

Conventions shared by every check:

- data positional, options keyword-only; a bad option raises ``QCError`` at once, a bad value is
  only ever a flag;
- a NaN value is flagged MISSING (9) by every check (except ``cross_variable``, see there);
- a value a check cannot judge (no neighbours, no record for that month) is NOT_EVALUATED (2);
- temporal checks work along the ``time`` dimension (axis 0 of plain arrays; for DataArrays the
  dimension named ``time_dim``), spatial checks over the last two dimensions;
- thresholds are compared with strict ``>`` (as ioos_qc does), and arithmetic runs in the data's
  own float dtype (float32 stays float32).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from qc._lazy import is_dask, run_core, whole_blocks
from qc.errors import QCError
from qc.flags import QCFlag

__all__ = [
    "missing",
    "physical_range",
    "climatology",
    "spike",
    "rate_of_change",
    "flat_line",
    "spatial",
    "cross_variable",
    "MAD_TO_SIGMA",
]

#: MAD of a normal distribution times this is its standard deviation.
MAD_TO_SIGMA = 1.4826

_GOOD, _NOTEVAL, _SUSPECT, _FAIL, _MISSING = (np.uint8(int(f)) for f in QCFlag)


# --------------------------------------------------------------------------------------------
# helpers


def _float(x) -> np.ndarray:
    """The values as a float array, without copying float input (integers cannot hold NaN)."""
    x = np.asarray(x)
    if x.dtype.kind == "f":
        return x
    if x.dtype.kind in "iu":
        return x.astype(np.float64)
    raise QCError(f"QC checks need numeric values, got an array of dtype {x.dtype}")


def _nan_mask(x: np.ndarray, nan: np.ndarray | None | bool = None) -> np.ndarray | None:
    """Boolean NaN mask, or None when there is no NaN (lets callers take gap-free fast paths).

    ``nan`` may be passed in by a caller that already knows it (False: no NaN).
    """
    if nan is False:
        return None
    if nan is None:
        nan = np.isnan(x)
    return nan if nan.any() else None


def _mark_missing(out: np.ndarray, nan: np.ndarray | None) -> np.ndarray:
    if nan is not None:
        np.copyto(out, _MISSING, where=nan)
    return out


def _positive(name: str, v: float | None, *, allow_zero: bool = False) -> None:
    if v is None:
        raise QCError(f"{name} is required, got None")
    if not np.isfinite(v) or (v < 0 if allow_zero else v <= 0):
        want = "a finite number >= 0" if allow_zero else "a finite number > 0"
        raise QCError(f"{name} must be {want}, got {v!r}")


def _above(name_hi: str, hi: float | None, name_lo: str, lo: float) -> None:
    if hi is not None and not hi > lo:
        raise QCError(f"{name_hi} must be greater than {name_lo} ({lo!r}), got {hi!r}")


def _int_at_least(name: str, v: int, low: int) -> None:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low:
        raise QCError(f"{name} must be an integer >= {low}, got {v!r}")


def _time_first(values, time_dim: str):
    """For a DataArray: (the DataArray with time first, its original dims)."""
    if time_dim not in values.dims:
        raise QCError(f"values need a {time_dim!r} dimension for this temporal check, got dims {values.dims}")
    order = (time_dim, *[d for d in values.dims if d != time_dim])
    return values.transpose(*order), values.dims


def _wrap(result, template, dims_back=None):
    import xarray as xr

    da_ = xr.DataArray(result, dims=template.dims, coords=template.coords)
    if dims_back is not None and tuple(dims_back) != tuple(template.dims):
        da_ = da_.transpose(*dims_back)
    if template.name is not None:
        da_.name = f"{template.name}_qc"
    return da_


def _is_xr(values) -> bool:
    import xarray as xr

    return isinstance(values, xr.DataArray)


def _apply(core, values, *, time_dim: str | None = None, halo=None, side=(), **params):
    """Dispatch a numpy core over numpy / dask / xarray input (time moved to axis 0 if needed)."""
    if _is_xr(values):
        if time_dim is not None:
            v, dims_back = _time_first(values, time_dim)
        else:
            v, dims_back = values, None
        res = _apply(core, v.data, halo=halo, side=side, **params)
        return _wrap(res, v, dims_back)
    if not is_dask(values):
        values = _float(values)
    elif values.dtype.kind in "iu":
        values = values.astype(np.float64)
    elif values.dtype.kind != "f":
        raise QCError(f"QC checks need numeric values, got an array of dtype {values.dtype}")
    return run_core(whole_blocks(core), values, halo=halo, side=side, **params)


def _cast(x: np.ndarray, v: float | None):
    """A threshold in the data's dtype (so float32 data is never promoted to float64)."""
    return None if v is None else x.dtype.type(v)


#: Cells per sub-block the cores work on at a time: small enough that a handful of float32
#: intermediates stay in cache (measured on a 2-core EPYC: 2-4x faster than whole 48x1000x1000
#: blocks, whose every pass goes to main memory).
SLAB_CELLS = 1 << 19


def _by_rows(fn):
    """Run a temporal block function on slabs of rows (axis 1): the time axis stays whole."""

    def run(x, *, core=None, nan=None, **kw):
        x = _float(x)
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


def _spatial_core(x, *, core=None, nan=None, **kw):
    """``_spatial_block`` over groups of whole fields, or over slabs of rows (with the rows of
    halo they need) when a field is large; only the core's own leading (time) slots are judged:
    a temporal halo is of no use here."""
    x = _float(x)
    if core is not None and x.ndim > 2 and any(c != slice(None) for c in core[:-2]):
        x = x[tuple(core[:-2])]
    ny, nx = x.shape[-2:]
    cy, cx = (slice(None), slice(None)) if core is None else tuple(core[-2:])
    if x.ndim < 2 or x.size <= SLAB_CELLS or not (nan is None or nan is False):
        return _spatial_block(x, core=(slice(None),) * (x.ndim - 2) + (cy, cx), nan=nan, **kw)
    lead = x.shape[:-2]
    fields = x.reshape((-1, ny, nx))
    y0, y1, _ = cy.indices(ny)
    x0, x1, _ = cx.indices(nx)
    out = np.empty((fields.shape[0], y1 - y0, x1 - x0), dtype=np.uint8)
    if ny * nx <= SLAB_CELLS:  # several whole fields at a time
        per = max(1, SLAB_CELLS // (ny * nx))
        for a in range(0, fields.shape[0], per):
            out[a : a + per] = _spatial_block(fields[a : a + per], core=(slice(None), cy, cx), nan=nan, **kw)
    else:  # slabs of rows within each field
        r = kw["window"] // 2
        rows = max(1, SLAB_CELLS // nx)
        for f in range(fields.shape[0]):
            for a in range(y0, y1, rows):
                b = min(a + rows, y1)
                s0, s1 = max(a - r, 0), min(b + r, ny)
                out[f, a - y0 : b - y0] = _spatial_block(
                    fields[f : f + 1, s0:s1], core=(slice(None), slice(a - s0, b - s0), cx), nan=nan, **kw
                )[0]
    return out.reshape(lead + out.shape[-2:])


# --------------------------------------------------------------------------------------------
# missing, physical range, climatology (value by value)


def _missing_core(x, *, core=None, nan=None):
    x = _float(x)
    out = np.ones(x.shape, dtype=np.uint8)
    return _mark_missing(out, _nan_mask(x, nan))


def missing(values):
    """Flag absent values.

    Rule: NaN -> MISSING (9), anything else GOOD (1).

    Raises:
        QCError: when the values are not numeric.
    """
    return _apply(_missing_core, values)


def _range_core(x, *, low, high, core=None, nan=None):
    x = _float(x)
    out = np.ones(x.shape, dtype=np.uint8)
    if low is not None:
        np.copyto(out, _FAIL, where=x < _cast(x, low))
    if high is not None:
        np.copyto(out, _FAIL, where=x > _cast(x, high))
    return _mark_missing(out, _nan_mask(x, nan))


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
    return _apply(_range_core, values, low=low, high=high)


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


def _clim_core(x, months, *refs, record_min, record_max, ref_kinds, core=None, nan=None):
    x = _float(x)
    months = np.asarray(months).reshape(-1)
    refs = dict(zip(ref_kinds, refs))
    out = np.ones(x.shape, dtype=np.uint8)
    for a, b, m in _month_runs(months):
        lo = _bound(record_min, refs.get("min"), m, x.dtype)
        hi = _bound(record_max, refs.get("max"), m, x.dtype)
        xs, o = x[a:b], out[a:b]
        np.copyto(o, _SUSPECT, where=xs < lo)  # NaN bound -> False
        np.copyto(o, _SUSPECT, where=xs > hi)
        unjudged = np.isnan(lo) & np.isnan(hi)
        if np.any(unjudged):
            np.copyto(o, _NOTEVAL, where=unjudged)
    return _mark_missing(out, _nan_mask(x, nan))


def _records(name: str, vec) -> np.ndarray | None:
    if vec is None:
        return None
    arr = np.asarray(vec, dtype=np.float64).reshape(-1)
    if arr.size != 12:
        raise QCError(f"{name} needs 12 monthly values (January first), got {arr.size}")
    return arr


def _months_for(values, months, time_dim):
    if months is None:
        if _is_xr(values) and time_dim in values.coords and np.issubdtype(values[time_dim].dtype, np.datetime64):
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
                r = r.data if _is_xr(r) else r
                if not is_dask(r):
                    r = np.asarray(r)
                refs.append(r)
                kinds.append(side)
        if not kinds:
            raise QCError(f"reference needs a 'min' and/or 'max' entry, got keys {list(reference)}")
    if rmin is None and rmax is None and not kinds:
        raise QCError("climatology needs record_min, record_max or a reference, got none of them")
    m = _months_for(values, months, time_dim)
    shape = values.shape if not _is_xr(values) else _time_first(values, time_dim)[0].shape
    if m.size != shape[0]:
        raise QCError(f"months has {m.size} entries but the time axis has {shape[0]} slots")
    for r, side in zip(refs, kinds):
        if tuple(r.shape) != (12, *shape[1:]):
            raise QCError(f"reference {side!r} must have shape {(12, *shape[1:])}, got {tuple(r.shape)}")
    side_inputs = [(m, "time")] + [(r, "month_spatial") for r in refs]
    return _apply(
        _clim_core,
        values,
        time_dim=time_dim,
        side=side_inputs,
        record_min=rmin,
        record_max=rmax,
        ref_kinds=tuple(kinds),
    )


# --------------------------------------------------------------------------------------------
# temporal checks (axis 0 is time)


def _neighbour(x: np.ndarray, reach: int, direction: int) -> tuple[np.ndarray, np.ndarray]:
    """Nearest valid value before (direction -1) or after (+1) each slot, at most ``reach`` slots
    away, and its distance in slots (0 and NaN where there is none)."""
    v = np.full_like(x, np.nan)
    k_arr = np.zeros(x.shape, dtype=np.int8)
    t = x.shape[0]
    for k in range(1, min(reach, t - 1) + 1):
        if direction < 0:
            dst, src, kd = v[k:], x[:-k], k_arr[k:]
        else:
            dst, src, kd = v[:-k], x[k:], k_arr[:-k]
        take = ~np.isnan(src)
        if k > 1:
            take &= np.isnan(dst)
        np.copyto(dst, src, where=take)
        np.copyto(kd, np.int8(k), where=take)
    return v, k_arr


def _both_sides(dp: np.ndarray, dn: np.ndarray) -> np.ndarray:
    """How far a value stands out from both neighbours on the same side: min(dp, dn) when both
    are positive, min(-dp, -dn) when both are negative, <= 0 otherwise (NaN if either is NaN).
    Consumes (overwrites) its arguments."""
    up = np.minimum(dp, dn)
    np.maximum(dp, dn, out=dn)
    np.negative(dn, out=dn)
    np.maximum(up, dn, out=up)
    return up


def _spike_block(x, *, suspect, fail, max_gap, core=None, nan=None):
    x = _float(x)
    t = x.shape[0]
    s, f = _cast(x, suspect), _cast(x, fail)
    out = np.ones(x.shape, dtype=np.uint8)
    nan = _nan_mask(x, nan)
    if t < 3:
        out[...] = _NOTEVAL
        return _mark_missing(out, nan)
    if nan is None:
        # gap-free: neighbours are the adjacent slots; the first and last slot have only one
        c = x[1:-1]
        e = _both_sides(c - x[:-2], c - x[2:])
        o = out[1:-1]
        np.copyto(o, _SUSPECT, where=e > s)
        if f is not None:
            np.copyto(o, _FAIL, where=e > f)
        out[0] = _NOTEVAL
        out[-1] = _NOTEVAL
        return out
    reach = max_gap + 1
    p, _ = _neighbour(x, reach, -1)
    n, _ = _neighbour(x, reach, +1)
    e = _both_sides(x - p, x - n)
    np.copyto(out, _SUSPECT, where=e > s)
    if f is not None:
        np.copyto(out, _FAIL, where=e > f)
    np.copyto(out, _NOTEVAL, where=np.isnan(p) | np.isnan(n))
    return _mark_missing(out, nan)


_spike_core = _by_rows(_spike_block)


def spike(values, *, suspect: float, fail: float | None = None, max_gap: int = 1, time_dim: str = "time"):
    """Flag a single value that stands out from both its temporal neighbours.

    Rule: with p and n the nearest valid values before and after (each at most ``max_gap``
    missing slots away), the value's excursion is ``e = min(|x-p|, |x-n|)`` when x lies above
    both or below both, else 0. ``e > suspect`` -> SUSPECT, ``e > fail`` -> FAIL. Because the
    value must differ from *both* neighbours, the good neighbours of a spike are never flagged
    (each of them agrees with its other neighbour), and a step change (x agrees with one side)
    is not a spike. This equals ioos_qc's ``spike_test(method="differential")`` on gap-free data.

    Gaps: NaN slots are skipped when looking for neighbours, up to ``max_gap`` consecutive ones;
    a value without a valid neighbour on either side within reach (and the first and last slot)
    is NOT_EVALUATED. NaN values -> MISSING.

    Raises:
        QCError: when suspect <= 0, fail <= suspect, or max_gap is not an integer >= 0.
    """
    _positive("suspect", suspect)
    _above("fail", fail, "suspect", suspect)
    _int_at_least("max_gap", max_gap, 0)
    r = max_gap + 1
    return _apply(_spike_core, values, time_dim=time_dim, halo={0: (r, r)}, suspect=suspect, fail=fail, max_gap=max_gap)


def _roc_block(x, *, suspect_per_step, fail_per_step, max_gap, core=None, nan=None):
    x = _float(x)
    t = x.shape[0]
    s, f = _cast(x, suspect_per_step), _cast(x, fail_per_step)
    out = np.ones(x.shape, dtype=np.uint8)
    nan = _nan_mask(x, nan)
    if t < 2:
        out[...] = _NOTEVAL
        return _mark_missing(out, nan)
    if nan is None:
        rate = np.abs(x[1:] - x[:-1])  # rate[i-1]: step into slot i
        jump = rate > s
        if t >= 3:
            # slot i returns from a one-slot excursion at i-1: i-1 jumped and x[i] is back
            # within the allowed rate of x[i-2]
            back = np.abs(x[2:] - x[:-2]) <= 2 * s
            np.logical_and(back, jump[:-1], out=back)
            np.logical_not(back, out=back)
            jump[1:] &= back
        o = out[1:]
        np.copyto(o, _SUSPECT, where=jump)
        if f is not None:
            big = rate > f
            if t >= 3:
                big[1:] &= back
            np.copyto(o, _FAIL, where=big)
        out[0] = _NOTEVAL
        return out
    reach = max_gap + 1
    p, k = _neighbour(x, reach, -1)
    has = k > 0
    rate = np.abs(x - p)
    if reach > 1:
        np.divide(rate, k, out=rate, where=has)
    jump = rate > s
    # the previous valid value j = i - k: its own previous value, distance and jump
    pj = np.full_like(x, np.nan)
    kj = np.zeros(x.shape, dtype=np.int8)
    jj = np.zeros(x.shape, dtype=bool)
    for step in range(1, min(reach, t - 1) + 1):
        sel = k[step:] == step
        np.copyto(pj[step:], p[:-step], where=sel)
        np.copyto(kj[step:], k[:-step], where=sel)
        np.copyto(jj[step:], jump[:-step], where=sel)
    span = (k + kj).astype(x.dtype)
    back = np.abs(x - pj) <= s * span  # NaN (no such value) -> False
    exempt = jj & back
    np.copyto(out, _SUSPECT, where=jump & ~exempt)
    if f is not None:
        np.copyto(out, _FAIL, where=(rate > f) & ~exempt)
    np.copyto(out, _NOTEVAL, where=~has)
    return _mark_missing(out, nan)


_roc_core = _by_rows(_roc_block)


def rate_of_change(
    values,
    *,
    suspect_per_step: float,
    fail_per_step: float | None = None,
    max_gap: int = 1,
    time_dim: str = "time",
):
    """Flag the value that jumps: a change from the previous valid value faster than allowed.

    Rule: with p the nearest valid previous value, k slots back (k <= max_gap + 1), the rate is
    ``|x - p| / k`` per step; rate > suspect_per_step -> SUSPECT, > fail_per_step -> FAIL. Only
    the jumping value is flagged when the series comes back: a value is exempt when its previous
    value p itself jumped (rate > suspect_per_step) and x lies within the allowed rate of the value
    before p (``|x - p'| <= suspect_per_step * (k + k')``), i.e. x is the return from a one-slot
    excursion (ioos_qc's ``rate_of_change_test`` flags that return as well). A genuine step change
    whose new level stays is flagged once, at its first value (SUSPECT: for a person to confirm);
    the values after it are GOOD. A two-slot excursion is flagged at both ends.

    Gaps: NaN slots are skipped when looking for the previous value, up to ``max_gap``
    consecutive ones (the rate divides by the actual distance); without a valid previous value
    within reach (and at the first slot) -> NOT_EVALUATED. NaN values -> MISSING.

    Raises:
        QCError: when suspect_per_step <= 0, fail_per_step <= suspect_per_step or max_gap < 0.
    """
    _positive("suspect_per_step", suspect_per_step)
    _above("fail_per_step", fail_per_step, "suspect_per_step", suspect_per_step)
    _int_at_least("max_gap", max_gap, 0)
    r = 2 * (max_gap + 1)
    return _apply(
        _roc_core,
        values,
        time_dim=time_dim,
        halo={0: (r, 0)},
        suspect_per_step=suspect_per_step,
        fail_per_step=fail_per_step,
        max_gap=max_gap,
    )


def _rolling(x: np.ndarray, windows: list[int], op) -> dict[int, np.ndarray]:
    """``op`` (np.minimum / np.maximum) over each window of ``w`` consecutive slots along axis 0,
    by doubling (log2(w) passes, no sort). Result for ``w`` has ``T - w + 1`` rows; row ``i``
    covers slots ``i .. i + w - 1``. NaN propagates, so any window holding a NaN gives NaN."""
    res = {}
    a, m = x, 1
    t = x.shape[0]
    for w in sorted(windows):
        p = 1 << (w.bit_length() - 1)
        while m < p:
            a = op(a[:-m], a[m:])
            m *= 2
        n = t - w + 1
        res[w] = a[:n] if w == p else op(a[:n], a[w - p : w - p + n])
    return res


#: Above this share of candidate windows, flat_line verifies ranges by doubling over the whole
#: block instead of gathering each candidate's window.
_FLAT_GATHER_MAX = 0.02


def _flat_block(x, *, tolerance, suspect_count, fail_count, ignore_below, core=None, nan=None):
    x = _float(x)
    t = x.shape[0]
    out = np.ones(x.shape, dtype=np.uint8)
    tol = _cast(x, tolerance)
    levels = [(suspect_count, _SUSPECT)] + ([(fail_count, _FAIL)] if fail_count is not None else [])
    levels = [(n, code) for n, code in levels if n + 1 <= t]
    if levels:
        # Every step inside a flat window is within tolerance (range <= tol implies it), so runs
        # of small steps, found with cheap boolean doubling, are the only candidates; for
        # tolerance 0 they are exact, otherwise each candidate window's range is checked.
        step_ok = np.abs(x[1:] - x[:-1]) <= tol  # NaN -> False: a gap breaks the run
        runs = _rolling(step_ok, [n for n, _ in levels], np.logical_and)
        for n, code in levels:
            flat = runs[n]  # row j: steps j .. j + n - 1, i.e. the window of values j .. j + n
            if tol > 0 and flat.any():
                _verify_range(x, flat, n, tol)
            if ignore_below is not None:
                flat &= x[n:] >= _cast(x, ignore_below)
            np.copyto(out[n:], code, where=flat)
    return _mark_missing(out, _nan_mask(x, nan))


def _verify_range(x: np.ndarray, flat: np.ndarray, n: int, tol) -> None:
    """Clear the candidates in ``flat`` whose window of ``n + 1`` values spans more than tol."""
    idx = np.flatnonzero(flat)
    if idx.size > _FLAT_GATHER_MAX * flat.size:
        w = n + 1
        lo = _rolling(x, [w], np.minimum)[w]
        hi = _rolling(x, [w], np.maximum)[w]
        flat &= (hi - lo) <= tol
        return
    stride = flat.size // flat.shape[0]  # cells per time slot
    xf = x.reshape(-1)
    end = idx + n * stride  # the window's last value
    v = xf[end]
    lo, hi = v.copy(), v.copy()
    for k in range(1, n + 1):
        v = xf[end - k * stride]
        np.minimum(lo, v, out=lo)
        np.maximum(hi, v, out=hi)
    flat.reshape(-1)[idx[(hi - lo) > tol]] = False


_flat_core = _by_rows(_flat_block)


def flat_line(
    values,
    *,
    tolerance: float,
    suspect_count: int,
    fail_count: int | None = None,
    ignore_below: float | None = None,
    time_dim: str = "time",
):
    """Flag a value stuck at the same level: it and the ``count`` values before it all lie within
    ``tolerance`` of each other.

    Rule: a value is SUSPECT when the range (max - min) of the window of ``suspect_count + 1``
    consecutive slots ending at it is <= tolerance, FAIL for ``fail_count + 1`` slots. So the first
    ``count`` values of a run stay GOOD (the first is the last real reading before a sensor
    sticks) and every value from the ``count``-th repeat on is flagged, as in ioos_qc's
    ``flat_line_test`` (with its ``suspect_threshold = suspect_count * step`` seconds).
    ``tolerance = 0`` means exact repeats (ioos_qc compares ``range < tolerance``, so 0 switches
    it off; here it is ``<=``). Values below ``ignore_below`` are never flagged: a long run of
    exact zeros is a normal dry spell for precipitation.

    Gaps: a NaN breaks a run (a window holding a NaN is not flat): a stuck sensor has to be
    seen stuck, slot after slot. ioos_qc instead ignores NaN inside its window. NaN -> MISSING.

    Raises:
        QCError: when tolerance < 0, suspect_count < 1, or fail_count <= suspect_count.
    """
    _positive("tolerance", tolerance, allow_zero=True)
    _int_at_least("suspect_count", suspect_count, 1)
    if fail_count is not None:
        _int_at_least("fail_count", fail_count, 1)
        _above("fail_count", fail_count, "suspect_count", suspect_count)
    if ignore_below is not None and not np.isfinite(ignore_below):
        raise QCError(f"ignore_below must be a finite number, got {ignore_below!r}")
    depth = max(suspect_count, fail_count or 0)
    return _apply(
        _flat_core,
        values,
        time_dim=time_dim,
        halo={0: (depth, 0)},
        tolerance=tolerance,
        suspect_count=suspect_count,
        fail_count=fail_count,
        ignore_below=ignore_below,
    )


# --------------------------------------------------------------------------------------------
# spatial check (last two axes)


def _run3(x: np.ndarray, r: int, op, axis: int) -> np.ndarray:
    """``op`` over the 2r+1 cells centred on each cell along ``axis`` (cells beyond the edge
    absent): pairwise reductions, one new array per step instead of copy-then-update."""
    n = x.shape[axis]
    if n == 1:
        return x.copy()

    def sl(a, b):
        idx = [slice(None)] * x.ndim
        idx[axis] = slice(a, b)
        return tuple(idx)

    out = np.empty_like(x)
    if 2 * r + 1 > n:  # a window wider than the axis (tiny blocks): cell by cell
        for i in range(n):
            out[sl(i, i + 1)] = _reduce_slice(x, sl(max(i - r, 0), min(i + r + 1, n)), op, axis)
        return out
    target = 2 * r + 1
    m = n - target + 1  # cells whose whole window lies inside
    acc, width = x, 1
    # acc[i] covers cells i .. i + width - 1; the last step writes straight into ``out``
    while width < target:
        step = min(width, target - width)
        a, b = acc[sl(0, acc.shape[axis] - step)], acc[sl(step, None)]
        acc = op(a, b, out=out[sl(r, r + m)]) if width + step == target else op(a, b)
        width += step
    for i in range(r):  # edges: shorter windows
        out[sl(i, i + 1)] = _reduce_slice(x, sl(0, i + r + 1), op, axis)
        j = n - 1 - i
        out[sl(j, j + 1)] = _reduce_slice(x, sl(j - r, n), op, axis)
    return out


def _reduce_slice(x, idx, op, axis):
    return op.reduce(x[idx], axis=axis, keepdims=True)


def _box(x: np.ndarray, r: int, op) -> np.ndarray:
    """``op`` (np.fmin / np.fmax: NaN ignored) over the (2r+1)^2 box around each cell of the
    last two axes, centre included, separably; cells beyond the edge are simply absent."""
    return _run3(_run3(x, r, op, x.ndim - 1), r, op, x.ndim - 2)


def _box_count(valid: np.ndarray, r: int) -> np.ndarray:
    """Number of valid cells in the (2r+1)^2 box (centre included), uint8."""
    v = valid.view(np.uint8) if valid.dtype == bool else valid.astype(np.uint8)
    a = v.copy()
    for k in range(1, r + 1):
        a[..., :, k:] += v[..., :, :-k]
        a[..., :, :-k] += v[..., :, k:]
    b = a.copy()
    for k in range(1, r + 1):
        b[..., k:, :] += a[..., :-k, :]
        b[..., :-k, :] += a[..., k:, :]
    return b


def _spatial_block(x, *, window, suspect_z, fail_z, min_valid, min_scale, min_support, core=None, nan=None):
    """``spatial`` over fields (..., y, x); ``core`` crops the result to the cells whose whole
    neighbourhood is in ``x`` (the caller passes only spatial halos)."""
    x = _float(x)
    r = window // 2
    ny, nx = x.shape[-2:]
    out = np.ones(x.shape, dtype=np.uint8)
    nanm = _nan_mask(x, nan)
    if nanm is None:
        cnt = _box_count(np.ones((ny, nx), dtype=bool), r) - np.uint8(1)  # geometry only
    else:
        valid = ~nanm
        cnt = _box_count(valid, r) - valid.view(np.uint8)
    few = cnt < min_valid
    t_min = x.dtype.type(suspect_z * min_scale)
    # |x - median| > suspect_z * scale needs x - min > T or max - x > T (the median lies within
    # [min, max] of the neighbours, and scale >= min_scale): a cheap prefilter, exact test below.
    # Both are at most the field's own range (max - min over the field, halo rows included), so a
    # field whose range is <= T has no candidate at all: most fields of a slab are quiet (dry, or
    # smooth), and the box filters run on the busy ones only.
    per = ny * nx
    fields = x.reshape(-1, ny, nx)
    flat_f = fields.reshape(len(fields), per)
    rng = np.fmax.reduce(flat_f, axis=1) - np.fmin.reduce(flat_f, axis=1)  # NaN ignored
    busy = np.flatnonzero(~(rng <= t_min))  # an all-NaN field (range NaN) is filtered as before
    whole = busy.size == len(fields)
    idx = np.empty(0, dtype=np.intp)
    if busy.size:
        xs = fields if whole else fields[busy]
        lo = _box(xs, r, np.fmin)
        hi = _box(xs, r, np.fmax)
        np.subtract(xs, lo, out=lo)
        np.subtract(hi, xs, out=hi)
        cand = lo > t_min
        cand |= hi > t_min
        del lo, hi
        if few.any():  # few: (ny, nx) from the geometry, or shaped like x when values are missing
            fb = few if few.ndim == 2 else few.reshape(-1, ny, nx)
            if fb.ndim == 3 and not whole:
                fb = fb[busy]
            cand &= ~np.broadcast_to(fb, cand.shape)
        loc = np.flatnonzero(cand)
        idx = loc if whole else busy[loc // per] * per + loc % per
    if idx.size:
        flags = _spatial_exact(x, idx, r, suspect_z, fail_z, min_scale, min_support)
        out.reshape(-1)[idx] = flags
    if few.any():
        np.copyto(out, _NOTEVAL, where=np.broadcast_to(few, x.shape))
    out = _mark_missing(out, nanm)
    if core is not None and x.ndim >= 2:
        out = out[tuple(core)]
    return out


def _spatial_exact(x, idx, r, suspect_z, fail_z, min_scale, min_support) -> np.ndarray:
    """Median / MAD of each candidate's neighbourhood (centre excluded) and the isolation rule."""
    ny, nx = x.shape[-2:]
    flat = x.reshape(-1)
    offs = np.array([(dy, dx) for dy in range(-r, r + 1) for dx in range(-r, r + 1) if (dy, dx) != (0, 0)])
    pos = idx[:, None] + (offs[:, 0] * nx + offs[:, 1])[None, :]
    rem = idx % (ny * nx)
    iy, ix = rem // nx, rem % nx
    edge = (iy < r) | (iy >= ny - r) | (ix < r) | (ix >= nx - r)
    if edge.any():  # neighbours beyond the field's edge are absent (NaN), not the next row
        e = np.flatnonzero(edge)
        yy = iy[e, None] + offs[None, :, 0]
        xx = ix[e, None] + offs[None, :, 1]
        outside = (yy < 0) | (yy >= ny) | (xx < 0) | (xx >= nx)
        pos[e] = np.where(outside, idx[e, None], pos[e])
    nb = flat[pos]
    if edge.any():
        nb[e] = np.where(outside, np.nan, nb[e])
    xc = flat[idx]
    k = np.count_nonzero(~np.isnan(nb), axis=1)
    srt = np.sort(nb, axis=1)  # NaN sort last
    lo_i, hi_i = ((k - 1) // 2)[:, None], (k // 2)[:, None]
    med = 0.5 * (np.take_along_axis(srt, lo_i, 1) + np.take_along_axis(srt, hi_i, 1))[:, 0]
    dev = np.abs(nb - med[:, None])
    dev.sort(axis=1)
    mad = 0.5 * (np.take_along_axis(dev, lo_i, 1) + np.take_along_axis(dev, hi_i, 1))[:, 0]
    scale = np.maximum(mad * x.dtype.type(MAD_TO_SIGMA), x.dtype.type(min_scale))
    d = xc - med
    z = np.abs(d) / scale
    # neighbours that stand out with the centre (same side, at least half as far): corroboration
    with np.errstate(invalid="ignore"):
        support = np.count_nonzero((nb - med[:, None]) * np.sign(d)[:, None] >= 0.5 * np.abs(d)[:, None], axis=1)
    isolated = support < min_support
    flags = np.full(idx.size, _GOOD, dtype=np.uint8)
    flags[(z > suspect_z) & isolated] = _SUSPECT
    if fail_z is not None:
        flags[(z > fail_z) & isolated] = _FAIL
    return flags


def spatial(
    values,
    *,
    window: int = 3,
    suspect_z: float,
    fail_z: float | None = None,
    min_valid: int = 5,
    min_scale: float,
    min_support: int = 2,
):
    """Flag an isolated cell that disagrees strongly with its neighbourhood in the same field.

    Rule: over the ``window x window`` neighbourhood *without* the centre, m = median and
    s = max(1.4826 * MAD, min_scale) of the valid neighbours; z = |x - m| / s. The cell is
    SUSPECT when z > suspect_z and FAIL when z > fail_z, but only when it is isolated: fewer than
    ``min_support`` neighbours stand out with it (lie on the same side of m, at least half as
    far). So a single 120 mm/h pixel amid dry cells is flagged (MAD is 0 there; ``min_scale``
    keeps the division finite and sets how large a lone departure must be), while a real storm
    core, where many neighbouring cells are high together, is corroborated and left alone.
    Fewer than ``min_valid`` valid neighbours (grid corners, edges of missing areas) ->
    NOT_EVALUATED; NaN -> MISSING. Each 2-D field (last two axes) is judged on its own.

    Raises:
        QCError: when window is not an odd integer >= 3, suspect_z <= 0, fail_z <= suspect_z,
            min_scale <= 0, min_valid outside 1..window^2-1 or min_support outside 0..window^2-1.
    """
    if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 3 or window % 2 == 0:
        raise QCError(f"window must be an odd integer >= 3, got {window!r}")
    if window > 15:
        raise QCError(f"window must be at most 15, got {window!r}")
    nn = window * window - 1
    _positive("suspect_z", suspect_z)
    _above("fail_z", fail_z, "suspect_z", suspect_z)
    _positive("min_scale", min_scale)
    _int_at_least("min_valid", min_valid, 1)
    if min_valid > nn:
        raise QCError(f"min_valid must be at most {nn} (neighbours in a {window}x{window} window), got {min_valid}")
    _int_at_least("min_support", min_support, 0)
    if min_support > nn:
        raise QCError(f"min_support must be at most {nn}, got {min_support}")
    if np.ndim(values) < 2:
        raise QCError(f"spatial needs values with at least 2 dimensions (y, x last), got shape {np.shape(values)}")
    r = window // 2
    return _apply(
        _spatial_core,
        values,
        halo={-2: (r, r), -1: (r, r)},
        window=window,
        suspect_z=suspect_z,
        fail_z=fail_z,
        min_valid=min_valid,
        min_scale=min_scale,
        min_support=min_support,
    )


# --------------------------------------------------------------------------------------------
# cross-variable consistency

RULES = ("a_ge_b", "a_le_b")


def _cross_core(a, b, *, rule, tolerance, fail_tolerance, core=None):
    a = _float(a)
    b = _float(b)
    excess = (b - a) if rule == "a_ge_b" else (a - b)
    out = np.ones(excess.shape, dtype=np.uint8)
    np.copyto(out, _SUSPECT, where=excess > _cast(excess, tolerance))
    if fail_tolerance is not None:
        np.copyto(out, _FAIL, where=excess > _cast(excess, fail_tolerance))
    np.copyto(out, _NOTEVAL, where=np.isnan(excess))
    return out


def cross_variable(a, b, *, rule: str = "a_ge_b", tolerance: float, fail_tolerance: float | None = None):
    """Flag pairs of variables that contradict each other (e.g. dew point above air temperature).

    Rule: for ``a_ge_b`` the excess is b - a (``a_le_b``: a - b); excess > tolerance -> SUSPECT,
    excess > fail_tolerance -> FAIL, otherwise GOOD. The flags describe the pair; the caller
    decides which variable(s) carry them. Where a or b is NaN the pair cannot be judged:
    NOT_EVALUATED (not MISSING: each variable's own missingness is reported by its own tests, and
    MISSING would outrank the other variable's good value in the aggregate).

    Raises:
        QCError: for an unknown rule, tolerance < 0, fail_tolerance <= tolerance, or shapes that
            do not broadcast.
    """
    if rule not in RULES:
        raise QCError(f"unknown cross-variable rule {rule!r}; valid rules are {list(RULES)}")
    _positive("tolerance", tolerance, allow_zero=True)
    _above("fail_tolerance", fail_tolerance, "tolerance", tolerance)
    try:
        np.broadcast_shapes(np.shape(a), np.shape(b))
    except ValueError:
        raise QCError(f"a and b must have broadcastable shapes, got {np.shape(a)} and {np.shape(b)}") from None
    params = dict(rule=rule, tolerance=tolerance, fail_tolerance=fail_tolerance)
    if _is_xr(a) or _is_xr(b):
        import xarray as xr

        res = xr.apply_ufunc(lambda u, v: _cross_any(u, v, params), a, b, dask="allowed")
        res.name = None
        return res
    return _cross_any(a, b, params)


def _cross_any(a, b, params):
    if is_dask(a) or is_dask(b):
        import dask.array as da

        return da.map_blocks(
            lambda u, v: _cross_core(u, v, **params), da.asarray(a), da.asarray(b), dtype=np.uint8
        )
    return _cross_core(a, b, **params)
