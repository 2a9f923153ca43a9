"""The query routes (api.edr.queries): format negotiation, dispatch by collection kind, guard order."""

from __future__ import annotations

from apihelpers import auth, lonlat_of, settings_for
from litestar.testing import TestClient

from api.app import create_app


def _box(world, a=(2, 2), b=(5, 5)):
    lo0, la0 = lonlat_of(world["catalog"], b[0], a[1])
    lo1, la1 = lonlat_of(world["catalog"], a[0], b[1])
    return f"{lo0},{la0},{lo1},{la1}"


def test_accept_netcdf_without_f_and_f_wins(client, world):
    for c in ("radar_precip.forecast", "radar_precip.observations"):
        r = client.get(f"/collections/{c}/cube", params={"bbox": _box(world)},
                       headers={"Accept": "application/x-netcdf"})
        assert r.status_code == 200 and r.headers["content-type"] == "application/x-netcdf", c
        assert r.headers["content-disposition"].startswith(f'attachment; filename="{c}')
        r = client.get(f"/collections/{c}/cube", params={"bbox": _box(world), "f": "json"},
                       headers={"Accept": "application/x-netcdf"})
        assert r.headers["content-type"] == "application/json"
    # a position is never NetCDF: Accept alone falls back to CoverageJSON
    lon, lat = lonlat_of(world["catalog"], 3, 3)
    r = client.get("/collections/radar_precip.forecast/position", params={"coords": f"POINT({lon} {lat})"},
                   headers={"Accept": "application/x-netcdf"})
    assert r.status_code == 200 and r.headers["content-type"] == "application/prs.coverage+json"


def test_unknown_kinds_and_runs_are_404(client, world):
    for path in ("/collections/radar_precip.nowcast/position", "/collections/radar_precip.forecast.v9/position",
                 "/collections/radar_precip.forecast.v9/cube", "/collections/other.observations/cube"):
        params = {"coords": "POINT(10 49.4)"} if path.endswith("position") else {"bbox": _box(world)}
        r = client.get(path, params=params)
        assert r.status_code == 404 and "collections: radar_precip.forecast, radar_precip.observations" in \
            r.json()["detail"], path


def test_the_token_is_checked_before_the_parameters(world, tmp_path):
    with TestClient(create_app(settings_for(world, tmp_path, api_read_requires_token=True))) as c:
        for path in ("/collections/radar_precip.forecast/position", "/collections/radar_precip.forecast/area"):
            assert c.get(path).status_code == 401, path  # no coords, no token: the token first
            assert c.get(path, headers=auth(world, "reader")).status_code == 400
