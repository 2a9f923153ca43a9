"""Each check: known values, NaN handling, gaps, laziness on dask, inputs left untouched."""

from __future__ import annotations

import warnings

import dask
import dask.array as da
import numpy as np
import pytest
import xarray as xr
from numpy.lib.stride_tricks import sliding_window_view

import qc
from qc import QCError
from qc import checks as C

G, N, S, F, M = 1, 2, 3, 4, 9
nan = np.nan


def arr(*v, dtype="float64"):
    return np.array(v, dtype=dtype)


# ------------------------------------------------------------------------------------------
# missing / physical range / climatology


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


# ------------------------------------------------------------------------------------------
# spike


def test_spike_known_values_only_the_spike_is_flagged():
    x = arr(10, 10, 10, 30, 10, 10, 14, 10.5, 10, 10)
    out = qc.spike(x, suspect=3, fail=15)
    # 30 stands out by 20 from both sides -> FAIL; 14 by 3.5 (from 10) / 3.5 (from 10.5) -> SUSPECT
    np.testing.assert_array_equal(out, [N, G, G, F, G, G, S, G, G, N])


def test_spike_good_neighbours_with_noise_are_not_flagged():
    rng = np.random.default_rng(3)
    x = 280 + rng.normal(0, 0.2, 200)
    spikes = [20, 77, 150]
    x[spikes] += [12.0, -9.0, 15.0]
    out = qc.spike(x, suspect=3, fail=10)
    assert set(np.flatnonzero(out >= S)) == set(spikes)
    assert out[20] == F and out[77] == S and out[150] == F
    for i in spikes:
        assert out[i - 1] == G and out[i + 1] == G


def test_spike_step_change_and_ramp_are_not_spikes():
    step = arr(0, 0, 0, 10, 10, 10)
    np.testing.assert_array_equal(qc.spike(step, suspect=1), [N, G, G, G, G, N])
    ramp = np.arange(10.0) * 5
    assert (qc.spike(ramp, suspect=1)[1:-1] == G).all()


def test_spike_gaps():
    x = arr(10, 10, nan, 30, 10, nan, nan, 10, 10)
    # max_gap=1: 30's neighbours are 10 (two slots back, one NaN between) and 10 -> flagged;
    # index 4's next valid value is 3 slots ahead (two NaN): out of reach -> NOT_EVALUATED
    np.testing.assert_array_equal(qc.spike(x, suspect=3, max_gap=1), [N, G, M, S, N, M, M, N, G][:8] + [N])
    # max_gap=0: neighbours must be adjacent slots (ioos_qc's behaviour)
    np.testing.assert_array_equal(qc.spike(x, suspect=3, max_gap=0), [N, N, M, N, N, M, M, N, N])
    np.testing.assert_array_equal(qc.spike(x, suspect=3, max_gap=2), [N, G, M, S, G, M, M, G, N])


def test_spike_short_series():
    np.testing.assert_array_equal(qc.spike(arr(1, 50), suspect=1), [N, N])
    np.testing.assert_array_equal(qc.spike(arr(1, nan), suspect=1), [N, M])


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"suspect": 0}, "suspect must be a finite number > 0, got 0"),
        ({"suspect": 5, "fail": 5}, r"fail must be greater than suspect \(5\), got 5"),
        ({"suspect": 5, "max_gap": -1}, "max_gap must be an integer >= 0, got -1"),
        ({"suspect": 5, "max_gap": 1.5}, "max_gap must be an integer"),
    ],
)
def test_spike_bad_parameters(kw, match):
    with pytest.raises(QCError, match=match):
        qc.spike(arr(1.0, 2.0, 3.0), **kw)


# ------------------------------------------------------------------------------------------
# rate of change


def test_rate_of_change_only_the_jumping_value_when_the_series_returns():
    x = arr(10, 10, 20, 10, 10)
    np.testing.assert_array_equal(qc.rate_of_change(x, suspect_per_step=3), [N, G, S, G, G])


def test_rate_of_change_step_that_stays_is_flagged_once():
    x = arr(10, 10, 20, 20, 20)
    np.testing.assert_array_equal(qc.rate_of_change(x, suspect_per_step=3, fail_per_step=8), [N, G, F, G, G])


def test_rate_of_change_two_slot_excursion_flagged_at_both_ends():
    x = arr(10, 10, 20, 20, 10, 10)
    np.testing.assert_array_equal(qc.rate_of_change(x, suspect_per_step=3), [N, G, S, G, S, G])


