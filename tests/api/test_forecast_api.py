"""Forecast queries: CoverageJSON that validates, per-value annotations, provenance, init / datetime
selection, formats, caching headers, and one clear sentence for each bad input."""

from __future__ import annotations

import io

import numpy as np
import pytest
from covjson_pydantic.coverage import Coverage

from apihelpers import INITS, LEADS, P, lonlat_of, make_forecast, provenance, settings_for

C = "/collections/radar_precip.forecast"


def point(world, iy=10, ix=20):
    lon, lat = lonlat_of(world["catalog"], iy, ix)
    return f"POINT({lon} {lat})"


def test_position_covjson_validates_with_annotations_and_provenance(client, world):
    r = client.get(f"{C}/position", params={"coords": point(world)})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/prs.coverage+json")
    cov = Coverage.model_validate_json(r.content)
    assert cov.domain.domainType.value == "PointSeries"
    doc = r.json()
    times = doc["domain"]["axes"]["t"]["values"]
    # the latest init (13:05) by default, all 12 lead times, valid times in UTC with Z
    assert len(times) == 12 and times[0] == "2026-07-15T13:10:00Z" and all(t.endswith("Z") for t in times)
    vals = doc["ranges"][P]["values"]
    ann = doc["fcst:annotations"][P]
    assert ann["values"][5] == "extreme" and ann["record"][5] == 250.0 and vals[5] == 300.0
    assert ann["values"][6] == "implausible" and vals[6] == 600.0  # kept, never clipped
    assert vals[7] is None  # NaN -> null
    assert ann["values"][8] == "degraded_inputs" and ann["values"][0] == "ok" and ann["record"][0] is None
    # the value of the written forecast at (lead 0, iy 10, ix 20): scale 2 for the second init
    assert vals[0] == pytest.approx(2.0 * (10 + 0.2), rel=1e-6)
    prov = doc["fcst:provenance"]
    assert prov["init_time"] == "2026-07-15T13:05:00Z" and prov["model"]["version"] == "v1"
    assert prov["observations"]["snapshot"] and prov["fallback"] is None and prov["catalog_hash"]
    assert doc["fcst:point"]["iy"] == 10 and doc["fcst:point"]["ix"] == 20
    p = doc["parameters"][P]
    assert p["unit"]["symbol"] == "mm h-1" and "lwe_precipitation_rate" in p["observedProperty"]["id"]


def test_position_init_time_and_datetime_select(client, world):
    r = client.get(f"{C}/position", params={"coords": point(world), "init_time": "2026-07-15T13:00Z", "f": "json"})
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["init_time"] == "2026-07-15T13:00:00Z" and doc["parameters"][P]["values"][0] == pytest.approx(10.2)
    assert doc["lead_time"] == LEADS.tolist() and doc["provenance"]["init_time"] == "2026-07-15T13:00:00Z"
    # a valid-time interval filters lead times of the latest init
    r = client.get(f"{C}/position", params={"coords": point(world), "datetime": "2026-07-15T13:30Z/2026-07-15T13:40Z",
                                            "f": "json"})
    assert r.json()["valid_time"] == ["2026-07-15T13:30:00Z", "2026-07-15T13:35:00Z", "2026-07-15T13:40:00Z"]
    assert r.json()["init_time"] == "2026-07-15T13:05:00Z"
    # a valid time only the older init reaches... none here (13:05 covers everything 13:00 does after 13:10)
    r = client.get(f"{C}/position", params={"coords": point(world), "datetime": "2026-07-15T13:05Z", "f": "json"})
    assert r.status_code == 200 and r.json()["init_time"] == "2026-07-15T13:00:00Z"
    assert r.json()["valid_time"] == ["2026-07-15T13:05:00Z"]


