"""forecast.evaluation.probabilistic: every score against `scores` (to 1e-6), plus merge, state, masks, errors.

Bridging to `scores`: the tests hand it the valid cells only (flattened), events as ``obs >= t`` in
{0, 1}, and the ROC the verifier's cut-offs (`ROC_CUTOFFS`); reliability and ECE are checked against a
direct numpy computation over the same flattened cells (`scores` has no reliability diagram).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr
from scores.probability import brier_score, crps_for_ensemble, roc_curve_data

from forecast.errors import BadInputError
from forecast.evaluation.probabilistic import ROC_CUTOFFS, ProbabilisticVerifier

LEADS = np.array([5, 10], dtype="timedelta64[m]")
THR = (0.5, 2.0, 5.0)
T0 = np.datetime64("2026-07-15T12:00", "s")
STEP = np.timedelta64(30, "m")


def make_case(n_init: int = 4, ny: int = 12, nx: int = 14, members: int = 6, seed: int = 3):
    """(prob, obs, valid, members) per init: an ensemble around gamma rain, probabilities = member fraction
    (ties on the cut-offs), some NaN observations and an invalid patch."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_init):
        obs = rng.gamma(0.7, 2.5, (len(LEADS), ny, nx))
        shape = (members, *obs.shape)
        ens = np.clip(obs[None] * rng.lognormal(0, 0.6, shape) + rng.normal(0, 0.5, shape), 0, None)
        prob = np.stack([(ens >= t).mean(axis=0) for t in THR])
        # a second kind of probability: continuous values, to fill every reliability / ROC bin
        prob[1] = np.clip(prob[1] * 0.7 + rng.uniform(0, 0.3, prob[1].shape), 0, 1)
        valid = rng.uniform(size=obs.shape) > 0.1
        valid[:, :3, :4] = False
        obs[0, 5, 5] = np.nan
        out.append((prob, obs, valid, ens))
    return out


def filled(cases, method="m", **kw):
    pv = ProbabilisticVerifier(LEADS, THR, **kw)
    for j, (p, o, v, e) in enumerate(cases):
        pv.add(T0 + j * STEP, method, p, o, v, members=e)
    return pv


def flat(cases, k, i):
    """The valid cells of threshold k and lead i over all inits: (p, event, obs, members (M, n))."""
    ps, evs, os, es = [], [], [], []
    for p, o, v, e in cases:
        ok = v[i] & np.isfinite(o[i])
        ps.append(p[k, i][ok])
        evs.append((o[i][ok] >= THR[k]).astype(float))
        os.append(o[i][ok])
        es.append(e[:, i][:, ok])
    return np.concatenate(ps), np.concatenate(evs), np.concatenate(os), np.concatenate(es, axis=1)


@pytest.fixture(scope="module")
def cases():
    return make_case()


@pytest.fixture(scope="module")
def summary(cases):
    return filled(cases).summary()


def test_brier_and_bss_match_scores(cases, summary):
    s = summary["methods"]["m"]["thresholds"]
    for k, t in enumerate(THR):
        for i in range(len(LEADS)):
            p, ev, _, _ = flat(cases, k, i)
            want = float(brier_score(xr.DataArray(p), xr.DataArray(ev)))
            got = s[np.format_float_positional(t, trim="-")]
            assert got["brier"][i] == pytest.approx(want, abs=1e-6)
            obar = ev.mean()
            assert got["base_rate"][i] == pytest.approx(obar, abs=1e-12)
            assert got["bss"][i] == pytest.approx(1 - want / (obar * (1 - obar)), abs=1e-6)


def test_roc_and_auc_match_scores(cases, summary):
    s = summary["methods"]["m"]["thresholds"]
    for k, t in enumerate(THR):
        for i in range(len(LEADS)):
            p, ev, _, _ = flat(cases, k, i)
            want = roc_curve_data(xr.DataArray(p), xr.DataArray(ev), list(ROC_CUTOFFS))
            got = s[np.format_float_positional(t, trim="-")]
            np.testing.assert_allclose(got["roc"]["pod"][i], want["POD"].values, atol=1e-6)
            np.testing.assert_allclose(got["roc"]["pofd"][i], want["POFD"].values, atol=1e-6)
            assert got["auc"][i] == pytest.approx(float(want["AUC"]), abs=1e-6)


def test_reliability_and_ece(cases, summary):
    s = summary["methods"]["m"]["thresholds"]["2"]
    for i in range(len(LEADS)):
        p, ev, _, _ = flat(cases, 1, i)
        b = np.minimum(np.floor(p * 10 + 1e-12).astype(int), 9)
        n = np.bincount(b, minlength=10)
        assert s["reliability"]["n"][i] == n.tolist()
        assert (n > 0).sum() >= 8  # the case fills the diagram
        ece = 0.0
        for j in range(10):
            if n[j]:
                assert s["reliability"]["mean_p"][i][j] == pytest.approx(p[b == j].mean(), abs=1e-9)
                assert s["reliability"]["obs_freq"][i][j] == pytest.approx(ev[b == j].mean(), abs=1e-12)
                ece += n[j] / len(p) * abs(ev[b == j].mean() - p[b == j].mean())
            else:
                assert s["reliability"]["mean_p"][i][j] is None
        assert s["ece"][i] == pytest.approx(ece, abs=1e-9)


