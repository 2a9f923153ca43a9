"""The probabilistic baselines (steps, local_probability, neighbourhood_persistence): registry, the
`ProbabilisticNowcaster` contract, motion, reproducibility, fallbacks, and inputs left untouched."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from forecast.errors import BadInputError
from forecast.nowcast import BASELINES, PROBABILISTIC_BASELINES, ProbabilisticNowcaster, get_method

STEP = np.timedelta64(5, "m")
T0 = np.datetime64("2026-07-15T12:00", "ns")
THR = [0.1, 1.0, 5.0, 10.0]
N = 64
U, V = 2.0, 1.0  # px per step along x and y
N_LEADS = 4


def blob_field(t: float) -> np.ndarray:
    """Two rain cells drifting by (U, V) px per step; one grows and one decays a little (so that the AR
    models of STEPS see correlations below 1)."""
    yy, xx = np.mgrid[0:N, 0:N].astype(float)
    f = 14.0 * np.exp(0.03 * t) * np.exp(-((yy - 22 - V * t) ** 2 + (xx - 18 - U * t) ** 2) / (2 * 5.0**2))
    f += 6.0 * np.exp(-0.04 * t) * np.exp(-((yy - 40 - V * t) ** 2 + (xx - 30 - U * t) ** 2) / (2 * 7.0**2))
    return f


def as_inputs(fields) -> xr.DataArray:
    fields = np.asarray(fields, dtype=np.float32)
    nt = fields.shape[0]
    return xr.DataArray(
        fields, dims=("time", "y", "x"), name="precipitation_rate",
        coords={"time": T0 + np.arange(nt) * STEP, "y": ("y", 3.0e6 - 1000.0 * np.arange(N), {"units": "m"}),
                "x": ("x", 4.3e6 + 1000.0 * np.arange(N), {"units": "m"})},
        attrs={"units": "mm h-1", "standard_name": "lwe_precipitation_rate"})


@pytest.fixture(scope="module")
def moving():
    return as_inputs(np.stack([blob_field(t) for t in range(4)]))


@pytest.fixture(scope="module")
def probs(moving):
    return {name: get_method(name).predict_probabilities(moving, n_leads=N_LEADS, step=STEP, thresholds=THR)
            for name in PROBABILISTIC_BASELINES}


def centre_x(p: np.ndarray) -> float:
    w = np.nan_to_num(p)
    return float((w * np.arange(N)[None, :]).sum() / w.sum())


def test_registry_names_and_protocol():
    assert set(PROBABILISTIC_BASELINES).isdisjoint(BASELINES)
    for name in PROBABILISTIC_BASELINES:
        m = get_method(name)
        assert isinstance(m, ProbabilisticNowcaster) and m.name == name
    assert not isinstance(get_method("persistence"), ProbabilisticNowcaster)


@pytest.mark.parametrize("name", PROBABILISTIC_BASELINES)
def test_shape_coords_and_range(name, moving, probs):
    p = probs[name]
    assert p.dims == ("threshold", "lead_time", "y", "x")
    assert p.shape == (len(THR), N_LEADS, N, N) and p.dtype == np.float32
    assert p["threshold"].values.tolist() == THR and p["threshold"].attrs["units"] == "mm h-1"
    assert (p["lead_time"].values == np.arange(1, N_LEADS + 1) * STEP).all()
    assert p["init_time"].values == moving["time"].values[-1]
    assert (p["x"].values == moving["x"].values).all()
    assert p.attrs["method"] == name and p.attrs["units"] == "1" and "fallback" not in p.attrs
    v = p.values
    assert np.isfinite(v).all() and v.min() >= 0 and v.max() <= 1
    assert (np.diff(v, axis=0) <= 0).all()  # non-increasing across thresholds
    assert 0 < v[1].mean() < 1 and v[1].max() > 0.5  # not trivially empty


@pytest.mark.parametrize("name", ["steps", "local_probability"])
def test_probability_follows_the_motion(name, moving, probs):
    """The centre of P(>= 1 mm/h) moves east with the blobs; persistence's stays where the rain was."""
    last = centre_x((moving.values[-1] >= 1.0).astype(float))
    p = probs[name].values[1]
    shift = centre_x(p[-1]) - last
    assert shift == pytest.approx(U * N_LEADS, abs=2.5)
    still = centre_x(probs["neighbourhood_persistence"].values[1, -1]) - last
    assert abs(still) < 1.0


