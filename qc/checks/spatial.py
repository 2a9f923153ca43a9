"""The spatial check: a lone cell that disagrees strongly with its neighbourhood in the same field
(median / MAD of the ``window x window`` neighbours over the last two axes)."""

from __future__ import annotations

import numpy as np

from qc.checks import common
from qc.checks.common import (
    GOOD,
    NOT_EVALUATED,
    apply,
    as_float,
    grade,
    mark_missing,
    nan_mask,
    require_above,
    require_int_at_least,
    require_positive,
)
from qc.errors import QCError

__all__ = ["spatial", "MAD_TO_SIGMA"]

#: MAD of a normal distribution times this is its standard deviation.
MAD_TO_SIGMA = 1.4826


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
    x = as_float(x)
    r = window // 2
    ny, nx = x.shape[-2:]
    out = np.ones(x.shape, dtype=np.uint8)
    nanm = nan_mask(x, nan)
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
        np.copyto(out, NOT_EVALUATED, where=np.broadcast_to(few, x.shape))
    out = mark_missing(out, nanm)
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
    return grade(np.full(idx.size, GOOD, dtype=np.uint8), z, suspect_z, fail_z, where=isolated)


def spatial_core(x, *, core=None, nan=None, **kw):
    """``_spatial_block`` over groups of whole fields, or over slabs of rows (with the rows of
    halo they need) when a field is large; only the core's own leading (time) slots are judged:
    a temporal halo is of no use here."""
    x = as_float(x)
    if core is not None and x.ndim > 2 and any(c != slice(None) for c in core[:-2]):
        x = x[tuple(core[:-2])]
    ny, nx = x.shape[-2:]
    cy, cx = (slice(None), slice(None)) if core is None else tuple(core[-2:])
    if x.ndim < 2 or x.size <= common.SLAB_CELLS or not (nan is None or nan is False):
        return _spatial_block(x, core=(slice(None),) * (x.ndim - 2) + (cy, cx), nan=nan, **kw)
    lead = x.shape[:-2]
    fields = x.reshape((-1, ny, nx))
    y0, y1, _ = cy.indices(ny)
    x0, x1, _ = cx.indices(nx)
    out = np.empty((fields.shape[0], y1 - y0, x1 - x0), dtype=np.uint8)
    if ny * nx <= common.SLAB_CELLS:  # several whole fields at a time
        per = max(1, common.SLAB_CELLS // (ny * nx))
        for a in range(0, fields.shape[0], per):
            out[a : a + per] = _spatial_block(fields[a : a + per], core=(slice(None), cy, cx), nan=nan, **kw)
    else:  # slabs of rows within each field
        r = kw["window"] // 2
        rows = max(1, common.SLAB_CELLS // nx)
        for f in range(fields.shape[0]):
            for a in range(y0, y1, rows):
                b = min(a + rows, y1)
                s0, s1 = max(a - r, 0), min(b + r, ny)
                out[f, a - y0 : b - y0] = _spatial_block(
                    fields[f : f + 1, s0:s1], core=(slice(None), slice(a - s0, b - s0), cx), nan=nan, **kw
                )[0]
    return out.reshape(lead + out.shape[-2:])


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
    require_positive("suspect_z", suspect_z)
    require_above("fail_z", fail_z, "suspect_z", suspect_z)
    require_positive("min_scale", min_scale)
    require_int_at_least("min_valid", min_valid, 1)
    if min_valid > nn:
        raise QCError(f"min_valid must be at most {nn} (neighbours in a {window}x{window} window), got {min_valid}")
    require_int_at_least("min_support", min_support, 0)
    if min_support > nn:
        raise QCError(f"min_support must be at most {nn}, got {min_support}")
    if np.ndim(values) < 2:
        raise QCError(f"spatial needs values with at least 2 dimensions (y, x last), got shape {np.shape(values)}")
    r = window // 2
    return apply(
        spatial_core,
        values,
        halo={-2: (r, r), -1: (r, r)},
        window=window,
        suspect_z=suspect_z,
        fail_z=fail_z,
        min_valid=min_valid,
        min_scale=min_scale,
        min_support=min_support,
    )