def test_rate_of_change_overshoot_is_not_a_return():
    # 10 -> 20 -> -30: -30 does not come back to 10, so it is flagged too
    x = arr(10, 10, 20, -30)
    np.testing.assert_array_equal(qc.rate_of_change(x, suspect_per_step=3), [N, G, S, S])


def test_rate_of_change_gaps_divide_by_distance():
    # 10 -> (gap) -> 15 over 2 steps = 2.5 per step: fine at 3; 15 -> (gap) -> 23 = 4 per step
    x = arr(10, nan, 15, 15, nan, 23, nan, nan, -20)
    np.testing.assert_array_equal(qc.rate_of_change(x, suspect_per_step=3, max_gap=1), [N, M, G, G, M, S, M, M, N])
    np.testing.assert_array_equal(qc.rate_of_change(x, suspect_per_step=3, max_gap=2), [N, M, G, G, M, S, M, M, S])
    np.testing.assert_array_equal(qc.rate_of_change(x, suspect_per_step=3, max_gap=0), [N, M, N, G, M, N, M, M, N])


def test_rate_of_change_return_across_gap():
    x = arr(10, 30, nan, 10, 10)
    np.testing.assert_array_equal(qc.rate_of_change(x, suspect_per_step=3, max_gap=1), [N, S, M, G, G])


def test_rate_of_change_bad_parameters():
    with pytest.raises(QCError, match=r"fail_per_step must be greater than suspect_per_step \(3\), got 2"):
        qc.rate_of_change(arr(1, 2), suspect_per_step=3, fail_per_step=2)
    with pytest.raises(QCError, match="suspect_per_step must be a finite number > 0"):
        qc.rate_of_change(arr(1, 2), suspect_per_step=-1)


# ------------------------------------------------------------------------------------------
# flat line


def test_flat_line_known_values():
    x = arr(1, 2, 5, 5, 5, 5, 5, 5, 5, 3)
    out = qc.flat_line(x, tolerance=0, suspect_count=3, fail_count=5)
    # run of 5 from index 2: index 5 is the 3rd repeat (window 2..5) -> SUSPECT, index 7 the 5th
    np.testing.assert_array_equal(out, [G, G, G, G, G, S, S, F, F, G])


def test_flat_line_tolerance_is_a_range():
    x = arr(1.00, 1.04, 0.98, 1.03, 1.10)
    np.testing.assert_array_equal(qc.flat_line(x, tolerance=0.07, suspect_count=3), [G, G, G, S, G])
    # a slow drift whose steps are within tolerance but whose range is not: no flag
    drift = np.arange(10) * 0.05
    assert (qc.flat_line(drift, tolerance=0.07, suspect_count=3) == G).all()


def test_flat_line_nan_breaks_the_run():
    x = arr(5, 5, 5, nan, 5, 5, 5, 5)
    np.testing.assert_array_equal(qc.flat_line(x, tolerance=0, suspect_count=3), [G, G, G, M, G, G, G, S])


def test_flat_line_ignores_dry_spells():
    rain = arr(0, 0, 0, 0, 0, 0, 2.5, 2.5, 2.5, 2.5)
    np.testing.assert_array_equal(
        qc.flat_line(rain, tolerance=0, suspect_count=3, ignore_below=0.1), [G, G, G, G, G, G, G, G, G, S]
    )
    assert (qc.flat_line(rain, tolerance=0, suspect_count=3)[3:6] == S).all()


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"tolerance": -1, "suspect_count": 3}, "tolerance must be a finite number >= 0"),
        ({"tolerance": 0, "suspect_count": 0}, "suspect_count must be an integer >= 1, got 0"),
        ({"tolerance": 0, "suspect_count": 3, "fail_count": 3}, r"fail_count must be greater than suspect_count"),
    ],
)
def test_flat_line_bad_parameters(kw, match):
    with pytest.raises(QCError, match=match):
        qc.flat_line(arr(1, 2), **kw)


# ------------------------------------------------------------------------------------------
# spatial