def test_steps_reproducible_with_seed_and_ensemble(moving):
    a = get_method("steps", n_ens_members=4).predict_ensemble(moving, n_leads=2, step=STEP)
    b = get_method("steps", n_ens_members=4).predict_ensemble(moving, n_leads=2, step=STEP)
    c = get_method("steps", n_ens_members=4, seed=7).predict_ensemble(moving, n_leads=2, step=STEP)
    assert a.dims == ("member", "lead_time", "y", "x") and a.sizes["member"] == 4
    np.testing.assert_array_equal(a.values, b.values)
    assert not np.array_equal(a.values, c.values)
    assert np.nanmax(np.nanstd(a.values, axis=0)) > 0  # members differ
    det = get_method("steps", n_ens_members=4).predict(moving, n_leads=2, step=STEP)
    np.testing.assert_allclose(det.values, a.values.mean(axis=0), rtol=1e-5, atol=1e-5)
    p = get_method("steps", n_ens_members=4).predict_probabilities(moving, n_leads=2, step=STEP, thresholds=THR)
    frac = (a.values[None] >= np.array(THR)[:, None, None, None, None]).mean(axis=1)
    np.testing.assert_allclose(p.values, frac, atol=1e-6)


def test_neighbourhood_fraction_by_hand(moving, probs):
    p = probs["neighbourhood_persistence"].values
    last = moving.values[-1].astype(np.float64)
    y, x = 22, 27
    window = last[y - 4:y + 5, x - 4:x + 5]
    assert p[2, 0, y, x] == pytest.approx((window >= 5.0).mean(), abs=1e-6)
    assert (p[:, 0] == p[:, -1]).all()  # the same at every lead
    near_edge = last[0:5, 0:5]  # the window of (0, 0) reaches beyond the grid: those cells do not count
    assert p[0, 0, 0, 0] == pytest.approx((near_edge >= 0.1).mean(), abs=1e-6)


@pytest.mark.parametrize("name", PROBABILISTIC_BASELINES)
def test_dry_inputs_fall_back_to_zero_one(name):
    dry = as_inputs(np.zeros((4, N, N)))
    p = get_method(name).predict_probabilities(dry, n_leads=2, step=STEP, thresholds=THR)
    assert (p.values == 0).all()
    if name != "neighbourhood_persistence":  # a dry field is a valid input for persistence
        assert "no precipitation" in p.attrs["fallback"]


@pytest.mark.parametrize("name", ["steps", "local_probability"])
def test_missing_inputs_fall_back_without_raising(name, moving):
    gone = moving.copy(data=np.full(moving.shape, np.nan, np.float32))
    p = get_method(name).predict_probabilities(gone, n_leads=2, step=STEP, thresholds=THR)
    assert "missing" in p.attrs["fallback"] and np.isnan(p.values).all()
    # a hole in the AR inputs of STEPS: extrapolation, members all equal, probabilities 0/1
    holed = moving.copy(data=moving.values.copy())
    holed.values[-3] = np.nan  # motion from the last two slots still works
    if name == "steps":
        q = get_method(name, n_ens_members=3).predict_probabilities(holed, n_leads=2, step=STEP, thresholds=THR)
        assert q.attrs["fallback"].startswith("extrapolation")
        assert set(np.unique(q.values)) <= {0.0, 1.0}


def test_masked_cells_are_treated_as_missing(moving):
    mask = xr.ones_like(moving, dtype=bool)
    mask.values[-1, 10:30, 10:30] = False
    mask.values[:, 10:30, 10:30] = False
    p = get_method("neighbourhood_persistence").predict_probabilities(moving, n_leads=1, step=STEP,
                                                                      thresholds=THR, mask=mask)
    assert np.isnan(p.values[:, :, 10:30, 10:30]).all() and np.isfinite(p.values[:, :, 40:, 40:]).all()


@pytest.mark.parametrize("name", PROBABILISTIC_BASELINES)
def test_inputs_never_modified(name, moving):
    before = moving.copy(deep=True)
    get_method(name).predict_probabilities(moving, n_leads=2, step=STEP, thresholds=THR)
    xr.testing.assert_identical(moving, before)


@pytest.mark.parametrize(
    ("name", "options", "match"),
    [("steps", {"n_ens_members": 1}, "n_ens_members"), ("steps", {"seed": -1}, "seed"),
     ("local_probability", {"slope": -2}, "slope"), ("neighbourhood_persistence", {"size": 4}, "size")],
)
def test_bad_options(name, options, match):
    with pytest.raises(BadInputError, match=match):
        get_method(name, **options)


@pytest.mark.parametrize("name", PROBABILISTIC_BASELINES)
@pytest.mark.parametrize("thresholds", [[], [5, 1], ["a"], [1, np.nan]])
def test_bad_thresholds(name, thresholds, moving):
    with pytest.raises(BadInputError, match="thresholds"):
        get_method(name).predict_probabilities(moving, n_leads=1, step=STEP, thresholds=thresholds)
