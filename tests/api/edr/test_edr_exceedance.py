"""Exceedance probabilities in the forecast API: a copy of the API world whose store gains a third init
with ``<variable>_exceedance_<t>`` (the two earlier inits were written before probabilities existed).
Position, area and cube serve them in CoverageJSON and JSON with unit "1" and the threshold stated, NetCDF
with their attributes; older inits answer nulls; unknown names are a 400; collections list them."""

from __future__ import annotations

import io
import shutil
from datetime import datetime, timezone

import numpy as np
import pytest
from apihelpers import INITS, P, lonlat_of, make_forecast, provenance
from covjson_pydantic.coverage import Coverage
from litestar.testing import TestClient

from api.app import create_app
from forecast.catalog import exceedance_name

C = "/collections/radar_precip.forecast"
INIT3 = datetime(2026, 7, 15, 13, 10, tzinfo=timezone.utc)
E10 = exceedance_name(P, 10.0)
E0P1 = exceedance_name(P, 0.1)


@pytest.fixture(scope="module")
def probworld(world, tmp_path_factory):
    """(client, probabilities Dataset of INIT3, catalog) over a private copy of the world's home."""
    import xarray as xr

    from forecast.nowcast.probabilities import neighbourhood_probabilities, probability_dataset
    from forecast.settings import Settings
    from forecast.stores import ForecastStore

    tmp = tmp_path_factory.mktemp("probworld")
    home = tmp / "home"
    shutil.copytree(world["home"], home)
    cat = world["catalog"]
    fc = make_forecast(cat, INIT3, scale=0.5)
    det = fc[P]
    thr = np.asarray(cat.variables[P].thresholds, dtype=float)
    probs = neighbourhood_probabilities(det, np.asarray(det.values), thr)
    degraded = np.zeros(det.shape[1:], bool)
    degraded[:4, :4] = True
    pds, counts = probability_dataset(probs, variable=P, units="mm h-1", long_name="Surface precipitation rate",
                                      degraded=degraded, attrs={"method": "neighbourhood"})
    prov = provenance(cat, INIT3, world["store"].head())
    prov["probabilities"] = {"method": "neighbourhood", "source": "neighbourhood of model",
                             "thresholds": thr.tolist(), "units": "mm h-1", "parameters": list(pds.data_vars)[::2],
                             "neighbourhood_size": 9, "fallback": None, "annotations": counts}
    ForecastStore(str(home / "forecasts.icechunk")).write(cat, "production", INIT3, xr.merge([fc, pds]), prov)
    settings = Settings(home=home, catalogs=world["tmp"] / "catalogs", database_url=f"sqlite:///{home / 'review.db'}")
    with TestClient(create_app(settings)) as c:
        yield c, pds, cat


def point(cat, iy, ix):
    lon, lat = lonlat_of(cat, iy, ix)
    return f"POINT({lon} {lat})"


def test_position_serves_the_probabilities_in_covjson_and_json(probworld):
    client, pds, cat = probworld
    names = f"{P},{E10},{E0P1}"
    r = client.get(f"{C}/position", params={"coords": point(cat, 20, 30), "parameter-name": names})
    assert r.status_code == 200, r.text
    Coverage.model_validate_json(r.content)
    doc = r.json()
    assert doc["fcst:initTime"] == "2026-07-15T13:10:00Z"
    assert list(doc["parameters"]) == [P, E10, E0P1]
    p = doc["parameters"][E10]
    assert p["unit"] == {"symbol": "1"} and p["fcst:threshold"] == {"value": 10.0, "units": "mm h-1"}
    assert "10 mm h-1" in p["description"]["en"] and P in p["description"]["en"]
    assert P in p["observedProperty"]["label"]["en"] and p["fcst:variable"] == P
    vals = doc["ranges"][E10]["values"]
    np.testing.assert_allclose(vals, pds[E10].values[:, 20, 30], atol=1e-6)
    assert all(0.0 <= v <= 1.0 for v in vals) and len(set(vals)) > 1  # the field rises over the leads
    assert doc["fcst:annotations"][E10]["values"] == ["ok"] * 12
    assert all(a >= b for a, b in zip(doc["ranges"][E0P1]["values"], vals))  # lower threshold, higher chance
    assert doc["fcst:provenance"]["probabilities"]["source"] == "neighbourhood of model"
    # the compact JSON states the threshold beside the values
    j = client.get(f"{C}/position", params={"coords": point(cat, 20, 30), "parameter-name": names, "f": "json"}).json()
    assert j["parameters"][E10]["unit"] == "1"
    assert j["parameters"][E10]["threshold"] == {"value": 10.0, "units": "mm h-1"}
    assert j["parameters"][E10]["variable"] == P and j["parameters"][E10]["values"] == vals
    assert "threshold" not in j["parameters"][P]  # the values' member is unchanged
    # degraded inputs are marked on the probabilities too
    d = client.get(f"{C}/position", params={"coords": point(cat, 1, 1), "parameter-name": E10, "f": "json"}).json()
    assert d["parameters"][E10]["annotation"] == ["degraded_inputs"] * 12
    # the default is unchanged: the variables only
    r = client.get(f"{C}/position", params={"coords": point(cat, 20, 30), "f": "json"})
    assert list(r.json()["parameters"]) == [P]