def _ref_spatial(x, window, suspect_z, fail_z, min_valid, min_scale, min_support):
    """Brute force: nanmedian / MAD over an explicit sliding window (slow, obviously right)."""
    r = window // 2
    p = np.pad(x.astype(float), ((0, 0), (r, r), (r, r)), constant_values=np.nan)
    w = sliding_window_view(p, (window, window), axis=(1, 2)).reshape(x.shape + (window * window,))
    nb = np.delete(w, window * window // 2, axis=-1)
    out = np.ones(x.shape, np.uint8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        med = np.nanmedian(nb, axis=-1)
        mad = np.nanmedian(np.abs(nb - med[..., None]), axis=-1)
        z = np.abs(x - med) / np.maximum(1.4826 * mad, min_scale)
        d = x - med
        sup = np.sum((nb - med[..., None]) * np.sign(d)[..., None] >= 0.5 * np.abs(d)[..., None], axis=-1)
    iso = sup < min_support
    out[(z > suspect_z) & iso] = S
    if fail_z:
        out[(z > fail_z) & iso] = F
    out[np.sum(~np.isnan(nb), axis=-1) < min_valid] = N
    out[np.isnan(x)] = M
    return out


def test_spatial_isolated_pixel_vs_storm_core():
    f = np.zeros((1, 12, 12))
    f[0, 3, 3] = 120.0  # a lone hot pixel amid dry cells
    f[0, 6:10, 6:11] = [[60, 90, 110, 95, 70], [80, 130, 160, 120, 85], [75, 125, 150, 118, 80], [50, 70, 90, 75, 55]]
    out = qc.spatial(f, suspect_z=10, fail_z=40, min_scale=2.0)
    assert out[0, 3, 3] == F
    core = out[0, 6:10, 6:11]
    assert (core == G).all(), core  # corroborated by its neighbours: not flagged
    flagged = np.argwhere(out[0] >= S)
    assert flagged.tolist() == [[3, 3]]


def test_spatial_small_pair_of_artefacts_still_flagged_but_2x2_is_corroborated():
    f = np.zeros((1, 9, 9))
    f[0, 2, 2] = f[0, 2, 3] = 100.0  # each supports the other: 1 < min_support 2
    f[0, 6:8, 6:8] = 100.0  # each has 3 supporters
    out = qc.spatial(f, suspect_z=10, fail_z=40, min_scale=2.0, min_support=2)
    assert out[0, 2, 2] == F and out[0, 2, 3] == F
    assert (out[0, 6:8, 6:8] == G).all()


def test_spatial_mad_zero_uses_min_scale():
    f = np.zeros((1, 5, 5))
    f[0, 2, 2] = 7.0
    np.testing.assert_array_equal(qc.spatial(f, suspect_z=3, min_scale=2.0)[0, 2, 2], S)  # z = 3.5
    np.testing.assert_array_equal(qc.spatial(f, suspect_z=3, min_scale=3.0)[0, 2, 2], G)  # z = 2.33


def test_spatial_edges_and_missing_neighbours():
    f = np.ones((1, 4, 4))
    f[0, 1, 1:3] = nan
    out = qc.spatial(f, suspect_z=3, min_scale=1.0, min_valid=5)
    # corners have 3 neighbours (< 5); (0, 1) has 5 neighbours of which 2 are NaN; (2, 1) has 6 valid
    assert out[0, 0, 0] == N and out[0, 3, 3] == N and out[0, 1, 1] == M
    assert out[0, 0, 1] == N and out[0, 2, 1] == G
    np.testing.assert_array_equal(out, _ref_spatial(f, 3, 3, None, 5, 1.0, 2))


@pytest.mark.parametrize("seed", range(12))
def test_spatial_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    shape = (2, int(rng.integers(1, 14)), int(rng.integers(1, 14)))
    x = rng.exponential(1.0, shape).astype(rng.choice(["float32", "float64"]))
    x[rng.random(shape) < 0.2] = 0
    x[rng.random(shape) < 0.1] = nan
    x[rng.random(shape) < 0.1] *= 30
    window = int(rng.choice([3, 5]))
    kw = dict(
        window=window,
        suspect_z=3.0,
        fail_z=8.0,
        min_valid=int(rng.integers(1, 6)),
        min_scale=0.5,
        min_support=int(rng.integers(0, 3)),
    )
    np.testing.assert_array_equal(qc.spatial(x, **kw), _ref_spatial(x, **kw))


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"window": 4}, "window must be an odd integer >= 3, got 4"),
        ({"window": 1}, "window must be an odd integer >= 3"),
        ({"suspect_z": 5, "fail_z": 4}, r"fail_z must be greater than suspect_z \(5\), got 4"),
        ({"min_scale": 0}, "min_scale must be a finite number > 0, got 0"),
        ({"min_valid": 9}, "min_valid must be at most 8"),
    ],
)
def test_spatial_bad_parameters(kw, match):
    params = {"suspect_z": 3.0, "min_scale": 1.0, **kw}
    with pytest.raises(QCError, match=match):
        qc.spatial(np.zeros((3, 3)), **params)


