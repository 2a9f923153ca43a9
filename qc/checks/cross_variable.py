"""The cross-variable check: two variables that must keep an order (dew point <= air temperature)."""

from __future__ import annotations

import numpy as np

from qc.checks.common import NOT_EVALUATED, as_float, cast, grade, is_xr, require_above, require_positive
from qc.checks.halo import is_dask
from qc.errors import QCError

__all__ = ["cross_variable", "RULES"]

RULES = ("a_ge_b", "a_le_b")


def cross_variable_core(a, b, *, rule, tolerance, fail_tolerance, core=None):
    """numpy core of ``cross_variable`` (also run by ``qc.pipeline``)."""
    a = as_float(a)
    b = as_float(b)
    excess = (b - a) if rule == "a_ge_b" else (a - b)
    out = np.ones(excess.shape, dtype=np.uint8)
    grade(out, excess, cast(excess, tolerance), cast(excess, fail_tolerance))
    np.copyto(out, NOT_EVALUATED, where=np.isnan(excess))
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
    require_positive("tolerance", tolerance, allow_zero=True)
    require_above("fail_tolerance", fail_tolerance, "tolerance", tolerance)
    try:
        np.broadcast_shapes(np.shape(a), np.shape(b))
    except ValueError:
        raise QCError(f"a and b must have broadcastable shapes, got {np.shape(a)} and {np.shape(b)}") from None
    params = dict(rule=rule, tolerance=tolerance, fail_tolerance=fail_tolerance)
    if is_xr(a) or is_xr(b):
        import xarray as xr

        res = xr.apply_ufunc(lambda u, v: _cross_any(u, v, params), a, b, dask="allowed")
        res.name = None
        return res
    return _cross_any(a, b, params)


def _cross_any(a, b, params):
    if is_dask(a) or is_dask(b):
        import dask.array as da

        return da.map_blocks(
            lambda u, v: cross_variable_core(u, v, **params), da.asarray(a), da.asarray(b), dtype=np.uint8
        )
    return cross_variable_core(a, b, **params)
