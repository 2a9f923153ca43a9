"""The Forecaster's exceedance probabilities: names by the contract, values in [0, 1] and non-increasing
across thresholds, ``degraded_inputs`` where the inputs were, the model's own probabilities when it has
them, and the neighbourhood of the deterministic forecast (said in provenance) when it has none or they
fail."""

from __future__ import annotations

import numpy as np
import pytest
from probkit import NX, NY, P, init_of, inputs
from testkit import small_doc

from forecast.catalog import exceedance_name, parse_catalog
from forecast.nowcast import NeighbourhoodPersistence
from forecast.nowcast.forecaster import Forecaster
from forecast.plausibility import DEGRADED, OK


@pytest.fixture(scope="module")
def cat():
    return parse_catalog(small_doc("radar_precip", ny=NY, nx=NX), "test")


class NeighbourhoodModel:
    """A real probabilistic nowcaster standing in for the learned model: neighbourhood persistence in a
    5-cell window (the Forecaster's own neighbourhood uses 9, so the two are told apart)."""

    name = "neighbourhood_model"
    probabilistic = True

    def __init__(self):
        self.inner = NeighbourhoodPersistence(size=5)
        self.calls = 0

    def fit(self, obs):
        return self

    def predict(self, inputs, *, n_leads, step, mask=None):
        return self.inner.predict(inputs, n_leads=n_leads, step=step, mask=mask)

    def predict_probabilities(self, inputs, *, n_leads, step, thresholds, mask=None):
        self.calls += 1
        return self.inner.predict_probabilities(inputs, n_leads=n_leads, step=step, thresholds=thresholds, mask=mask)


class BrokenHead(NeighbourhoodModel):
    def predict_probabilities(self, inputs, *, n_leads, step, thresholds, mask=None):
        raise RuntimeError("probability head diverged")


class DeterministicOnly(NeighbourhoodModel):
    probabilistic = False  # as a learned model trained without a probabilistic head says


def names(cat):
    return [exceedance_name(P, t) for t in cat.variables[P].thresholds]


def check_probabilities(p, cat):
    assert p.probabilities is not None
    expected = names(cat)
    assert expected == ["precipitation_rate_exceedance_0p1", "precipitation_rate_exceedance_1",
                        "precipitation_rate_exceedance_5", "precipitation_rate_exceedance_10",
                        "precipitation_rate_exceedance_30"]
    assert sorted(p.probabilities.data_vars) == sorted(expected + [f"{n}_annotation" for n in expected])
    stack = np.stack([p.probabilities[n].values for n in expected])
    assert stack.dtype == np.float32 and stack.shape == (5, 12, NY, NX)
    finite = stack[np.isfinite(stack)]
    assert finite.min() >= 0.0 and finite.max() <= 1.0
    assert finite.max() > 0.5 and finite.min() == 0.0  # the blob is there, and dry land around it
    with np.errstate(invalid="ignore"):
        assert not (np.diff(stack, axis=0) > 1e-6).any()  # non-increasing in the threshold
    for t, n in zip(cat.variables[P].thresholds, expected):
        a = p.probabilities[n].attrs
        assert a["units"] == "1" and a["threshold"] == t and a["threshold_units"] == "mm h-1" and a["variable"] == P
        assert f"{t:g} mm h-1" in a["long_name"]
    rec = p.provenance["probabilities"]
    assert rec["parameters"] == expected and rec["thresholds"] == cat.variables[P].thresholds
    stored = p.stored()
    assert P in stored and f"{P}_annotation" in stored and expected[0] in stored
    return stack


def test_fallback_forecast_gets_the_neighbourhood_probability_of_its_field(cat):
    obs, init = inputs(cat)
    p = Forecaster(cat, P).produce(obs, init_of(init))  # no registry: the fallback chain answers
    assert p.fallback is not None
    stack = check_probabilities(p, cat)
    rec = p.provenance["probabilities"]
    assert rec["method"] == "neighbourhood" and rec["neighbourhood_size"] == 9
    assert rec["source"] == f"neighbourhood of {p.method}" and rec["fallback"] is None
    # the probabilities follow the forecast field: where it is >= 30 mm/h the 30-threshold probability is > 0
    field = p.forecast[P].values
    assert (stack[4][field >= 30.0] > 0).all()
    assert (stack[0][np.isfinite(field)] >= (field[np.isfinite(field)] >= 0.1) / 81.0 - 1e-6).all()


