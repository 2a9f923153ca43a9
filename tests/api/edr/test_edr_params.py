"""Query parameters (api.edr.params): each bad input is a 400 / 404 problem with one clear sentence naming
the parameter."""

from __future__ import annotations

import pytest

C = "/collections/radar_precip.forecast"


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


def test_parsers_directly():
    from api.edr.params import (
        check_size,
        parse_bbox,
        parse_datetime,
        parse_format,
        parse_names,
        parse_optional_instant,
        parse_point,
        parse_polygon,
    )
    from api.problems import Problem

    assert parse_point(" point( 10.5  52.1 ) ") == (10.5, 52.1)  # the fast path, case and spaces
    assert parse_point("POINT (1e1 5.21E1)") == (10.0, 52.1)
    with pytest.raises(Problem, match="POINT with a z coordinate"):
        parse_point("POINT Z (10 52 3)")
    assert parse_polygon("POLYGON((10 52, 11 52, 11 53, 10 52))").geom_type == "Polygon"
    with pytest.raises(Problem, match="the polygon is not valid"):
        parse_polygon("POLYGON((0 0, 1 1, 1 0, 0 1, 0 0))")
    assert parse_bbox("10,52,11,53").bounds == (10.0, 52.0, 11.0, 53.0)
    with pytest.raises(Problem, match="minlat 'x' is not a number"):
        parse_bbox("10,x,11,53")
    assert parse_datetime(None) is None and parse_datetime(" ") is None
    assert parse_datetime("2026-07-15T12:00Z/..") == (1784116800, None)
    assert parse_datetime("../2026-07-15T12:00Z") == (None, 1784116800)
    with pytest.raises(Problem, match="needs at least one end"):
        parse_datetime("../..")
    with pytest.raises(Problem, match="start of the interval is after its end"):
        parse_datetime("2026-07-15T13:00Z/2026-07-15T12:00Z")
    assert parse_optional_instant("", "as_of") is None and parse_optional_instant("2026-07-15T12:00Z", "x") == 1784116800
    assert parse_names(" b, a ,b", ["a", "b"]) == ["b", "a"] and parse_names(None, ["a"]) == ["a"]
    assert parse_format(None, ("covjson", "json", "netcdf"), "application/x-netcdf") == "netcdf"
    assert parse_format("", ("covjson", "json"), "application/x-netcdf") == "covjson"
    from types import SimpleNamespace

    with pytest.raises(Problem, match="at most 5 are served") as e:
        check_size(SimpleNamespace(api_max_cells=100, api_max_values=5), 4, 6, "coords")
    assert e.value.extra == {"limit": 5}


def test_the_document_states_the_parameters(client):
    doc = client.get("/schema/openapi.json").json()
    params = {p["name"]: p for p in doc["paths"]["/collections/{collection_id}/position"]["get"]["parameters"]}
    assert params["coords"]["required"] is True and params["coords"]["schema"] == {
        "type": "string", "minLength": 1, "description": params["coords"]["description"],
        "examples": ["POINT(10.1 49.4)"]}
    assert params["f"]["schema"]["enum"] == ["covjson", "json", ""]
    assert all("oneOf" not in p["schema"] for p in params.values())  # a query string cannot carry null
    cube = {p["name"]: p for p in doc["paths"]["/collections/{collection_id}/cube"]["get"]["parameters"]}
    assert cube["bbox"]["required"] is True and cube["f"]["schema"]["enum"] == ["covjson", "json", "netcdf", ""]
