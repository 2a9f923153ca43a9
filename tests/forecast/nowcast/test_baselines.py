"""Tests of forecast.model.baselines: the registry, each baseline's behaviour, its fallbacks and its contract."""

from __future__ import annotations

import copy
import datetime as dt
from datetime import datetime, timezone

import numpy as np
import pytest
import xarray as xr

from forecast.nowcast import (
    Climatology,
    NotFittedError,
    Nowcaster,
    available_methods,
    get_method,
)
from qc.flags import usable_mask

STEP = np.timedelta64(5, "m")
T0 = np.datetime64("2026-07-15T12:00", "ns")
ALL = ("climatology", "extrapolation", "persistence", "sprog")
MOTION = ("extrapolation", "sprog")
# (centre y, centre x, amplitude mm/h, sigma px, growth per step): cells that also grow and decay,
# so that S-PROG's AR model sees correlations below 1
CELLS = [(40, 30, 12.0, 6.0, 0.03), (80, 50, 6.0, 9.0, -0.03), (60, 20, 20.0, 4.0, -0.05),
         (95, 35, 8.0, 7.0, 0.02), (30, 60, 3.0, 3.0, -0.1)]
U, V = 2.0, -1.0  # px per step along x and y


def blobs(t: float, n: int = 128, cells=CELLS, u: float = U, v: float = V) -> np.ndarray:
    yy, xx = np.mgrid[0:n, 0:n].astype(float)
    f = np.zeros((n, n))
    for cy, cx, a, s, g in cells:
        f += a * np.exp(g * t) * np.exp(-((yy - (cy + v * t)) ** 2 + (xx - (cx + u * t)) ** 2) / (2 * s * s))
    return f


def as_inputs(fields, *, t0=T0, step=STEP, grid_m: float = 1000.0) -> xr.DataArray:
    fields = np.asarray(fields, dtype=np.float32)
    nt, ny, nx = fields.shape
    return xr.DataArray(
        fields, dims=("time", "y", "x"), name="precipitation_rate",
        coords={"time": t0 + np.arange(nt) * step,
                "y": ("y", 3.0e6 - grid_m * np.arange(ny), {"units": "m"}),
                "x": ("x", 4.3e6 + grid_m * np.arange(nx), {"units": "m"})},
        attrs={"units": "mm h-1", "standard_name": "lwe_precipitation_rate"})


def moving_inputs(n_slots: int = 3, **kw) -> xr.DataArray:
    return as_inputs(np.stack([blobs(t, **kw) for t in range(n_slots)]))


def fitted_climatology(inputs: xr.DataArray) -> Climatology:
    train = as_inputs(np.ones((24 * 12, *inputs.shape[1:])), t0=T0 - np.timedelta64(1, "D"))
    return get_method("climatology", min_samples_per_cell=1).fit(train)


def method(name: str, inputs: xr.DataArray) -> Nowcaster:
    return fitted_climatology(inputs) if name == "climatology" else get_method(name)


def rmse(a: np.ndarray, b: np.ndarray, ok: np.ndarray) -> float:
    return float(np.sqrt(np.mean((a[ok] - b[ok]) ** 2)))


# --- the registry ---------------------------------------------------------------------------------


def test_available_methods():
    # the probabilistic baselines are tested in test_probabilistic_baselines.py
    assert available_methods() == tuple(sorted((*ALL, "local_probability", "neighbourhood_persistence", "steps")))


@pytest.mark.parametrize("name", [*ALL, "SProg", "PERSISTENCE"])
def test_registry_returns_a_fresh_nowcaster(name):
    m = get_method(name)
    assert isinstance(m, Nowcaster)
    assert m.name == name.lower()
    assert get_method(name) is not m


@pytest.mark.parametrize("name", ["", "lk", "stepz", "persistance", None, 3])
def test_registry_rejects_unknown_names_listing_the_available_ones(name):
    with pytest.raises(ValueError, match=r"unknown nowcasting method .*available: climatology, extrapolation, "
                                         r"local_probability, neighbourhood_persistence, persistence, sprog, steps"):
        get_method(name)


