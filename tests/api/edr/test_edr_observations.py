"""Observation queries (api.edr.observations): values with QC flags and the tests that raised them; as-of
reads; area; bad inputs."""

from __future__ import annotations

from apihelpers import P, lonlat_of
from covjson_pydantic.coverage import Coverage

C = "/collections/radar_precip.observations"


def _storm_cell(world):
    ext = next(f for f in world["manifest"]["faults"] if f["kind"] == "record_extreme")
    when = ext["times"][0]
    iy, ix = ext["cells_by_time"][when][0]
    return when, iy, ix


def test_position_values_flags_and_tests(client, world):
    when, iy, ix = _storm_cell(world)
    lon, lat = lonlat_of(world["catalog"], iy, ix)
    r = client.get(f"{C}/position", params={"coords": f"POINT({lon} {lat})", "datetime": when})
    assert r.status_code == 200, r.text
    Coverage.model_validate_json(r.content)
    doc = r.json()
    assert doc["domain"]["axes"]["t"]["values"] == [when.replace("Z", ":00Z") if len(when) == 17 else when]
    qc = doc["fcst:qc"][P]
    assert qc["flags"] == ["SUSPECT"] and "climatology" in qc["tests"][0]
    assert doc["ranges"][P]["values"][0] > 250.0  # beyond the July record, kept
    assert doc["fcst:provenance"]["snapshot"] and doc["fcst:provenance"]["as_of"] == "latest"
    # default window: the latest api_obs_default_slots slots
    js = client.get(f"{C}/position", params={"coords": f"POINT({lon} {lat})", "f": "json"}).json()
    assert len(js["valid_time"]) == 12 and len(js["parameters"][P]["qc"]) == 12
    assert all(f in ("GOOD", "NOT_EVALUATED", "SUSPECT", "FAIL", "MISSING") for f in js["parameters"][P]["qc"])


def test_as_of_reads_data_as_known_then(client, world):
    lon, lat = lonlat_of(world["catalog"], 5, 5)
    q = {"coords": f"POINT({lon} {lat})", "f": "json", "datetime": "2026-07-15T13:20Z/2026-07-15T13:25Z"}
    now = client.get(f"{C}/position", params=q).json()
    assert all(v is not None for v in now["parameters"][P]["values"])
    # the last two files arrived (again, for the late batch) at 14:40; before 14:00 nothing was available
    early = client.get(f"{C}/position", params={**q, "as_of": "2026-07-15T13:59Z"}).json()
    assert early["provenance"]["as_of"] == "2026-07-15T13:59:00Z"
    assert early["parameters"][P]["values"] == [None, None]
    assert early["parameters"][P]["qc"] == ["MISSING", "MISSING"] or early["provenance"]["revisions"][P] == [-1, -1]


def test_area_and_bad_inputs(client, world):
    cat = world["catalog"]
    corners = [lonlat_of(cat, iy, ix) for iy, ix in ((0, 0), (0, 4), (4, 4), (4, 0), (0, 0))]
    wkt = "POLYGON((" + ", ".join(f"{a} {b}" for a, b in corners) + "))"
    r = client.get(f"{C}/area", params={"coords": wkt})
    assert r.status_code == 200, r.text
    Coverage.model_validate_json(r.content)
    doc = r.json()
    assert doc["fcst:qc"][P]["shape"] == doc["ranges"][P]["shape"]
    r = client.get(f"{C}/position", params={"coords": "POINT(10 49.4)", "as_of": "soon"})
    assert r.status_code == 400 and "as_of" in r.json()["detail"]
    r = client.get(f"{C}/position", params={"coords": "POINT(10 49.4)", "parameter-name": "rain"})
    assert r.status_code == 400 and "precipitation_rate" in r.json()["detail"]