@pytest.mark.parametrize("params, status, words", [
    ({"coords": "POINT(3.0 40.0)"}, 400, ["outside the grid", "lon 9.", "lat 49."]),
    ({"coords": "POINT(10.0 49.4)", "parameter-name": "temperature"}, 400,
     ["unknown parameter 'temperature'", "valid parameters are: precipitation_rate"]),
    ({"coords": "POINT(10.0 49.4"}, 400, ["coords", "malformed WKT"]),
    ({"coords": "POLYGON((10 49, 10.1 49, 10.1 49.1, 10 49))"}, 400, ["needs a WKT POINT", "POLYGON"]),
    ({"coords": "POINT(49.4 100)"}, 400, ["latitude 100.0 is outside [-90, 90]"]),
    ({}, 400, ["'coords' is required"]),
    ({"coords": "POINT(10.0 49.4)", "datetime": "2026-07-15T13:00Z/tomorrow"}, 400,
     ["datetime (end of the interval)", "'tomorrow'"]),
    ({"coords": "POINT(10.0 49.4)", "datetime": "yesterday"}, 400, ["datetime", "not an ISO-8601 time"]),
    ({"coords": "POINT(10.0 49.4)", "init_time": "2026-07-15T12:00Z"}, 404,
     ["no forecast initialised at 2026-07-15T12:00:00Z", "inits available: 2 from"]),
    ({"coords": "POINT(10.0 49.4)", "datetime": "2027-01-01T00:00Z"}, 404, ["no forecast", "valid times"]),
    ({"coords": "POINT(10.0 49.4)", "f": "netcdf"}, 400, ["f:", "valid formats: covjson, json"]),
])
def test_bad_inputs_are_one_clear_sentence(client, params, status, words):
    r = client.get(f"{C}/position", params=params)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    doc = r.json()
    assert doc["status"] == status and doc["title"] and doc["type"].startswith("https://")
    for w in words:
        assert w in doc["detail"], (w, doc["detail"])
    assert "Traceback" not in r.text


def test_unknown_collection_lists_the_known_ones(client):
    r = client.get("/collections/nope.forecast/position", params={"coords": "POINT(10 49.4)"})
    assert r.status_code == 404 and "radar_precip.forecast" in r.json()["detail"]
    assert client.get("/collections/nope").status_code == 404


def test_etag_and_cache_control(client, world):
    params = {"coords": point(world)}
    r = client.get(f"{C}/position", params=params)
    etag = r.headers["etag"]
    assert etag.startswith('"') and not etag.startswith("W/")
    cc = r.headers["cache-control"]
    assert cc.startswith("public, max-age=") and "must-revalidate" in cc
    r2 = client.get(f"{C}/position", params=params, headers={"If-None-Match": etag})
    assert r2.status_code == 304 and r2.content == b"" and r2.headers["etag"] == etag
    # another query, another tag; a stale tag gets the full answer
    r3 = client.get(f"{C}/position", params={**params, "f": "json"}, headers={"If-None-Match": etag})
    assert r3.status_code == 200 and r3.headers["etag"] != etag