def test_spatial_needs_two_dimensions():
    with pytest.raises(QCError, match="at least 2 dimensions"):
        qc.spatial(arr(1, 2, 3), suspect_z=3, min_scale=1)


# ------------------------------------------------------------------------------------------
# cross variable


def test_cross_variable_dew_point_above_air_temperature():
    t = arr(280, 280, 280, 280, nan, 280)
    td = arr(275, 280.4, 281, 290, 270, nan)
    out = qc.cross_variable(t, td, rule="a_ge_b", tolerance=0.5, fail_tolerance=5.0)
    np.testing.assert_array_equal(out, [G, G, S, F, N, N])
    np.testing.assert_array_equal(qc.cross_variable(td, t, rule="a_le_b", tolerance=0.5), [G, G, S, S, N, N])


def test_cross_variable_bad_parameters():
    with pytest.raises(QCError, match=r"unknown cross-variable rule 'a_gt_b'; valid rules are \['a_ge_b', 'a_le_b'\]"):
        qc.cross_variable(arr(1), arr(1), rule="a_gt_b", tolerance=0)
    with pytest.raises(QCError, match="fail_tolerance must be greater than tolerance"):
        qc.cross_variable(arr(1), arr(1), tolerance=1, fail_tolerance=0.5)
    with pytest.raises(QCError, match="broadcastable"):
        qc.cross_variable(arr(1, 2), arr(1, 2, 3), tolerance=1)


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


def test_spike_at_chunk_boundary_equals_numpy():
    x = 10 + np.zeros(20)
    x[9] = 30.0  # chunks of 10: the spike is the last value of the first chunk
    x[10] = 10.2
    x[14], x[15] = nan, 25.0
    for chunks in (10, 5, 9, 1):
        d = da.from_array(x, chunks=chunks)
        for fn, kw in ((qc.spike, {"suspect": 3}), (qc.rate_of_change, {"suspect_per_step": 3})):
            np.testing.assert_array_equal(fn(d, **kw).compute(), fn(x, **kw))
    assert qc.spike(x, suspect=3)[9] == S and qc.spike(x, suspect=3)[10] == G


@pytest.mark.parametrize("slab", [50, 300])  # rows of one field at a time / several fields
@pytest.mark.parametrize("name", ["spike", "rate_of_change", "flat_line", "spatial"])
def test_slab_processing_gives_the_same_answer(name, slab, monkeypatch):
    fn, kw = CHECKS[name]
    x = _field()
    whole = fn(x, **kw)
    monkeypatch.setattr(C, "SLAB_CELLS", slab)
    np.testing.assert_array_equal(fn(x, **kw), whole)


def test_float32_stays_float32_and_integers_are_accepted():
    x = _field("float32")
    np.testing.assert_array_equal(qc.spike(x, suspect=3.0), qc.spike(x.astype("float64"), suspect=3.0))
    ints = np.array([1, 1, 9, 1, 1])
    np.testing.assert_array_equal(qc.spike(ints, suspect=3), [N, G, S, G, N])
    with pytest.raises(QCError, match="numeric values"):
        qc.missing(np.array(["a", "b"]))


# ------------------------------------------------------------------------------------------
# temporal checks against slow, obviously-right loops (random series with gaps and repeats)


def _prev(x, i, reach, step=-1):
    for k in range(1, reach + 1):
        j = i + step * k
        if 0 <= j < len(x) and not np.isnan(x[j]):
            return j
    return None


def _ref_spike(x, suspect, fail, max_gap):
    out = np.ones(len(x), np.uint8)
    for i in range(len(x)):
        if np.isnan(x[i]):
            out[i] = M
            continue
        p, n = _prev(x, i, max_gap + 1, -1), _prev(x, i, max_gap + 1, +1)
        if p is None or n is None:
            out[i] = N
            continue
        dp, dn = x[i] - x[p], x[i] - x[n]
        e = min(dp, dn) if dp > 0 and dn > 0 else min(-dp, -dn) if dp < 0 and dn < 0 else 0.0
        out[i] = F if fail is not None and e > fail else S if e > suspect else G
    return out


