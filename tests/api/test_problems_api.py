"""Problem details (api.problems): framework errors (404, 405, 400, malformed bodies) and internal failures
as application/problem+json, never a traceback."""

from __future__ import annotations

from apihelpers import auth, settings_for
from litestar.testing import TestClient

from api.app import create_app


def test_problem_details_for_framework_errors(client, world):
    r = client.get("/no/such/route")
    assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"
    r = client.delete("/collections")
    assert r.status_code == 405 and "DELETE" in r.json()["detail"]
    r = client.get("/review/items", params={"limit": "many"}, headers=auth(world, "reader"))
    assert r.status_code == 400 and "'limit'" in r.json()["detail"]
    r = client.post("/review/items/1/decision", content=b"{not json", headers={**auth(world, "operator"),
                                                                              "Content-Type": "application/json"})
    assert r.status_code in (400, 422) and r.headers["content-type"] == "application/problem+json"


def test_internal_errors_hide_the_traceback(world, tmp_path, monkeypatch):
    from api.edr import collections

    def boom(*a, **k):
        raise RuntimeError("secret internals at /srv/x.py line 3")

    monkeypatch.setattr(collections, "collection_docs", boom)
    with TestClient(create_app(settings_for(world, tmp_path)), raise_server_exceptions=False) as c:
        r = c.get("/collections")
        assert r.status_code == 500 and r.headers["content-type"] == "application/problem+json"
        assert "secret" not in r.text and "Traceback" not in r.text and r.headers.get("x-request-id")