def test_area_cube_formats_and_limits(client, world):
    cat = world["catalog"]
    corners = [lonlat_of(cat, iy, ix) for iy, ix in ((2, 2), (2, 8), (8, 8), (8, 2), (2, 2))]
    wkt = "POLYGON((" + ", ".join(f"{a} {b}" for a, b in corners) + "))"
    r = client.get(f"{C}/area", params={"coords": wkt})
    assert r.status_code == 200, r.text
    cov = Coverage.model_validate_json(r.content)
    assert cov.domain.domainType.value == "Grid"
    doc = r.json()
    nt, ny, nx = doc["ranges"][P]["shape"]
    assert nt == 12 and 6 <= ny <= 8 and 6 <= nx <= 8
    assert doc["domain"]["referencing"][0]["system"]["id"].endswith("/EPSG/0/3035")
    assert len(doc["fcst:annotations"][P]["values"]) == nt * ny * nx
    assert doc["fcst:provenance"]["init_time"] == "2026-07-15T13:05:00Z"
    js = client.get(f"{C}/area", params={"coords": wkt, "f": "json"}).json()
    assert js["grid"]["shape"] == [nt, ny, nx] and len(js["parameters"][P]["values"]) == nt * ny * nx
    nc = client.get(f"{C}/area", params={"coords": wkt, "f": "netcdf"})
    assert nc.status_code == 200 and nc.headers["content-type"].startswith("application/x-netcdf")
    import xarray as xr

    ds = xr.open_dataset(io.BytesIO(nc.content), engine="h5netcdf")
    assert ds[P].shape == (nt, ny, nx) and f"{P}_annotation" in ds and "provenance" in ds.attrs
    lo, la = lonlat_of(cat, 12, 2)
    hi_lon, hi_lat = lonlat_of(cat, 2, 12)
    r = client.get(f"{C}/cube", params={"bbox": f"{lo},{la},{hi_lon},{hi_lat}"})
    assert r.status_code == 200, r.text
    Coverage.model_validate_json(r.content)
    # a too-large request names the limit
    small = settings_for(world, api_max_cells=10)
    from litestar.testing import TestClient

    from api.app import create_app

    with TestClient(create_app(small)) as c2:
        r = c2.get(f"{C}/area", params={"coords": wkt})
        assert r.status_code == 400 and "at most 10" in r.json()["detail"] and r.json()["limit"] == 10
    r = client.get(f"{C}/cube", params={"bbox": "1,2,3"})
    assert r.status_code == 400 and "four numbers" in r.json()["detail"]
    r = client.get(f"{C}/area", params={"coords": "POLYGON((0 0, 1 0, 1 1, 0 0))"})
    assert r.status_code == 400 and "does not overlap the grid" in r.json()["detail"]


def test_collections_metadata(client, world):
    r = client.get("/collections")
    assert r.status_code == 200
    docs = {c["id"]: c for c in r.json()["collections"]}
    assert set(docs) == {"radar_precip.forecast", "radar_precip.observations"}
    f = docs["radar_precip.forecast"]
    assert f["latest_init"] == "2026-07-15T13:05:00Z" and f["lead_times"] == LEADS.tolist()
    p = f["parameter_names"][P]
    assert p["unit"]["symbol"] == "mm h-1" and p["fcst:physicalRange"] == [0.0, 500.0]
    assert len(p["fcst:climatologicalRecord"]["max"]) == 12
    assert f["production_model"]["latest_init_model"]["version"] == "v1"
    bbox = f["extent"]["spatial"]["bbox"][0]
    assert bbox[0] < bbox[2] and bbox[1] < bbox[3]
    assert client.get("/collections/radar_precip.forecast").json()["id"] == "radar_precip.forecast"


def test_new_forecast_becomes_visible(tmp_path, world):
    """A new init written by the worker is served without restarting (head checked every api_head_check_s)."""
    import shutil

    from litestar.testing import TestClient

    from api.app import create_app
    from forecast.stores.forecasts import ForecastStore

    home = tmp_path / "home"
    shutil.copytree(world["home"] / "forecasts.icechunk", home / "forecasts.icechunk")
    st = settings_for(world, tmp_path, api_head_check_s=0.0).model_copy(
        update={"forecast_store": str(home / "forecasts.icechunk")})
    with TestClient(create_app(st)) as c:
        q = {"coords": point(world), "f": "json"}
        r1 = c.get(f"{C}/position", params=q)
        assert r1.json()["init_time"] == "2026-07-15T13:05:00Z"
        init = INITS[-1].replace(minute=10)
        cat = world["catalog"]
        ForecastStore(str(home / "forecasts.icechunk")).write(cat, "production", init, make_forecast(cat, init, scale=3.0),
                                                              provenance(cat, init, "x"))
        r2 = c.get(f"{C}/position", params=q, headers={"If-None-Match": r1.headers["etag"]})
        assert r2.status_code == 200 and r2.json()["init_time"] == "2026-07-15T13:10:00Z"
        assert r2.json()["parameters"][P]["values"][0] == pytest.approx(3.0 * 10.2, rel=1e-6)
    _ = np
