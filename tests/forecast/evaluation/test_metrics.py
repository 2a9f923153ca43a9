"""forecast.evaluation.metrics: every metric against `scores` under the same conventions, plus exact properties.

Conventions shared with `scores` and how the differences are bridged here:
- invalid cells are NaN in the arrays handed to `scores` (its metrics skip NaN pairs; its threshold
  operator turns NaN into "no event");
- events use ``>=``: `scores` is given ``operator.ge`` / ``np.greater_equal`` explicitly;
- FSS zero padding: scores 2.7's ``zero_padding=True`` scores (ny+1) x (nx+1) windows, one row/column
  centred beyond the far edge, so the tests pad the fields with ``w // 2`` non-event cells themselves and
  use scores' interior mode (``zero_padding=False``), which then scores exactly one window per grid cell;
- FSS scores only valid centres: with invalid cells the tests hand `scores` one w x w crop per valid
  centre (a field on which interior mode has exactly one window) and aggregate over the crops;
- FSS without any event: `scores` says 0, we say NaN (tested separately).
"""

from __future__ import annotations

import json
import operator

import numpy as np
import pytest
import xarray as xr
from scores.categorical import ThresholdEventOperator
from scores.continuous import additive_bias, mae, rmse
from scores.continuous.correlation import pearsonr
from scores.spatial import fss_2d

from forecast.errors import BadInputError
from forecast.evaluation.metrics import CONVENTIONS, Verifier, categorical_scores, fss_counts

LEADS = np.array([5, 10, 15], dtype="timedelta64[m]")
T0 = np.datetime64("2026-07-15T12:00", "s")
STEP = np.timedelta64(30, "m")


def _blobs(rng: np.random.Generator, n_lead: int, ny: int, nx: int, shift: int = 0) -> np.ndarray:
    """Structured rain: a few Gaussian cells (peak up to ~20) drifting east by `shift` per lead."""
    yy, xx = np.mgrid[0:ny, 0:nx]
    out = np.zeros((n_lead, ny, nx))
    for _ in range(4):
        cy, cx = rng.uniform(0, ny), rng.uniform(0, nx)
        amp, sig = rng.uniform(3, 20), rng.uniform(1.5, 4)
        for lead in range(n_lead):
            out[lead] += amp * np.exp(-((yy - cy) ** 2 + (xx - cx - shift * lead) ** 2) / (2 * sig**2))
    return out


def make_case(kind: str, n_init: int = 4, ny: int = 20, nx: int = 24, seed: int = 1):
    """Lists of (fcst, obs, valid) per init: random, structured or integer fields, NaNs and invalid patches."""
    rng = np.random.default_rng(seed)
    cases = []
    for _ in range(n_init):
        if kind == "random":
            obs = rng.gamma(0.6, 3.0, (len(LEADS), ny, nx))
            fcst = np.clip(obs + rng.normal(0, 2.0, obs.shape), 0, None)
        elif kind == "structured":
            obs = _blobs(rng, len(LEADS), ny, nx)
            fcst = np.roll(obs, 2, axis=-1) * 0.8 + rng.gamma(0.3, 0.5, obs.shape)
        else:  # whole numbers: many values sit exactly on the thresholds 2 and 5 (operator >=)
            obs = np.round(rng.gamma(0.8, 2.5, (len(LEADS), ny, nx)))
            fcst = np.round(np.clip(obs + rng.normal(0, 1.5, obs.shape), 0, None))
        valid = rng.random(obs.shape) > 0.1
        valid[:, :3, :5] = False  # a blind corner (outside radar coverage)
        obs[:, :3, :5] = 50.0  # large values there must not count
        obs[:, 5, 7] = np.nan  # missing observations, also marked invalid
        valid[:, 5, 7] = False
        fcst[:, 9, 3] = np.nan  # a non-finite forecast left marked valid: the guard drops it
        cases.append((fcst.astype(np.float32), obs.astype(np.float32), valid))
    return cases