def test_an_init_written_before_probabilities_answers_nulls(probworld):
    client, _, cat = probworld
    old = INITS[1].strftime("%Y-%m-%dT%H:%M:%SZ")
    r = client.get(f"{C}/position", params={"coords": point(cat, 20, 30), "parameter-name": f"{P},{E10}",
                                            "init_time": old})
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["ranges"][E10]["values"] == [None] * 12 and doc["fcst:annotations"][E10]["values"] == [None] * 12
    assert doc["ranges"][P]["values"][0] is not None
    r = client.get(f"{C}/cube", params={"bbox": _bbox(cat), "parameter-name": E10, "init_time": old, "f": "json"})
    assert r.status_code == 200, r.text
    p = r.json()["parameters"][E10]
    assert set(p["values"]) == {None} and set(p["annotation"]) == {None} and p["unit"] == "1"


def _bbox(cat, iy0=18, iy1=22, ix0=28, ix1=32):
    lons, lats = zip(*(lonlat_of(cat, iy, ix) for iy in (iy0, iy1) for ix in (ix0, ix1)))
    return f"{min(lons)},{min(lats)},{max(lons)},{max(lats)}"


@pytest.mark.parametrize("kind", ["area", "cube"])
def test_area_and_cube_serve_the_probabilities(probworld, kind):
    client, pds, cat = probworld
    geo = {"bbox": _bbox(cat)} if kind == "cube" else {"coords": _polygon(cat)}
    r = client.get(f"{C}/{kind}", params={**geo, "parameter-name": E10})
    assert r.status_code == 200, r.text
    Coverage.model_validate_json(r.content)
    doc = r.json()
    assert doc["parameters"][E10]["unit"] == {"symbol": "1"}
    assert doc["parameters"][E10]["fcst:threshold"] == {"value": 10.0, "units": "mm h-1"}
    vals = [v for v in doc["ranges"][E10]["values"] if v is not None]
    assert vals and all(0.0 <= v <= 1.0 for v in vals) and max(vals) > 0
    assert set(doc["fcst:annotations"][E10]["values"]) <= {"ok", None}
    j = client.get(f"{C}/{kind}", params={**geo, "parameter-name": E10, "f": "json"}).json()
    assert j["parameters"][E10]["threshold"] == {"value": 10.0, "units": "mm h-1"}
    g = j["grid"]
    window = pds[E10].values[:, g["iy0"]:g["iy0"] + g["shape"][1], g["ix0"]:g["ix0"] + g["shape"][2]].ravel()
    got = np.array([np.nan if v is None else v for v in j["parameters"][E10]["values"]])
    inside = ~np.isnan(got)
    np.testing.assert_allclose(got[inside], window[inside], atol=1e-4)
    n = client.get(f"{C}/{kind}", params={**geo, "parameter-name": f"{P},{E10}", "f": "netcdf"})
    assert n.status_code == 200
    import xarray as xr

    ds = xr.open_dataset(io.BytesIO(n.content), engine="h5netcdf")
    a = ds[E10].attrs
    assert a["units"] == "1" and a["threshold"] == 10.0 and a["threshold_units"] == "mm h-1" and a["variable"] == P
    assert "10 mm h-1" in a["long_name"] and ds[P].attrs["units"] == "mm h-1"


def _polygon(cat):
    pts = [lonlat_of(cat, iy, ix) for iy, ix in ((18, 28), (18, 32), (22, 32), (22, 28), (18, 28))]
    return "POLYGON((" + ", ".join(f"{lo} {la}" for lo, la in pts) + "))"


def test_unknown_exceedance_parameter_is_a_400_listing_the_valid_ones(probworld):
    client, _, cat = probworld
    r = client.get(f"{C}/position", params={"coords": point(cat, 20, 30), "parameter-name": f"{P}_exceedance_7"})
    assert r.status_code == 400
    detail = r.json()["detail"]
    assert f"{P}_exceedance_7" in detail and E10 in detail and E0P1 in detail


def test_collections_list_the_probabilities(probworld):
    client, _, _ = probworld
    doc = client.get("/collections/radar_precip.forecast").json()
    params = doc["parameter_names"]
    assert list(params)[0] == P and E10 in params and E0P1 in params
    assert params[E10]["unit"] == {"symbol": "1"} and params[E10]["fcst:threshold"]["value"] == 10.0
    assert params[E0P1]["fcst:threshold"] == {"value": 0.1, "units": "mm h-1"}
