"""The data routes' fast path (api.edr.fastpath): templates render the bytes of the whole document; a
ready-encoded response carries the headers Litestar would send, and a 304 no body."""

from __future__ import annotations

import pytest
from apihelpers import lonlat_of

from api.edr.fastpath import Template, holes
from api.edr.responses import encode


def test_template_renders_the_bytes_of_the_filled_document():
    h = holes(3)
    doc = {"a": h[0], "nested": {"b": [1, h[2]], "c": "text"}, "d": h[1]}
    t = Template(doc, 3, "application/json")
    values = [{"x": [1.5, None]}, "two", 3]
    filled = {"a": values[0], "nested": {"b": [1, values[2]], "c": "text"}, "d": values[1]}
    assert t.render(values) == encode(filled) and t.media == "application/json"


def test_a_marker_lost_in_the_document_is_refused():
    h = holes(2)
    with pytest.raises(ValueError, match="missing or repeated"):
        Template({"a": h[0]}, 2, "application/json")
    with pytest.raises(ValueError, match="missing or repeated"):
        Template({"a": h[0], "b": h[0], "c": h[1]}, 2, "application/json")


def test_fast_responses_headers_and_304(client, world):
    lon, lat = lonlat_of(world["catalog"], 3, 4)
    q = {"coords": f"POINT({lon} {lat})"}
    r = client.get("/collections/radar_precip.forecast/position", params=q)
    assert r.status_code == 200
    assert [k for k in r.headers if k in ("etag", "cache-control", "vary", "content-type", "content-length")] == \
        ["etag", "cache-control", "vary", "content-type", "content-length"]
    assert int(r.headers["content-length"]) == len(r.content) and r.headers["vary"] == "Accept, Authorization"
    r2 = client.get("/collections/radar_precip.forecast/position", params=q, headers={"If-None-Match": r.headers["etag"]})
    assert r2.status_code == 304 and r2.content == b""
    assert "content-type" not in r2.headers and "vary" not in r2.headers
    # the template path and the plain path agree (the first rendering is checked against the plain one),
    # also for a lead-time subset and the compact format
    for extra in ({"f": "json"}, {"datetime": "2026-07-15T13:30Z/2026-07-15T13:40Z"}):
        a = client.get("/collections/radar_precip.forecast/position", params={**q, **extra})
        b = client.get("/collections/radar_precip.forecast/position", params={**q, **extra})
        assert a.status_code == b.status_code == 200 and a.content == b.content