def fill(verifier: Verifier, method: str, cases, order=None) -> Verifier:
    for i in order if order is not None else range(len(cases)):
        fcst, obs, valid = cases[i]
        verifier.add(T0 + i * STEP, method, fcst, obs, valid)
    return verifier


def as_xr(cases):
    """(init, lead_time, y, x) DataArrays with NaN wherever a cell is not verifiable."""
    fc, ob = [], []
    for fcst, obs, valid in cases:
        keep = valid & np.isfinite(fcst) & np.isfinite(obs)
        fc.append(np.where(keep, fcst, np.nan).astype(np.float64))
        ob.append(np.where(keep, obs, np.nan).astype(np.float64))
    dims = ("init", "lead_time", "y", "x")
    return xr.DataArray(np.stack(fc), dims=dims), xr.DataArray(np.stack(ob), dims=dims)


def close(ours, theirs):
    np.testing.assert_allclose(np.asarray(ours, dtype=float), np.asarray(theirs, dtype=float), rtol=1e-6, atol=1e-6)


@pytest.fixture(scope="module", params=["random", "structured", "integer"])
def case(request):
    cases = make_case(request.param)
    ver = fill(Verifier(LEADS, [0.5, 2.0, 5.0], [1, 3, 9, 33]), "model", cases)
    return cases, ver.summary(reference=None, compare=())["methods"]["model"]


# ------------------------------------------------------------------------------------- vs scores


def test_continuous_matches_scores(case):
    cases, s = case
    fcst, obs = as_xr(cases)
    cont = s["continuous"]
    close(cont["rmse"], rmse(fcst, obs, preserve_dims="lead_time"))
    close(cont["mae"], mae(fcst, obs, preserve_dims="lead_time"))
    close(cont["bias"], additive_bias(fcst, obs, preserve_dims="lead_time"))
    close(cont["correlation"], pearsonr(fcst, obs, preserve_dims="lead_time"))
    keep = np.isfinite(fcst) & np.isfinite(obs)
    assert cont["n"] == keep.sum(["init", "y", "x"]).values.tolist()
    close(s["valid_fraction"], keep.mean(["init", "y", "x"]))


def test_categorical_matches_scores(case):
    cases, s = case
    fcst, obs = as_xr(cases)
    events = ThresholdEventOperator(default_op_fn=operator.ge)
    for t, block in s["categorical"].items():
        table = events.make_contingency_manager(fcst, obs, event_threshold=float(t)).transform(
            preserve_dims=["lead_time"]
        )
        counts = table.get_counts()
        assert block["hits"] == counts["tp_count"].values.tolist()
        assert block["misses"] == counts["fn_count"].values.tolist()
        assert block["false_alarms"] == counts["fp_count"].values.tolist()
        assert block["correct_negatives"] == counts["tn_count"].values.tolist()
        assert block["n"] == counts["total_count"].values.tolist()
        close(block["pod"], table.probability_of_detection())
        close(block["far"], table.false_alarm_ratio())
        close(block["csi"], table.critical_success_index())
        close(block["ets"], table.equitable_threat_score())
        close(block["frequency_bias"], table.frequency_bias())
        close(block["base_rate"], table.base_rate())