def _ref_roc(x, s, f, max_gap):
    out = np.ones(len(x), np.uint8)
    for i in range(len(x)):
        if np.isnan(x[i]):
            out[i] = M
            continue
        j = _prev(x, i, max_gap + 1)
        if j is None:
            out[i] = N
            continue
        rate = abs(x[i] - x[j]) / (i - j)
        jj = _prev(x, j, max_gap + 1)
        exempt = (
            jj is not None and abs(x[j] - x[jj]) / (j - jj) > s and abs(x[i] - x[jj]) <= s * (i - jj)
        )
        if not exempt:
            out[i] = F if f is not None and rate > f else S if rate > s else G
    return out


def _ref_flat(x, tol, sc, fc, ib):
    out = np.ones(len(x), np.uint8)
    for i in range(len(x)):
        if np.isnan(x[i]):
            out[i] = M
            continue
        for n, code in ((sc, S), (fc, F)):
            if n is None or i - n < 0:
                continue
            w = x[i - n : i + 1]
            if not np.isnan(w).any() and w.max() - w.min() <= tol and (ib is None or x[i] >= ib):
                out[i] = code
    return out


@pytest.mark.parametrize("seed", range(8))
def test_temporal_checks_match_slow_loops(seed):
    rng = np.random.default_rng(100 + seed)
    t, cells = int(rng.integers(3, 60)), 5
    x = np.round(rng.normal(0, 2.0, (t, cells)) * 2) / 2  # quantised: repeats happen
    x[rng.random((t, cells)) < 0.15] = nan
    x[rng.random((t, cells)) < 0.05] += 20
    flat_cell = rng.integers(0, cells)
    x[t // 3 : t // 3 + 9, flat_cell] = 1.5
    mg = int(rng.integers(0, 3))
    sc = int(rng.integers(1, 4))
    kw_flat = dict(tolerance=float(rng.choice([0.0, 0.5, 1.0])), suspect_count=sc, fail_count=sc + 3, ignore_below=None)
    if seed % 2:
        kw_flat["ignore_below"] = 0.0
    for col in range(cells):
        xc = x[:, col]
        np.testing.assert_array_equal(qc.spike(x, suspect=2.0, fail=6.0, max_gap=mg)[:, col], _ref_spike(xc, 2.0, 6.0, mg))
        np.testing.assert_array_equal(
            qc.rate_of_change(x, suspect_per_step=2.0, fail_per_step=6.0, max_gap=mg)[:, col], _ref_roc(xc, 2.0, 6.0, mg)
        )
        np.testing.assert_array_equal(
            qc.flat_line(x, **kw_flat)[:, col],
            _ref_flat(xc, kw_flat["tolerance"], sc, sc + 3, kw_flat["ignore_below"]),
        )
    # and the gap-free fast paths
    filled = np.nan_to_num(x, nan=0.25)
    for col in range(cells):
        np.testing.assert_array_equal(qc.spike(filled, suspect=2.0)[:, col], _ref_spike(filled[:, col], 2.0, None, mg))
        np.testing.assert_array_equal(
            qc.rate_of_change(filled, suspect_per_step=2.0)[:, col], _ref_roc(filled[:, col], 2.0, None, 1)
        )


def test_flat_line_dense_candidates_use_the_whole_block_path(monkeypatch):
    rng = np.random.default_rng(9)
    x = np.round(rng.normal(0, 0.02, (40, 30)), 2)  # nearly flat everywhere
    kw = dict(tolerance=0.03, suspect_count=4, fail_count=8)
    monkeypatch.setattr(C, "_FLAT_GATHER_MAX", 1.0)  # always gather each candidate's window
    gathered = qc.flat_line(x, **kw)
    monkeypatch.setattr(C, "_FLAT_GATHER_MAX", 0.0)  # always double over the whole block
    np.testing.assert_array_equal(qc.flat_line(x, **kw), gathered)
    assert (gathered >= S).any() and (gathered == G).any()
    for col in range(30):
        np.testing.assert_array_equal(gathered[:, col], _ref_flat(x[:, col], 0.03, 4, 8, None))
