"""What the checks share (qc.checks.common): every check on numpy, dask and xarray input alike, slab
processing, dtypes; and the shared helpers themselves."""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np
import pytest
import xarray as xr

import qc
from qc import QCError
from qc.checks import common

G, N, S, F, M = 1, 2, 3, 4, 9
nan = np.nan


# ------------------------------------------------------------------------------------------
# properties shared by every check

CHECKS = {
    "missing": (qc.missing, {}),
    "physical_range": (qc.physical_range, {"low": 0.0, "high": 30.0}),
    "climatology": (qc.climatology, {"months": np.full(24, 7), "record_min": [2.0] * 12, "record_max": [20.0] * 12}),
    "spike": (qc.spike, {"suspect": 3.0, "fail": 8.0, "max_gap": 1}),
    "rate_of_change": (qc.rate_of_change, {"suspect_per_step": 3.0, "fail_per_step": 8.0, "max_gap": 1}),
    "flat_line": (qc.flat_line, {"tolerance": 0.0, "suspect_count": 3, "fail_count": 5}),
    "spatial": (qc.spatial, {"suspect_z": 4.0, "fail_z": 10.0, "min_scale": 0.5}),
}


def _field(dtype="float32"):
    """(time=24, y=10, x=11) with spikes, a flat run, gaps, an impossible value, a hot pixel."""
    rng = np.random.default_rng(42)
    x = (10 + rng.normal(0, 0.5, (24, 10, 11))).astype(dtype)
    x[7, 4, 5] += 12  # spike (the chunk boundary below falls right next to it)
    x[8, 4, 6] -= 6
    x[12:20, 2, 2] = 11.0  # flat
    x[3, :, :] = nan  # a missing slot
    x[15, 6, 7] = nan
    x[16, 0:3, 0:3] = 99.0  # impossible, and a patch
    x[20, 9, 10] = 40.0
    return x


@pytest.mark.parametrize("name", list(CHECKS))
def test_check_output_shape_dtype_and_input_untouched(name):
    fn, kw = CHECKS[name]
    x = _field()
    before = x.tobytes()
    out = fn(x, **kw)
    assert out.shape == x.shape and out.dtype == np.uint8
    assert x.tobytes() == before
    assert set(np.unique(out)) <= {G, N, S, F, M}
    assert (out[np.isnan(x)] == M).all()


@pytest.mark.parametrize("name", list(CHECKS))
@pytest.mark.parametrize("chunks", [(8, 5, 6), (3, 4, 3), (7, 10, 11), (1, 3, 2)])
def test_check_dask_lazy_and_equal_to_numpy(name, chunks):
    fn, kw = CHECKS[name]
    x = _field()
    calls = []

    def source(block):
        if block.size:  # dask probes the function with empty blocks for metadata
            calls.append(1)
        return block

    d = da.from_array(x, chunks=chunks).map_blocks(source, dtype=x.dtype)
    out = fn(d, **kw)
    assert dask.is_dask_collection(out)
    assert out.chunks[1:] == d.chunks[1:] or name not in ("spike", "rate_of_change", "flat_line", "climatology")
    assert calls == []  # nothing computed yet
    np.testing.assert_array_equal(out.compute(), fn(x, **kw))
    assert calls


@pytest.mark.parametrize("name", list(CHECKS))
def test_check_xarray_keeps_dims_and_coords(name):
    fn, kw = CHECKS[name]
    x = _field()
    t = np.datetime64("2021-07-01") + np.arange(24) * np.timedelta64(1, "h")
    a = xr.DataArray(x, dims=("time", "y", "x"), coords={"time": t, "x": np.arange(11)}, name="t2m")
    out = fn(a, **kw)
    assert isinstance(out, xr.DataArray) and out.dims == a.dims
    np.testing.assert_array_equal(out["time"], t)
    np.testing.assert_array_equal(out.values, fn(x, **kw))
    lazy = fn(a.chunk({"time": 5, "y": 4}), **kw)
    assert dask.is_dask_collection(lazy)
    np.testing.assert_array_equal(lazy.values, out.values)


@pytest.mark.parametrize("name", ["spike", "rate_of_change", "flat_line", "climatology"])
def test_temporal_checks_on_dataarray_with_time_not_first(name):
    fn, kw = CHECKS[name]
    x = _field()
    a = xr.DataArray(x, dims=("time", "y", "x")).transpose("y", "time", "x")
    out = fn(a, **kw)
    assert out.dims == ("y", "time", "x")
    np.testing.assert_array_equal(out.transpose("time", "y", "x").values, fn(x, **kw))


@pytest.mark.parametrize("slab", [50, 300])  # rows of one field at a time / several fields
@pytest.mark.parametrize("name", ["spike", "rate_of_change", "flat_line", "spatial"])
def test_slab_processing_gives_the_same_answer(name, slab, monkeypatch):
    fn, kw = CHECKS[name]
    x = _field()
    whole = fn(x, **kw)
    monkeypatch.setattr(common, "SLAB_CELLS", slab)
    np.testing.assert_array_equal(fn(x, **kw), whole)


def test_float32_stays_float32_and_integers_are_accepted():
    x = _field("float32")
    np.testing.assert_array_equal(qc.spike(x, suspect=3.0), qc.spike(x.astype("float64"), suspect=3.0))
    ints = np.array([1, 1, 9, 1, 1])
    np.testing.assert_array_equal(qc.spike(ints, suspect=3), [N, G, S, G, N])
    with pytest.raises(QCError, match="numeric values"):
        qc.missing(np.array(["a", "b"]))


# ------------------------------------------------------------------------------------------
# the package's names and the shared helpers


def test_each_test_name_is_a_check_of_that_name():
    import qc.checks
    from qc.flags import TEST_NAMES

    for name in TEST_NAMES:
        assert callable(getattr(qc.checks, name)) and getattr(qc, name) is getattr(qc.checks, name)
    assert set(TEST_NAMES) <= set(qc.__all__) and set(qc.checks.__all__) == {*TEST_NAMES, "MAD_TO_SIGMA"}


def test_grade_raises_to_suspect_and_fail_only_where_allowed():
    excess = np.array([0.0, 2.0, 5.0, nan, 5.0], dtype="float32")
    out = common.grade(np.ones(5, np.uint8), excess, np.float32(1.0), np.float32(4.0))
    np.testing.assert_array_equal(out, [G, S, F, G, F])
    out = common.grade(np.ones(5, np.uint8), excess, 1.0, None, where=np.array([1, 1, 1, 1, 0], bool))
    np.testing.assert_array_equal(out, [G, S, S, G, G])


def test_outside_not_evaluated_and_cast():
    x = np.array([-1.0, 0.0, 5.0, 10.0, 11.0, nan], dtype="float32")
    np.testing.assert_array_equal(common.outside(x, 0.0, 10.0), [1, 0, 0, 0, 1, 0])
    np.testing.assert_array_equal(common.outside(x, None, 10.0), [0, 0, 0, 0, 1, 0])
    np.testing.assert_array_equal(common.outside(x, None, None), [0] * 6)
    np.testing.assert_array_equal(common.not_evaluated(x.shape, common.nan_mask(x)), [N, N, N, N, N, M])
    assert common.nan_mask(x[:5]) is None and common.nan_mask(x, False) is None
    assert common.cast(x, 0.1).dtype == np.float32 and common.cast(x, None) is None