def test_fss_matches_scores_on_fully_valid_fields():
    rng = np.random.default_rng(7)
    cases = []
    for _ in range(3):
        obs = _blobs(rng, len(LEADS), 30, 34)
        fcst = np.roll(obs, 3, axis=-1) + rng.gamma(0.3, 0.5, obs.shape)
        cases.append((fcst, obs, np.ones(obs.shape, bool)))
    windows = [1, 3, 5, 9, 33]
    s = fill(Verifier(LEADS, [1.0, 5.0], windows), "model", cases).summary(reference=None, compare=())
    fcst, obs = as_xr(cases)
    for t in (1.0, 5.0):
        for w in windows:
            pad = {"y": (w // 2, w // 2), "x": (w // 2, w // 2)}
            theirs = fss_2d(
                fcst.pad(pad, constant_values=0.0),
                obs.pad(pad, constant_values=0.0),
                event_threshold=t,
                window_size=(w, w),
                spatial_dims=("y", "x"),
                zero_padding=False,
                threshold_operator=np.greater_equal,
                preserve_dims=["lead_time"],
            )
            close(s["methods"]["model"]["fss"][_k(t)][str(w)], theirs)


def _k(t: float) -> str:
    return np.format_float_positional(t, trim="-")


def _centre_crops(field: np.ndarray, keep: np.ndarray, w: int) -> np.ndarray:
    """One w x w crop per valid centre of a (y, x) field padded with NaN (= no event) by w // 2."""
    h = w // 2
    padded = np.pad(np.where(keep, field, np.nan), h, constant_values=np.nan)
    windows = np.lib.stride_tricks.sliding_window_view(padded, (w, w))
    return windows[keep]


def test_fss_matches_scores_with_invalid_cells(case):
    cases, s = case
    small = [(f[:, :12, :14], o[:, :12, :14], v[:, :12, :14]) for f, o, v in cases[:2]]
    ours = fill(Verifier(LEADS[:2], [2.0], [1, 3, 5]), "model", [(f[:2], o[:2], v[:2]) for f, o, v in small])
    ours = ours.summary(reference=None, compare=())["methods"]["model"]["fss"]["2"]
    for w in (1, 3, 5):
        for lead in range(2):
            f_crops, o_crops = [], []
            for fcst, obs, valid in small:
                keep = valid[lead] & np.isfinite(fcst[lead]) & np.isfinite(obs[lead])
                f_crops.append(_centre_crops(fcst[lead].astype(float), keep, w))
                o_crops.append(_centre_crops(obs[lead].astype(float), keep, w))
            dims = ("sample", "y", "x")
            theirs = fss_2d(
                xr.DataArray(np.concatenate(f_crops), dims=dims),
                xr.DataArray(np.concatenate(o_crops), dims=dims),
                event_threshold=2.0,
                window_size=(w, w),
                spatial_dims=("y", "x"),
                zero_padding=False,
                threshold_operator=np.greater_equal,
            )
            close(ours[str(w)][lead], theirs)


def test_fss_counts_brute_force():
    """The summed-area table against a direct loop over centres and windows (odd grid, big window)."""
    rng = np.random.default_rng(3)
    valid = rng.random((2, 9, 11)) > 0.2
    fe = (rng.random(valid.shape) > 0.7) & valid
    oe = (rng.random(valid.shape) > 0.6) & valid
    windows = [1, 3, 7, 25]
    num, den = fss_counts(fe, oe, valid, windows)
    for j, w in enumerate(windows):
        h = w // 2
        for lead in range(2):
            n_ = d_ = 0
            for i in range(9):
                for k in range(11):
                    if not valid[lead, i, k]:
                        continue
                    sl = (lead, slice(max(i - h, 0), i + h + 1), slice(max(k - h, 0), k + h + 1))
                    kf, ko = int(fe[sl].sum()), int(oe[sl].sum())
                    n_ += (kf - ko) ** 2
                    d_ += kf * kf + ko * ko
            assert (num[lead, j], den[lead, j]) == (n_, d_)


# ------------------------------------------------------------------------------------- known values


def test_perfect_forecast():
    obs = make_case("structured", n_init=2)
    cases = [(o.copy(), o, v) for _, o, v in obs]
    s = fill(Verifier(LEADS, [1.0, 5.0], [1, 3, 9]), "model", cases).summary(reference=None, compare=())
    m = s["methods"]["model"]
    assert m["continuous"]["rmse"] == [0.0, 0.0, 0.0]
    assert m["continuous"]["mae"] == [0.0, 0.0, 0.0]
    assert m["continuous"]["bias"] == [0.0, 0.0, 0.0]
    close(m["continuous"]["correlation"], [1, 1, 1])
    for block in m["categorical"].values():
        assert block["csi"] == block["pod"] == block["ets"] == block["frequency_bias"] == [1.0] * 3
        assert block["far"] == [0.0] * 3
        assert block["misses"] == block["false_alarms"] == [0, 0, 0]
    for per_window in m["fss"].values():
        assert all(v == [1.0, 1.0, 1.0] for v in per_window.values())


def test_threshold_operator_is_greater_or_equal():
    obs = np.array([[[0.0, 1.0, 2.0, 3.0]]] * 3)
    fcst = np.array([[[1.0, 1.0, 1.0, 1.0]]] * 3)
    s = fill(Verifier(LEADS, [1.0], [1]), "model", [(fcst, obs, np.ones(obs.shape, bool))])
    block = s.summary(reference=None, compare=())["methods"]["model"]["categorical"]["1"]
    assert (block["hits"][0], block["misses"][0], block["false_alarms"][0], block["correct_negatives"][0]) == (
        3,
        0,
        1,
        0,
    )


def test_constant_offset_gives_bias_and_rmse():
    obs = np.random.default_rng(0).gamma(1, 2, (3, 8, 8))
    s = fill(Verifier(LEADS, [], [1]), "model", [(obs + 1.5, obs, np.ones(obs.shape, bool))]).summary(
        reference=None, compare=()
    )
    c = s["methods"]["model"]["continuous"]
    close(c["bias"], [1.5] * 3)
    close(c["rmse"], [1.5] * 3)
    close(c["mae"], [1.5] * 3)


def test_division_by_zero_is_null():
    """No event anywhere -> POD, FAR, CSI, ETS, frequency bias, FSS undefined; no valid cell -> all undefined."""
    obs = np.zeros((3, 6, 7))
    valid = np.ones(obs.shape, bool)
    valid[2] = False  # nothing verifiable at the last lead
    s = fill(Verifier(LEADS, [1.0], [1, 3]), "model", [(obs, obs, valid)]).summary(reference=None, compare=())
    m = s["methods"]["model"]
    block = m["categorical"]["1"]
    for name in ("pod", "far", "csi", "ets", "frequency_bias"):
        assert block[name] == [None, None, None], name
    assert block["base_rate"] == [0.0, 0.0, None]
    assert block["correct_negatives"] == [42, 42, 0]
    assert m["fss"]["1"] == {"1": [None] * 3, "3": [None] * 3}
    assert m["continuous"]["rmse"] == [0.0, 0.0, None]
    assert m["continuous"]["correlation"] == [None, None, None]  # constant fields
    assert m["valid_fraction"] == [1.0, 1.0, 0.0]
    assert json.loads(json.dumps(s, allow_nan=False)) == s  # NaN never reaches JSON


def test_categorical_scores_formulas():
    s = categorical_scores(hits=10, misses=5, false_alarms=5, correct_negatives=80)
    hr = 15 * 15 / 100
    assert s["pod"] == pytest.approx(10 / 15) and s["far"] == pytest.approx(5 / 15)
    assert s["csi"] == pytest.approx(0.5) and s["frequency_bias"] == pytest.approx(1.0)
    assert s["ets"] == pytest.approx((10 - hr) / (20 - hr)) and s["base_rate"] == pytest.approx(0.15)
    assert np.isnan(categorical_scores(5, 0, 0, 0)["ets"])  # every cell an event: ETS undefined


# ------------------------------------------------------------------------------------- accumulation


def test_merge_and_order_give_identical_numbers():
    cases = make_case("random", n_init=6)
    args = (LEADS, [0.5, 2.0], [1, 5])
    single = fill(Verifier(*args), "model", cases)
    fill(single, "persistence", make_case("random", n_init=6, seed=9))
    shuffled = fill(Verifier(*args), "model", cases, order=[4, 1, 5, 0, 3, 2])
    fill(shuffled, "persistence", make_case("random", n_init=6, seed=9), order=[5, 4, 3, 2, 1, 0])

    a = fill(Verifier(*args), "model", cases[:3])
    fill(a, "persistence", make_case("random", n_init=6, seed=9)[:2])
    b = Verifier(*args)
    for i in range(3, 6):
        b.add(T0 + i * STEP, "model", *cases[i])
    p = make_case("random", n_init=6, seed=9)
    for i in range(2, 6):
        b.add(T0 + i * STEP, "persistence", *p[i])

    ab = Verifier(*args).merge(a).merge(b)
    ba = Verifier(*args).merge(b).merge(a)
    want = single.summary(n_boot=50)
    assert shuffled.summary(n_boot=50) == want
    assert ab.summary(n_boot=50) == want
    assert ba.summary(n_boot=50) == want
    assert ab.to_state() == single.to_state()
    assert list(ab.inits("model")) == [T0 + i * STEP for i in range(6)]
    assert ab.inits("unknown").size == 0


def test_state_round_trip_through_json():
    v = fill(Verifier(LEADS, [0.5, 2.0], [1, 3], [2.0]), "model", make_case("structured"))
    fill(v, "persistence", make_case("random"))
    state = json.loads(json.dumps(v.to_state(), allow_nan=False))
    back = Verifier.from_state(state)
    assert back.to_state() == v.to_state()
    assert back.summary(n_boot=30) == v.summary(n_boot=30)
    with pytest.raises(BadInputError, match="state"):
        Verifier.from_state({"state_version": 99})


def test_add_rejects_duplicates_and_merge_rejects_overlap():
    cases = make_case("random", n_init=2)
    v = fill(Verifier(LEADS, [1.0], [1]), "model", cases)
    with pytest.raises(BadInputError, match="already added"):
        v.add(T0, "model", *cases[0])
    with pytest.raises(BadInputError, match="in both"):
        Verifier(LEADS, [1.0], [1]).merge(fill(Verifier(LEADS, [1.0], [1]), "model", cases)).merge(v)
    with pytest.raises(BadInputError, match="thresholds"):
        Verifier(LEADS, [2.0], [1]).merge(v)


# ------------------------------------------------------------------------------------- bootstrap


def _series(n_init: int, noise_model: float, noise_ref: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    v = Verifier(LEADS, [2.0], [1, 5])
    for i in range(n_init):
        obs = _blobs(rng, len(LEADS), 16, 16)
        valid = np.ones(obs.shape, bool)
        v.add(T0 + i * STEP, "model", obs + rng.normal(0, noise_model, obs.shape), obs, valid)
        v.add(T0 + i * STEP, "persistence", obs + rng.normal(0, noise_ref, obs.shape), obs, valid)
    return v


def test_bootstrap_excludes_zero_for_a_clearly_better_forecast():
    s = _series(24, noise_model=0.3, noise_ref=2.0).summary(n_boot=300, block=3, seed=1)
    b = s["bootstrap"]["model"]["persistence"]
    assert b["n_inits"] == 24 and b["block"] == 3
    assert all(hi < 0 for hi in b["rmse"]["upper"]) and all(b["rmse"]["better"])
    assert all(lo > 0 for lo in b["csi"]["2"]["lower"]) and all(b["csi"]["2"]["better"])
    for lo, d, hi in zip(b["rmse"]["lower"], b["rmse"]["diff"], b["rmse"]["upper"]):
        assert lo <= d <= hi
    skill = s["methods"]["model"]["skill"]
    assert all(x > 0.5 for x in skill["rmse_skill"])
    assert all(x > 0 for x in skill["csi_diff"]["2"])
    assert s["methods"]["persistence"]["skill"]["rmse_skill"] == [0.0, 0.0, 0.0]


def test_bootstrap_includes_zero_for_an_identical_forecast():
    rng = np.random.default_rng(4)
    v = Verifier(LEADS, [2.0], [1])
    for i in range(12):
        obs = _blobs(rng, len(LEADS), 12, 12)
        fcst = obs + rng.normal(0, 1.0, obs.shape)
        for m in ("model", "persistence"):
            v.add(T0 + i * STEP, m, fcst, obs, np.ones(obs.shape, bool))
    b = v.summary(n_boot=200)["bootstrap"]["model"]["persistence"]
    assert b["rmse"]["lower"] == b["rmse"]["upper"] == b["rmse"]["diff"] == [0.0] * 3
    assert not any(b["rmse"]["better"]) and not any(b["csi"]["2"]["better"])
    assert all(lo <= 0 <= hi for lo, hi in zip(b["csi"]["2"]["lower"], b["csi"]["2"]["upper"]))


def test_bootstrap_is_deterministic_and_seeded():
    v = _series(15, noise_model=1.0, noise_ref=1.2)
    a = v.summary(n_boot=200, seed=3)
    assert v.summary(n_boot=200, seed=3) == a
    assert Verifier.from_state(v.to_state()).summary(n_boot=200, seed=3) == a
    other = v.summary(n_boot=200, seed=4)["bootstrap"]["model"]["persistence"]["rmse"]
    assert other["lower"] != a["bootstrap"]["model"]["persistence"]["rmse"]["lower"]
    assert other["diff"] == a["bootstrap"]["model"]["persistence"]["rmse"]["diff"]


def test_bootstrap_pairs_only_common_inits():
    v = _series(6, 0.5, 1.0)
    v.add(T0 + 10 * STEP, "model", *make_case("random", n_init=1, ny=16, nx=16)[0])
    b = v.summary(n_boot=20)["bootstrap"]["model"]["persistence"]
    assert b["n_inits"] == 6
    one = Verifier(LEADS, [2.0], [1])
    fill(one, "model", make_case("random", n_init=1))
    fill(one, "persistence", make_case("random", n_init=1))
    single = one.summary(n_boot=20)["bootstrap"]["model"]["persistence"]
    assert single["rmse"]["lower"] == [None] * 3  # one init: no interval


# ------------------------------------------------------------------------------------- arguments


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"fss_windows": [1, 4]}, "fss_windows"),
        ({"fss_windows": [5, 3]}, "fss_windows"),
        ({"fss_windows": []}, "fss_windows"),
        ({"thresholds": [5.0, 1.0]}, "thresholds"),
        ({"thresholds": [1.0, np.nan]}, "thresholds"),
        ({"fss_thresholds": [2.0, 2.0]}, "fss_thresholds"),
        ({"lead_times": LEADS[::-1]}, "lead_times"),
        ({"lead_times": []}, "lead_times"),
    ],
)
def test_bad_configuration_names_the_argument(kwargs, match):
    args = {"lead_times": LEADS, "thresholds": [1.0], "fss_windows": [1, 3]} | kwargs
    with pytest.raises(BadInputError, match=match):
        Verifier(**args)


