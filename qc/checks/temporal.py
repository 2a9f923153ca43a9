"""Checks along the time axis (axis 0): ``spike``, ``rate_of_change`` and ``flat_line``.

Each has a block function (``_*_block``: one block, time whole) and a core that runs it slab by
slab of rows (``*_core``, what ``qc.pipeline`` fuses); gaps (NaN) are skipped up to ``max_gap``
slots when looking for neighbours, and a series without the neighbours a rule needs is
NOT_EVALUATED.
"""

from __future__ import annotations

import numpy as np

from qc.checks.common import (
    FAIL,
    NOT_EVALUATED,
    SUSPECT,
    apply,
    as_float,
    by_rows,
    cast,
    grade,
    mark_missing,
    nan_mask,
    not_evaluated,
    require_above,
    require_int_at_least,
    require_positive,
)
from qc.errors import QCError

__all__ = ["spike", "rate_of_change", "flat_line"]


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


# --------------------------------------------------------------------------------------------
# spike


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
    x = as_float(x)
    nan = nan_mask(x, nan)
    if x.shape[0] < 3:
        return not_evaluated(x.shape, nan)
    s, f = cast(x, suspect), cast(x, fail)
    out = np.ones(x.shape, dtype=np.uint8)
    if nan is None:
        # gap-free: neighbours are the adjacent slots; the first and last slot have only one
        c = x[1:-1]
        grade(out[1:-1], _both_sides(c - x[:-2], c - x[2:]), s, f)
        out[0] = NOT_EVALUATED
        out[-1] = NOT_EVALUATED
        return out
    reach = max_gap + 1
    p, _ = _neighbour(x, reach, -1)
    n, _ = _neighbour(x, reach, +1)
    grade(out, _both_sides(x - p, x - n), s, f)
    np.copyto(out, NOT_EVALUATED, where=np.isnan(p) | np.isnan(n))
    return mark_missing(out, nan)


spike_core = by_rows(_spike_block)


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
    require_positive("suspect", suspect)
    require_above("fail", fail, "suspect", suspect)
    require_int_at_least("max_gap", max_gap, 0)
    r = max_gap + 1
    return apply(spike_core, values, time_dim=time_dim, halo={0: (r, r)}, suspect=suspect, fail=fail, max_gap=max_gap)


# --------------------------------------------------------------------------------------------
# rate of change


def _roc_block(x, *, suspect_per_step, fail_per_step, max_gap, core=None, nan=None):
    x = as_float(x)
    nan = nan_mask(x, nan)
    t = x.shape[0]
    if t < 2:
        return not_evaluated(x.shape, nan)
    s, f = cast(x, suspect_per_step), cast(x, fail_per_step)
    out = np.ones(x.shape, dtype=np.uint8)
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
        np.copyto(o, SUSPECT, where=jump)
        if f is not None:
            big = rate > f
            if t >= 3:
                big[1:] &= back
            np.copyto(o, FAIL, where=big)
        out[0] = NOT_EVALUATED
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
    grade(out, rate, s, f, where=~exempt)
    np.copyto(out, NOT_EVALUATED, where=~has)
    return mark_missing(out, nan)


rate_of_change_core = by_rows(_roc_block)


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
    require_positive("suspect_per_step", suspect_per_step)
    require_above("fail_per_step", fail_per_step, "suspect_per_step", suspect_per_step)
    require_int_at_least("max_gap", max_gap, 0)
    r = 2 * (max_gap + 1)
    return apply(
        rate_of_change_core,
        values,
        time_dim=time_dim,
        halo={0: (r, 0)},
        suspect_per_step=suspect_per_step,
        fail_per_step=fail_per_step,
        max_gap=max_gap,
    )


# --------------------------------------------------------------------------------------------
# flat line


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
    x = as_float(x)
    t = x.shape[0]
    out = np.ones(x.shape, dtype=np.uint8)
    tol = cast(x, tolerance)
    levels = [(suspect_count, SUSPECT)] + ([(fail_count, FAIL)] if fail_count is not None else [])
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
                flat &= x[n:] >= cast(x, ignore_below)
            np.copyto(out[n:], code, where=flat)
    return mark_missing(out, nan_mask(x, nan))


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


flat_line_core = by_rows(_flat_block)


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
    require_positive("tolerance", tolerance, allow_zero=True)
    require_int_at_least("suspect_count", suspect_count, 1)
    if fail_count is not None:
        require_int_at_least("fail_count", fail_count, 1)
        require_above("fail_count", fail_count, "suspect_count", suspect_count)
    if ignore_below is not None and not np.isfinite(ignore_below):
        raise QCError(f"ignore_below must be a finite number, got {ignore_below!r}")
    depth = max(suspect_count, fail_count or 0)
    return apply(
        flat_line_core,
        values,
        time_dim=time_dim,
        halo={0: (depth, 0)},
        tolerance=tolerance,
        suspect_count=suspect_count,
        fail_count=fail_count,
        ignore_below=ignore_below,
    )
