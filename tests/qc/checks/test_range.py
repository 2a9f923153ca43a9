"""missing, physical_range, climatology (qc.checks.range): known values, NaN, bad parameters."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import qc
from qc import QCError

G, N, S, F, M = 1, 2, 3, 4, 9
nan = np.nan


def arr(*v, dtype="float64"):
    return np.array(v, dtype=dtype)


def test_missing():
    out = qc.missing(arr(1.0, nan, 0.0, -np.inf))
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, [G, M, G, G])


def test_physical_range_bounds_inclusive():
    out = qc.physical_range(arr(-0.1, 0.0, 250.0, 500.0, 500.1, nan), low=0.0, high=500.0)
    np.testing.assert_array_equal(out, [F, G, G, G, F, M])
    np.testing.assert_array_equal(qc.physical_range(arr(-5, 5), high=1), [G, F])


@pytest.mark.parametrize(
    "kw, match",
    [
        ({}, "needs low and/or high"),
        ({"low": 5, "high": 1}, "low < high.*low=5, high=1"),
        ({"low": nan, "high": 1}, "low must be a finite number"),
    ],
)
def test_physical_range_bad_parameters(kw, match):
    with pytest.raises(QCError, match=match):
        qc.physical_range(arr(1.0), **kw)


def test_climatology_monthly_records():
    rmin = [float(m) for m in range(12)]  # Jan 0, Feb 1, ...
    rmax = [10.0 + m for m in range(12)]  # Jan 10, Feb 11, ...
    x = arr(-1, 0, 10, 10.5, 11, 11.5, nan)
    months = np.array([1, 1, 1, 1, 2, 2, 2])
    out = qc.climatology(x, months=months, record_min=rmin, record_max=rmax)
    np.testing.assert_array_equal(out, [S, G, G, S, G, S, M])


def test_climatology_month_without_record_not_evaluated():
    rmax = [5.0] * 11 + [nan]
    out = qc.climatology(arr(9, 9), months=np.array([11, 12]), record_max=rmax)
    np.testing.assert_array_equal(out, [S, N])


def test_climatology_gridded_reference_with_fallback():
    # (time=2, y=1, x=3); cell 0 has its own record, cell 1 falls back to the monthly vector,
    # cell 2 has no record for max at all
    x = np.array([[[15.0, 15.0, 99.0]], [[15.0, 25.0, 99.0]]])
    ref_max = np.full((12, 1, 3), nan)
    ref_max[5, 0, 0] = 12.0  # June: cell 0's own record is lower than the domain record
    months = np.array([6, 6])
    out = qc.climatology(x, months=months, record_max=[20.0] * 12, reference={"max": ref_max})
    np.testing.assert_array_equal(out[:, 0], [[S, G, S], [S, S, S]])
    only_ref = qc.climatology(x, months=months, reference={"max": ref_max})
    np.testing.assert_array_equal(only_ref[:, 0], [[S, N, N], [S, N, N]])


def test_climatology_months_from_time_coordinate():
    t = np.array(["2021-01-31T23", "2021-02-01T00"], dtype="datetime64[ns]")
    x = xr.DataArray([15.0, 15.0], dims="time", coords={"time": t})
    out = qc.climatology(x, record_max=[10.0, 20.0] + [30.0] * 10)
    np.testing.assert_array_equal(out.values, [S, G])
    assert out.dims == ("time",)


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"months": np.array([1, 1])}, "needs record_min, record_max or a reference"),
        ({"months": np.array([1, 13]), "record_max": [1.0] * 12}, r"months must lie in 1\.\.12"),
        ({"months": np.array([1]), "record_max": [1.0] * 12}, "months has 1 entries but the time axis has 2"),
        ({"months": np.array([1, 2]), "record_max": [1.0] * 11}, "needs 12 monthly values.*got 11"),
        ({"record_max": [1.0] * 12}, "needs `months`"),
        ({"months": np.array([1, 2]), "reference": {"max": np.zeros((12, 3))}}, "must have shape"),
    ],
)
def test_climatology_bad_parameters(kw, match):
    with pytest.raises(QCError, match=match):
        qc.climatology(arr(1.0, 2.0), **kw)