@pytest.mark.parametrize(("name", "options", "match"), [
    ("persistence", {"window": 3}, "bad options for nowcasting method 'persistence'"),
    ("sprog", {"ar_order": 5}, "ar_order"),
    ("sprog", {"n_cascade_levels": 0}, "n_cascade_levels"),
    ("extrapolation", {"n_motion_frames": 1}, "n_motion_frames"),
    ("extrapolation", {"wet_threshold": -1.0}, "wet_threshold"),
    ("extrapolation", {"lk_options": {"dense": True}}, "unknown lk_options dense; allowed: decl_scale"),
    ("climatology", {"min_samples_per_cell": 0}, "min_samples_per_cell"),
])
def test_registry_rejects_bad_options(name, options, match):
    with pytest.raises(ValueError, match=match):
        get_method(name, **options)


# --- skill on an analytic moving field ------------------------------------------------------------


def test_extrapolation_and_sprog_beat_persistence_on_moving_cells():
    inputs = moving_inputs()
    truth = blobs(2 + 6)  # lead 6 after the last input (t = 2)
    fc = {m: get_method(m).predict(inputs, n_leads=6, step=STEP).sel(lead_time=6 * STEP).values
          for m in ("persistence", *MOTION)}
    ok = np.all([np.isfinite(f) for f in fc.values()], axis=0)
    assert ok.mean() > 0.8
    scores = {m: rmse(f, truth, ok) for m, f in fc.items()}
    assert scores["extrapolation"] < 0.3 * scores["persistence"], scores
    assert scores["sprog"] < 0.3 * scores["persistence"], scores


def test_extrapolation_recovers_the_displacement():
    inputs = moving_inputs()
    f = get_method("extrapolation").predict(inputs, n_leads=6, step=STEP)
    assert "fallback" not in f.attrs
    assert f.attrs["motion_x_px_per_step"] == pytest.approx(U, abs=0.05)
    assert f.attrs["motion_y_px_per_step"] == pytest.approx(V, abs=0.05)
    # 1 km pixels, 300 s steps, rows run southward (y decreases with the index)
    assert f.attrs["motion_u_m_s"] == pytest.approx(U * 1000 / 300, rel=0.03)
    assert f.attrs["motion_v_m_s"] == pytest.approx(-V * 1000 / 300, rel=0.03)
    # the strongest cell's peak moved by 6 steps of (U, V)
    one = [CELLS[2][:4] + (0.0,)]
    g = get_method("extrapolation").predict(moving_inputs(cells=one), n_leads=6, step=STEP)
    lead6 = np.nan_to_num(g.sel(lead_time=6 * STEP).values, nan=-1.0)
    y, x = np.unravel_index(np.argmax(lead6), lead6.shape)
    assert (y, x) == (60 + V * 8, 20 + U * 8)


def test_extrapolation_with_a_forecast_step_other_than_the_input_spacing():
    inputs = moving_inputs()
    five = get_method("extrapolation").predict(inputs, n_leads=6, step=STEP)
    ten = get_method("extrapolation").predict(inputs, n_leads=3, step=np.timedelta64(10, "m"))
    np.testing.assert_array_equal(ten.lead_time.values, five.lead_time.values[1::2])
    a, b = ten.values, five.values[1::2]
    ok = np.isfinite(a) & np.isfinite(b)
    assert ok.mean() > 0.8
    np.testing.assert_allclose(a[ok], b[ok], atol=0.05)


def test_sprog_falls_back_to_extrapolation_when_the_field_only_moves():
    # pure translation: lag-1 correlation 1, pysteps' AR estimation refuses a nonstationary process
    steady = [c[:4] + (0.0,) for c in CELLS]
    inputs = moving_inputs(cells=steady)
    s = get_method("sprog").predict(inputs, n_leads=4, step=STEP)
    e = get_method("extrapolation").predict(inputs, n_leads=4, step=STEP)
    assert s.attrs["fallback_method"] == "extrapolation"
    assert "nonstationary" in s.attrs["fallback"]
    np.testing.assert_allclose(s.values, e.values, equal_nan=True)