def test_crps_matches_scores_fair(cases, summary):
    crps = summary["methods"]["m"]["crps"]
    for i in range(len(LEADS)):
        _, _, o, e = flat(cases, 0, i)
        want = crps_for_ensemble(xr.DataArray(e, dims=("member", "cell")), xr.DataArray(o, dims=("cell",)),
                                 "member", method="fair")
        assert crps[i] == pytest.approx(float(want), abs=1e-6)
        ecdf = crps_for_ensemble(xr.DataArray(e, dims=("member", "cell")), xr.DataArray(o, dims=("cell",)),
                                 "member", method="ecdf")
        assert abs(crps[i] - float(ecdf)) > 1e-4  # the fair form, not the empirical-CDF one


def test_no_members_no_crps(cases):
    pv = ProbabilisticVerifier(LEADS, THR)
    p, o, v, _ = cases[0]
    pv.add(T0, "m", p, o, v)
    assert pv.summary()["methods"]["m"]["crps"] is None


def test_merge_equals_single_pass_in_any_order(cases, summary):
    a, b = filled(cases[:2]), ProbabilisticVerifier(LEADS, THR)
    for j, (p, o, v, e) in enumerate(cases[2:], start=2):
        b.add(T0 + j * STEP, "m", p, o, v, members=e)
    ab = json.dumps(filled(cases[:2]).merge(b).summary(), sort_keys=True)
    ba = json.dumps(b.merge(a).summary(), sort_keys=True)
    assert ab == ba == json.dumps(summary, sort_keys=True)


def test_state_round_trip_through_json(cases, summary):
    pv = filled(cases)
    state = json.loads(json.dumps(pv.to_state()))
    again = ProbabilisticVerifier.from_state(state)
    assert json.dumps(again.summary(), sort_keys=True) == json.dumps(summary, sort_keys=True)
    assert again.inits("m").tolist() == pv.inits("m").tolist()


def test_masked_cells_never_count(cases):
    p, o, v, e = (np.array(x, copy=True) for x in cases[0])
    ref = ProbabilisticVerifier(LEADS, THR)
    ref.add(T0, "m", p, o, v, members=e)
    # garbage where not valid: huge observations, forecasts of certainty
    o2, p2, e2 = o.copy(), p.copy(), e.copy()
    o2[~v] = 1e6
    p2[:, ~v] = 1.0
    e2[:, ~v] = 1e6
    bad = ProbabilisticVerifier(LEADS, THR)
    bad.add(T0, "m", p2, o2, v, members=e2)
    assert json.dumps(ref.summary(), sort_keys=True) == json.dumps(bad.summary(), sort_keys=True)
    assert ref.summary()["methods"]["m"]["n"][0] == int((v[0] & np.isfinite(o[0])).sum())


def test_bss_reference_and_bootstrap(cases):
    pv = filled(cases)
    for j, (p, o, v, e) in enumerate(cases):
        pv.add(T0 + j * STEP, "clim", np.broadcast_to(p.mean(axis=(2, 3), keepdims=True), p.shape), o, v)
    s = pv.summary(reference="clim", compare=("m",), n_boot=200)
    blk = s["methods"]["m"]["thresholds"]["2"]
    ref = s["methods"]["clim"]["thresholds"]["2"]
    assert blk["bss_reference"][0] == pytest.approx(1 - blk["brier"][0] / ref["brier"][0])
    assert s["methods"]["clim"]["thresholds"]["2"]["bss_reference"] == [0.0, 0.0]
    b = s["bootstrap"]["m"]["clim"]["bss_diff"]["2"]
    for i in range(len(LEADS)):
        assert b["diff"][i] == pytest.approx(blk["bss"][i] - ref["bss"][i])
        assert b["lower"][i] <= b["diff"][i] <= b["upper"][i]
    again = pv.summary(reference="clim", compare=("m",), n_boot=200)
    assert again["bootstrap"] == s["bootstrap"]  # seeded


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"prob": np.zeros((2, 2, 12, 14))}, "prob must have dims"),
        ({"prob": np.full((3, 2, 12, 14), 1.5)}, "prob must lie in"),
        ({"obs": np.zeros((2, 12, 13))}, "obs must have dims"),
        ({"valid": np.ones((2, 12, 14))}, "valid must be a boolean"),
        ({"members": np.zeros((1, 2, 12, 14))}, "members must have dims"),
        ({"method": ""}, "method must be"),
        ({"init_time": "yesterday"}, "init_time"),
    ],
)
def test_bad_inputs_name_the_argument(cases, kwargs, match):
    p, o, v, e = cases[0]
    args = {"init_time": T0, "method": "m", "prob": p, "obs": o, "valid": v, "members": e} | kwargs
    with pytest.raises(BadInputError, match=match):
        ProbabilisticVerifier(LEADS, THR).add(args["init_time"], args["method"], args["prob"], args["obs"],
                                             args["valid"], members=args["members"])


def test_bad_config_and_state():
    with pytest.raises(BadInputError, match="thresholds"):
        ProbabilisticVerifier(LEADS, [5, 1])
    with pytest.raises(BadInputError, match="lead_times"):
        ProbabilisticVerifier([], THR)
    with pytest.raises(BadInputError, match="state"):
        ProbabilisticVerifier.from_state({"state_version": 1})
    a = ProbabilisticVerifier(LEADS, THR)
    with pytest.raises(BadInputError, match="thresholds"):
        a.merge(ProbabilisticVerifier(LEADS, (1.0,)))


def test_duplicate_init_refused(cases):
    p, o, v, e = cases[0]
    pv = ProbabilisticVerifier(LEADS, THR)
    pv.add(T0, "m", p, o, v)
    with pytest.raises(BadInputError, match="already added"):
        pv.add(T0, "m", p, o, v)
    other = ProbabilisticVerifier(LEADS, THR)
    other.add(T0, "m", p, o, v)
    with pytest.raises(BadInputError, match="in both"):
        pv.merge(other)