def test_bad_fields_name_the_argument():
    v = Verifier(LEADS, [1.0], [1])
    good = np.zeros((3, 4, 5))
    ok = np.ones((3, 4, 5), bool)
    with pytest.raises(BadInputError, match="shapes differ"):
        v.add(T0, "model", good, np.zeros((3, 4, 6)), ok)
    with pytest.raises(BadInputError, match="fcst must have dims"):
        v.add(T0, "model", np.zeros((2, 4, 5)), good, ok)
    with pytest.raises(BadInputError, match="valid must be a boolean"):
        v.add(T0, "model", good, good, ok.astype(np.uint8))
    with pytest.raises(BadInputError, match="method"):
        v.add(T0, "", good, good, ok)
    v.add(T0, "model", good, good, ok)
    with pytest.raises(BadInputError, match="grid"):
        v.add(T0 + STEP, "model", np.zeros((3, 5, 5)), np.zeros((3, 5, 5)), np.ones((3, 5, 5), bool))
    with pytest.raises(BadInputError, match="reference 'persistence' has no data; known methods: model"):
        v.summary()
    with pytest.raises(BadInputError, match="compare method 'other'"):
        v.summary(reference=None, compare=("other",))


def test_summary_carries_conventions_and_config():
    v = fill(Verifier(LEADS, [1.0], [1, 3]), "model", make_case("random", n_init=1))
    s = v.summary(reference=None, compare=())
    assert s["conventions"] == CONVENTIONS and ">=" in s["conventions"]["threshold_operator"]
    assert s["lead_time_s"] == [300, 600, 900] and s["fss_windows"] == [1, 3]
    assert s["methods"]["model"]["first_init"] == "2026-07-15T12:00:00Z"