@pytest.mark.parametrize(("name", "options"), [("extrapolation", {}), ("extrapolation", {"interp_order": 3}),
                                               ("sprog", {})])
def test_motion_methods_keep_precipitation_non_negative(name, options):
    fields = np.stack([blobs(t) for t in range(3)])
    fields[:, :, :10] = 0.0  # sharp dry edge: cubic interpolation overshoots below 0 there
    f = get_method(name, **options).predict(as_inputs(fields), n_leads=12, step=STEP)
    assert np.nanmin(f.values) >= 0.0
    assert np.isfinite(f.values).mean() > 0.5


# --- persistence ----------------------------------------------------------------------------------


def test_persistence_known_values_with_gap_filling():
    nan = np.nan
    fields = [[[1.0, 2.0, nan, 9.0]],
              [[3.0, nan, nan, 9.0]],
              [[nan, nan, 5.0, 9.0]]]
    inputs = as_inputs(fields)
    f = get_method("persistence").predict(inputs, n_leads=3, step=STEP)
    expected = [[3.0, 2.0, 5.0, 9.0]]
    for k in range(3):
        np.testing.assert_array_equal(f.values[k], expected)
    # a mask that rules out the last value of the last column: taken from the slot before instead
    fields[1][0][3] = 7.0
    mask = xr.DataArray(np.ones((3, 1, 4), bool), dims=("time", "y", "x"), coords={"time": inputs.time})
    mask[-1, 0, 3] = False
    g = get_method("persistence").predict(as_inputs(fields), n_leads=1, step=STEP, mask=mask)
    np.testing.assert_array_equal(g.values[0], [[3.0, 2.0, 5.0, 7.0]])
    assert g.attrs["input_coverage"] == pytest.approx(0.25)


def test_persistence_with_a_qc_mask_from_the_flags():
    values = np.array([[[1.0, 1.0, 1.0]], [[2.0, 400.0, 2.0]]])
    qc = np.array([[[1, 1, 1]], [[1, 4, 3]]], dtype=np.uint8)  # GOOD, FAIL, SUSPECT
    tests = np.zeros_like(qc, dtype=np.uint32)
    tests[1, 0, 2] = 1 << 17  # REVIEWED_REJECTED
    inputs = as_inputs(values)
    mask = usable_mask(xr.DataArray(qc, dims=inputs.dims, coords={"time": inputs.time}),
                       xr.DataArray(tests, dims=inputs.dims, coords={"time": inputs.time}))
    f = get_method("persistence").predict(inputs, n_leads=1, step=STEP, mask=mask)
    np.testing.assert_array_equal(f.values[0], [[2.0, 1.0, 1.0]])


def test_persistence_of_all_missing_inputs_is_all_missing():
    f = get_method("persistence").predict(as_inputs(np.full((2, 4, 5), np.nan)), n_leads=2, step=STEP)
    assert np.isnan(f.values).all()
    assert f.attrs["input_coverage"] == 0.0


# --- climatology ----------------------------------------------------------------------------------


