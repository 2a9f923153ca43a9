"""Collections (api.edr.collections): metadata of each collection, unknown ids answered with the known ones."""

from __future__ import annotations

from apihelpers import LEADS, P


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


def test_unknown_collection_lists_the_known_ones(client):
    r = client.get("/collections/nope.forecast/position", params={"coords": "POINT(10 49.4)"})
    assert r.status_code == 404 and "radar_precip.forecast" in r.json()["detail"]
    assert client.get("/collections/nope").status_code == 404
