"""Exceedance probabilities in the forecast store: written beside the values with the same chunks and
their threshold metadata, added to a run written before they existed (whose inits read as missing), and
never left stale when an init is rewritten without them."""

from __future__ import annotations

import numpy as np
import pytest
from probkit import P, init_of, inputs
from testkit import small_doc

from forecast.catalog import exceedance_name, parse_catalog
from forecast.nowcast.forecaster import Forecaster
from forecast.plausibility import NO_VALUE
from forecast.stores import ForecastStore


@pytest.fixture(scope="module")
def cat():
    return parse_catalog(small_doc("radar_precip", ny=24, nx=32), "test")


@pytest.fixture(scope="module")
def produced(cat):
    out = []
    for k, t0 in enumerate(("2026-07-15T12:00:00", "2026-07-15T12:05:00", "2026-07-15T12:10:00")):
        obs, init = inputs(cat, t0=t0, scale=1.0 + k)
        out.append((init_of(init), Forecaster(cat, P).produce(obs, init_of(init))))
    return out


def test_an_older_run_gains_the_probabilities_and_its_earlier_inits_read_as_missing(cat, produced, tmp_path):
    import zarr

    store = ForecastStore(str(tmp_path / "f.icechunk"))
    (i1, p1), (i2, p2), _ = produced
    # a run written before probabilities existed: the values alone, a provenance record without them
    older = {k: v for k, v in p1.provenance.items() if k != "probabilities"}
    assert store.write(cat, "production", i1, p1.forecast, older).written
    assert "exceedance" not in store.open(cat.id).attrs and not any("_exceedance_" in n for n in store.open(cat.id))
    assert store.write(cat, "production", i2, p2.stored(), p2.provenance).written
    names = [exceedance_name(P, t) for t in cat.variables[P].thresholds]
    ds = store.open(cat.id)
    assert [n for n in ds.data_vars if "_exceedance_" in n and not n.endswith("_annotation")] == names
    assert ds.sizes["init_time"] == 2
    for n in names:
        np.testing.assert_array_equal(ds[n].isel(init_time=1).values, p2.probabilities[n].values)
        np.testing.assert_array_equal(ds[f"{n}_annotation"].isel(init_time=1).values,
                                      p2.probabilities[f"{n}_annotation"].values)
        assert np.isnan(ds[n].isel(init_time=0).values).all()  # the older init: missing, not zero
        assert (ds[f"{n}_annotation"].isel(init_time=0).values == NO_VALUE).all()
        a = ds[n].attrs
        assert a["units"] == "1" and a["variable"] == P and a["threshold_units"] == "mm h-1"
        assert a["threshold"] == p2.probabilities[n].attrs["threshold"] and "probability" in a["long_name"]
    np.testing.assert_array_equal(ds[P].isel(init_time=0).values, p1.forecast[P].values)  # values untouched
    g = zarr.open_group(store.readonly().store, path=f"{cat.id}/production", mode="r")
    assert g[names[0]].chunks == g[P].chunks and g[names[0]].shape == g[P].shape
    assert g.attrs["variables"] == [P]  # the list of values is unchanged
    assert g.attrs["exceedance"][names[3]] == {"variable": P, "threshold": 10.0, "threshold_units": "mm h-1"}
    assert store.provenance(cat.id, i2)["probabilities"]["parameters"] == names
    assert "probabilities" not in store.provenance(cat.id, i1)


def test_writes_stay_idempotent_and_a_rewrite_without_probabilities_clears_them(cat, produced, tmp_path):
    store = ForecastStore(str(tmp_path / "f.icechunk"))
    (i1, p1), _, (i3, p3) = produced
    first = store.write(cat, "production", i3, p3.stored(), p3.provenance)
    again = store.write(cat, "production", i3, p3.stored(), p3.provenance)
    assert first.written and not again.written and again.snapshot == first.snapshot
    n = exceedance_name(P, 1.0)
    assert np.nanmax(store.open(cat.id)[n].values) > 0.5
    # the same init again from revised inputs, by a writer that made no probabilities
    prov = {**p3.provenance, "observations": {**p3.provenance["observations"],
                                              "input_slots": [{"time": "x", "revision": 1, "available_at": None}]}}
    assert store.write(cat, "production", i3, p3.forecast, {**prov, "probabilities": None}).written
    ds = store.open(cat.id)
    assert np.isnan(ds[n].values).all() and (ds[f"{n}_annotation"].values == NO_VALUE).all()
    # an earlier init (a smaller slot) written later still lands in its own slot
    assert store.write(cat, "production", i1, p1.stored(), p1.provenance).written
    ds = store.open(cat.id)
    np.testing.assert_array_equal(ds[n].isel(init_time=0).values, p1.probabilities[n].values)