def hourly_pattern(times: np.ndarray, ny: int = 4, nx: int = 5) -> np.ndarray:
    hours = ((times - times.astype("datetime64[D]")) // np.timedelta64(1, "h")).astype(float)
    cell = np.arange(ny * nx, dtype=float).reshape(ny, nx)
    return hours[:, None, None] * 10.0 + cell[None]


def test_climatology_learns_from_training_data_only_and_knows_the_hour():
    train_times = np.datetime64("2026-07-01T00:00", "ns") + np.arange(2 * 288) * STEP  # two days
    train = as_inputs(hourly_pattern(train_times), t0=train_times[0])
    clim = get_method("climatology", min_samples_per_cell=12).fit(train)
    # verification period: the same pattern shifted by +100 everywhere; none of it may leak in
    ver_times = T0 + np.arange(4) * STEP + np.timedelta64(40, "m")  # last input 12:55
    inputs = as_inputs(hourly_pattern(ver_times) + 100.0, t0=ver_times[0])
    f = clim.predict(inputs, n_leads=3, step=np.timedelta64(30, "m"))  # valid 13:25, 13:55, 14:25
    cell = np.arange(20, dtype=float).reshape(4, 5)
    for k, hour in enumerate((13, 13, 14)):
        np.testing.assert_allclose(f.values[k], hour * 10.0 + cell, rtol=1e-6)
    assert f.attrs["train_start"].startswith("2026-07-01T00:00")
    assert f.attrs["train_samples"] == 2 * 288 * 20
    assert "fallback" not in f.attrs


def test_climatology_uses_the_domain_mean_of_the_hour_when_cells_have_too_few_samples():
    train_times = np.datetime64("2026-07-01T00:00", "ns") + np.arange(288) * STEP  # 12 samples per hour
    train = as_inputs(hourly_pattern(train_times), t0=train_times[0])
    inputs = as_inputs(np.zeros((1, 4, 5)), t0=np.datetime64("2026-07-02T06:00", "ns"))
    f = get_method("climatology", min_samples_per_cell=13).fit(train).predict(inputs, n_leads=1, step=STEP)
    np.testing.assert_allclose(f.values[0], 6 * 10.0 + np.arange(20).mean(), rtol=1e-6)
    g = get_method("climatology", min_samples_per_cell=12).fit(train).predict(inputs, n_leads=1, step=STEP)
    np.testing.assert_allclose(g.values[0], 6 * 10.0 + np.arange(20.0).reshape(4, 5), rtol=1e-6)


def test_climatology_fit_honours_the_mask_block_by_block():
    times = np.datetime64("2026-07-01T00:00", "ns") + np.arange(288) * STEP
    vals = np.ones((288, 2, 2))
    vals[::7, 0, 0] = 999.0  # faulty values that QC flagged
    obs = as_inputs(vals, t0=times[0])
    mask = xr.DataArray(vals < 500, dims=obs.dims, coords={"time": obs.time})
    clim = get_method("climatology", min_samples_per_cell=1)
    clim.fit_block = 50  # several blocks, the last one partial
    clim.fit(obs, mask=mask)
    assert clim.train_samples_ == 288 * 4 - len(range(0, 288, 7))
    f = clim.predict(as_inputs(np.ones((1, 2, 2)), t0=T0), n_leads=24, step=np.timedelta64(1, "h"))
    np.testing.assert_allclose(f.values, 1.0)


def test_climatology_errors():
    inputs = as_inputs(np.zeros((1, 4, 5)))
    with pytest.raises(NotFittedError, match=r"fitted .* before predict"):
        get_method("climatology").predict(inputs, n_leads=1, step=STEP)
    with pytest.raises(ValueError, match="obs holds no usable value"):
        get_method("climatology").fit(as_inputs(np.full((3, 4, 5), np.nan)))
    with pytest.raises(ValueError, match=r"obs must have dims \(time, y, x\)"):
        get_method("climatology").fit(as_inputs(np.ones((3, 4, 5))).rename(x="lon"))
    with pytest.raises(ValueError, match="mask has 2 entries along 'time', obs has 3"):
        get_method("climatology").fit(as_inputs(np.ones((3, 4, 5))),
                                      mask=xr.DataArray(np.ones((2, 4, 5), bool), dims=("time", "y", "x")))
    clim = get_method("climatology").fit(as_inputs(np.ones((3, 4, 5))))
    with pytest.raises(ValueError, match=r"\(4, 6\) grid; climatology was fitted on \(4, 5\)"):
        clim.predict(as_inputs(np.zeros((1, 4, 6))), n_leads=1, step=STEP)
    with pytest.raises(ValueError, match="'y' coordinate of inputs differs"):
        clim.predict(as_inputs(np.zeros((1, 4, 5)), grid_m=2000.0), n_leads=1, step=STEP)


# --- degraded inputs: a result with a reason, never an exception ----------------------------------


@pytest.mark.parametrize("name", MOTION)
@pytest.mark.parametrize(("kind", "fill", "reason"), [
    ("all dry", 0.0, "no precipitation >= 0.1 mm h-1"),
    ("drizzle only", 0.05, "no precipitation >= 0.1 mm h-1"),
    ("all missing", np.nan, "missing or unusable"),
])
def test_motion_methods_fall_back_to_persistence_on_dry_or_missing_inputs(name, kind, fill, reason):
    inputs = as_inputs(np.full((3, 64, 64), fill))
    f = get_method(name).predict(inputs, n_leads=4, step=STEP)
    assert reason in f.attrs["fallback"], kind
    assert f.attrs["fallback_method"] == "persistence"
    assert f.attrs["method"] == name
    np.testing.assert_array_equal(f.values, np.full((4, 64, 64), fill, np.float32))


@pytest.mark.parametrize("name", MOTION)
def test_motion_methods_fall_back_when_qc_masks_everything(name):
    inputs = moving_inputs()
    mask = xr.zeros_like(inputs, dtype=bool)
    f = get_method(name).predict(inputs, n_leads=2, step=STEP, mask=mask)
    assert "missing or unusable" in f.attrs["fallback"]
    assert np.isnan(f.values).all()


@pytest.mark.parametrize("name", MOTION)
def test_a_missing_middle_slot_gives_a_fallback_not_an_exception(name):
    fields = np.stack([blobs(t) for t in range(3)])
    fields[1] = np.nan
    f = get_method(name).predict(as_inputs(fields), n_leads=2, step=STEP)
    assert f.attrs["fallback_method"] == "persistence"
    assert "entirely missing" in f.attrs["fallback"]
    np.testing.assert_array_equal(f.values[0], fields[2].astype(np.float32))


def test_with_the_oldest_slot_missing_extrapolation_runs_and_sprog_falls_back_to_it():
    fields = np.stack([blobs(t) for t in range(3)])
    fields[0] = np.nan
    e = get_method("extrapolation").predict(as_inputs(fields), n_leads=2, step=STEP)
    assert "fallback" not in e.attrs
    assert e.attrs["motion_x_px_per_step"] == pytest.approx(U, abs=0.1)
    s = get_method("sprog").predict(as_inputs(fields), n_leads=2, step=STEP)
    assert s.attrs["fallback_method"] == "extrapolation"
    assert "2026-07-15T12:00:00" in s.attrs["fallback"] and "entirely missing" in s.attrs["fallback"]
    np.testing.assert_allclose(s.values, e.values, equal_nan=True)


def test_sprog_with_a_forecast_step_other_than_the_input_spacing():
    inputs = moving_inputs()
    for step, n in ((np.timedelta64(10, "m"), 3), (np.timedelta64(150, "s"), 12)):
        f = get_method("sprog").predict(inputs, n_leads=n, step=step)
        assert "fallback" not in f.attrs
        truth = blobs(2 + n * step / STEP)
        ok = np.isfinite(f.values[-1])
        assert rmse(f.values[-1], truth, ok) < 0.3 * rmse(inputs.values[-1], truth, ok)


def test_extrapolation_fills_holes_of_the_last_slot_from_earlier_slots_moved_forward():
    steady = [c[:4] + (0.0,) for c in CELLS]
    fields = np.stack([blobs(t, cells=steady) for t in range(3)])
    fields[2, 55:66, 20:31] = np.nan  # a hole over a moving cell in the last slot only
    f = get_method("extrapolation").predict(as_inputs(fields), n_leads=1, step=STEP)
    truth = blobs(3, cells=steady)
    hole_next = (slice(55 + int(V), 66 + int(V)), slice(20 + int(U), 31 + int(U)))
    assert np.isfinite(f.values[0][hole_next]).all()
    np.testing.assert_allclose(f.values[0][hole_next], truth[hole_next], atol=0.5)


def test_climatology_ignores_missing_inputs():
    inputs = as_inputs(np.full((2, 4, 5), np.nan))
    f = fitted_climatology(inputs).predict(inputs, n_leads=2, step=STEP)
    np.testing.assert_allclose(f.values, 1.0)
    assert "fallback" not in f.attrs


# --- the output contract and untouched inputs -----------------------------------------------------


@pytest.mark.parametrize("name", ALL)
def test_output_dims_coords_dtype_and_attrs(name):
    inputs = moving_inputs(n_slots=4)
    inputs = inputs.assign_coords(lat=(("y", "x"), np.zeros(inputs.shape[1:])),
                                  precipitation_rate_revision=("time", np.zeros(4, int)))
    f = method(name, inputs).predict(inputs, n_leads=5, step=dt.timedelta(minutes=5))
    assert f.dims == ("lead_time", "y", "x")
    assert f.shape == (5, *inputs.shape[1:])
    assert f.dtype == np.float32
    np.testing.assert_array_equal(f.lead_time.values, np.arange(1, 6) * STEP)
    assert f.lead_time.dtype == np.dtype("timedelta64[ns]")
    init = inputs.time.values[-1]
    assert f.init_time.values == init
    np.testing.assert_array_equal(f.valid_time.values, init + np.arange(1, 6) * STEP)
    np.testing.assert_array_equal(f.y.values, inputs.y.values)
    np.testing.assert_array_equal(f.x.values, inputs.x.values)
    assert "lat" in f.coords and "precipitation_rate_revision" not in f.coords
    assert f.name == "precipitation_rate"
    assert f.attrs["units"] == "mm h-1"
    assert f.attrs["method"] == name
    assert "fallback" not in f.attrs
    assert np.nanmin(f.values) >= 0.0


@pytest.mark.parametrize("name", ALL)
def test_inputs_and_mask_are_never_modified(name):
    fields = np.stack([blobs(t) for t in range(4)])
    fields[-1, 10:20, 10:20] = np.nan
    inputs = as_inputs(fields)
    mask = xr.DataArray(np.ones(inputs.shape[1:], bool), dims=("y", "x"))
    mask[30:40, 30:40] = False
    before, mask_before = inputs.copy(deep=True), mask.copy(deep=True)
    attrs = copy.deepcopy(inputs.attrs)
    method(name, inputs).predict(inputs, n_leads=3, step=STEP, mask=mask)
    xr.testing.assert_identical(inputs, before)
    xr.testing.assert_identical(mask, mask_before)
    assert inputs.attrs == attrs


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize(("kwargs", "match"), [
    ({"n_leads": 0}, "n_leads must be a positive integer"),
    ({"n_leads": -3}, "n_leads must be a positive integer"),
    ({"n_leads": 2.0}, "n_leads must be a positive integer"),
    ({"n_leads": True}, "n_leads must be a positive integer"),
    ({"step": 5}, "step must be a np.timedelta64"),
    ({"step": np.timedelta64(5)}, "step must be a np.timedelta64 with a unit"),
    ({"step": -STEP}, "step must be positive"),
])
def test_bad_arguments_name_the_argument(name, kwargs, match):
    inputs = moving_inputs(n_slots=3)
    args = {"n_leads": 2, "step": STEP, **kwargs}
    with pytest.raises(ValueError, match=match):
        method(name, inputs).predict(inputs, **args)


@pytest.mark.parametrize("name", ALL)
def test_bad_inputs_and_masks_name_the_argument(name):
    inputs = moving_inputs(n_slots=3)
    m = method(name, inputs)
    with pytest.raises(ValueError, match=r"inputs must have dims \(time, y, x\)"):
        m.predict(inputs.rename(y="lat", x="lon"), n_leads=1, step=STEP)
    with pytest.raises(ValueError, match="inputs must be an xarray.DataArray"):
        m.predict(inputs.to_dataset(), n_leads=1, step=STEP)
    with pytest.raises(ValueError, match="mask has 5 entries along 'y'"):
        m.predict(inputs, n_leads=1, step=STEP, mask=xr.DataArray(np.ones((5, 128), bool), dims=("y", "x")))
    with pytest.raises(ValueError, match="mask has dims"):
        m.predict(inputs, n_leads=1, step=STEP, mask=xr.DataArray(np.ones(2, bool), dims=("member",)))
    with pytest.raises(ValueError, match="mask must hold booleans"):
        m.predict(inputs, n_leads=1, step=STEP, mask=xr.ones_like(inputs))
    with pytest.raises(ValueError, match="strictly increasing"):
        m.predict(inputs.isel(time=[0, 2, 1]), n_leads=1, step=STEP)


@pytest.mark.parametrize("name", MOTION)
def test_motion_methods_need_three_evenly_spaced_slots(name):
    inputs = moving_inputs(n_slots=4)
    with pytest.raises(ValueError, match=f"inputs has 2 time slot\\(s\\); {name} needs at least 3"):
        get_method(name).predict(inputs[-2:], n_leads=1, step=STEP)
    with pytest.raises(ValueError, match="must be evenly spaced"):
        get_method(name).predict(inputs.isel(time=[0, 2, 3]), n_leads=1, step=STEP)


def test_transposed_inputs_are_accepted():
    inputs = moving_inputs()
    a = get_method("extrapolation").predict(inputs, n_leads=2, step=STEP)
    b = get_method("extrapolation").predict(inputs.transpose("x", "time", "y"), n_leads=2, step=STEP)
    xr.testing.assert_identical(a, b)


# --- realistic: the synthetic radar feed through the store ----------------------------------------


@pytest.fixture(scope="module")
def radar_obs(tmp_path_factory):
    from forecast.catalog import load_catalog
    from forecast.ingest.batch import ingest
    from forecast.synthetic.generate import generate_sample
    from forecast.stores import ObservationStore, open_observations

    from testkit import ROOT

    tmp = tmp_path_factory.mktemp("radar")
    cat = load_catalog(ROOT / "catalogs" / "radar_precip.yaml")  # 256 x 256, 1 km, 5 min
    generate_sample(cat, start=datetime(2026, 7, 15, 12, tzinfo=timezone.utc), hours=2, out=tmp / "files", seed=5)
    store = ObservationStore(tmp / "obs.icechunk", lock_timeout=60)
    ingest(cat, [tmp / "files"], store=store, scheduler="sync")
    return open_observations(cat, store=store)["precipitation_rate"]  # lazy (dask)


@pytest.mark.slow
def test_extrapolation_beats_persistence_on_the_synthetic_radar_feed(radar_obs):
    assert radar_obs.chunks is not None and radar_obs.sizes["time"] == 24
    scores: dict[str, list[float]] = {"persistence": [], "extrapolation": [], "sprog": []}
    for i in (5, 9, 13, 17):  # init times 12:25 ... 13:25; verified at +30 min
        inputs = radar_obs.isel(time=slice(i - 2, i + 1))
        fc = {m: get_method(m).predict(inputs, n_leads=6, step=STEP).sel(lead_time=6 * STEP) for m in scores}
        assert all("fallback" not in f.attrs for f in fc.values())
        obs = radar_obs.sel(time=fc["persistence"].valid_time).values
        ok = np.isfinite(obs) & np.all([np.isfinite(f.values) for f in fc.values()], axis=0)
        assert ok.mean() > 0.7
        for m, f in fc.items():
            scores[m].append(rmse(f.values, obs, ok))
    mean = {m: float(np.mean(s)) for m, s in scores.items()}
    # climatology fitted lazily on the first hour, used for the second
    clim = get_method("climatology", min_samples_per_cell=12).fit(radar_obs.isel(time=slice(0, 12)))
    c = clim.predict(radar_obs.isel(time=slice(15, 18)), n_leads=6, step=STEP)
    assert np.isfinite(c.values).all() and (c.values >= 0).all()
    assert mean["extrapolation"] < 0.95 * mean["persistence"], scores
    assert mean["sprog"] < mean["persistence"], scores
