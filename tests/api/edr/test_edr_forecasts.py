"""Forecast queries (api.edr.forecasts): CoverageJSON that validates, per-value annotations, provenance,
init / datetime selection, area and cube in every format, size limits."""

from __future__ import annotations

import io

import pytest
from apihelpers import LEADS, P, lonlat_of, settings_for
from covjson_pydantic.coverage import Coverage
from litestar.testing import TestClient

from api.app import create_app

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


    with TestClient(create_app(small)) as c2:
        r = c2.get(f"{C}/area", params={"coords": wkt})
        assert r.status_code == 400 and "at most 10" in r.json()["detail"] and r.json()["limit"] == 10
    r = client.get(f"{C}/cube", params={"bbox": "1,2,3"})
    assert r.status_code == 400 and "four numbers" in r.json()["detail"]
    r = client.get(f"{C}/area", params={"coords": "POLYGON((0 0, 1 0, 1 1, 0 0))"})
    assert r.status_code == 400 and "does not overlap the grid" in r.json()["detail"]