def test_probabilities_are_degraded_where_the_inputs_were(cat):
    obs, init = inputs(cat, fail_columns=slice(0, 6))
    p = Forecaster(cat, P).produce(obs, init_of(init))
    check_probabilities(p, cat)
    for n in names(cat):
        ann = p.probabilities[f"{n}_annotation"].values
        assert (ann[:, :, :6] == DEGRADED).all()
        vals = p.probabilities[n].values
        assert (ann[np.isfinite(vals) & (np.arange(NX) >= 6)[None, None, :]] == OK).all()
        assert set(np.unique(ann)) <= {OK, DEGRADED}  # never extreme or implausible
    counts = p.provenance["probabilities"]["annotations"]
    assert counts["degraded_inputs"] >= 5 * 12 * NY * 6 and counts["extreme"] == counts["implausible"] == 0


def test_a_probabilistic_model_answers_with_its_own_probabilities(cat):
    obs, init = inputs(cat)
    model = NeighbourhoodModel()
    p = Forecaster(cat, P, nowcaster=model).produce(obs, init_of(init))
    assert p.method == "model" and p.fallback is None and model.calls == 1
    stack = check_probabilities(p, cat)
    rec = p.provenance["probabilities"]
    assert rec == {**rec, "method": "model", "source": "model", "fallback": None, "neighbourhood_size": None}
    mine = NeighbourhoodPersistence(size=5).predict_probabilities(
        obs[P], n_leads=12, step=np.timedelta64(5, "m"), thresholds=cat.variables[P].thresholds)
    np.testing.assert_allclose(stack, mine.values, atol=1e-6)


def test_failing_model_probabilities_fall_back_to_the_neighbourhood_of_the_model_forecast(cat):
    obs, init = inputs(cat)
    p = Forecaster(cat, P, nowcaster=BrokenHead()).produce(obs, init_of(init))
    assert p.method == "model" and p.fallback is None  # the deterministic forecast stands
    check_probabilities(p, cat)
    rec = p.provenance["probabilities"]
    assert rec["method"] == "neighbourhood" and rec["source"] == "neighbourhood of model"
    assert "probability head diverged" in rec["fallback"] and "RuntimeError" in rec["fallback"]


def test_a_deterministic_model_gets_the_neighbourhood_without_a_fallback(cat):
    obs, init = inputs(cat)
    model = DeterministicOnly()
    p = Forecaster(cat, P, nowcaster=model).produce(obs, init_of(init))
    assert model.calls == 0
    rec = p.provenance["probabilities"]
    assert (rec["method"], rec["source"], rec["fallback"]) == ("neighbourhood", "neighbourhood of model", None)


def test_no_thresholds_or_switched_off_means_no_probabilities(cat):
    doc = small_doc("radar_precip", ny=NY, nx=NX)
    doc["variables"][P]["thresholds"] = []
    bare = parse_catalog(doc, "test")
    obs, init = inputs(bare)
    p = Forecaster(bare, P).produce(obs, init_of(init))
    assert p.probabilities is None and p.provenance["probabilities"] is None and p.stored() is p.forecast
    q = Forecaster(cat, P, probabilities=False).produce(obs, init_of(init))
    assert q.probabilities is None and q.provenance["probabilities"] is None


def test_a_stand_in_nowcaster_excludes_model_and_method(cat):
    from forecast.errors import BadInputError

    with pytest.raises(BadInputError, match="not several"):
        Forecaster(cat, P, nowcaster=NeighbourhoodModel(), method="persistence")


class SlowHead(NeighbourhoodModel):
    def predict_probabilities(self, inputs, *, n_leads, step, thresholds, mask=None):
        import time

        time.sleep(3.0)
        return super().predict_probabilities(inputs, n_leads=n_leads, step=step, thresholds=thresholds, mask=mask)


class TwoThresholdsOnly(NeighbourhoodModel):
    def predict_probabilities(self, inputs, *, n_leads, step, thresholds, mask=None):
        return super().predict_probabilities(inputs, n_leads=n_leads, step=step, thresholds=thresholds[:2], mask=mask)


def test_probabilities_past_the_deadline_leave_the_forecast_standing(cat):
    obs, init = inputs(cat)
    p = Forecaster(cat, P, nowcaster=SlowHead(), deadline=1.0).produce(obs, init_of(init))
    assert p.method == "model" and p.fallback is None and p.seconds < 2.5
    rec = p.provenance["probabilities"]
    assert rec["source"] == "neighbourhood of model" and "exceeded the deadline of 1 s" in rec["fallback"]
    check_probabilities(p, cat)


def test_probabilities_of_the_wrong_shape_are_refused_and_said_so(cat):
    obs, init = inputs(cat)
    p = Forecaster(cat, P, nowcaster=TwoThresholdsOnly()).produce(obs, init_of(init))
    rec = p.provenance["probabilities"]
    assert rec["source"] == "neighbourhood of model" and "expected (5, 12, 24, 32)" in rec["fallback"]
    check_probabilities(p, cat)
