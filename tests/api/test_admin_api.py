"""Users and models (api.admin); the users store on PostgreSQL and the users CLI (these two test
forecast.db.users and forecast.cli: they belong beside those modules' tests)."""

from __future__ import annotations


import pytest
from apihelpers import auth, settings_for
from litestar.testing import TestClient

from api.app import create_app


@pytest.fixture
def pclient(world, tmp_path):
    with TestClient(create_app(settings_for(world, tmp_path))) as c:
        yield c


def test_users_api_and_revoke(pclient, world):
    from api.auth import TOKEN_CACHE_S, TokenCache

    now = [0.0]  # the token cache's clock, moved by hand
    pclient.app.state.services.token_cache = TokenCache(timer=lambda: now[0])
    r = pclient.post("/users", json={"name": "nina", "role": "operator"}, headers=auth(world, "admin"))
    assert r.status_code == 201 and r.json()["token"].startswith("fcst_") and r.json()["created_by"] == "ada"
    token = r.json()["token"]
    h = {"Authorization": f"Bearer {token}"}
    assert pclient.get("/review/audit", headers=h).status_code == 200
    listed = pclient.get("/users", headers=auth(world, "admin")).json()["users"]
    assert "nina" in [u["name"] for u in listed] and all("token" not in u for u in listed)
    assert pclient.delete("/users/nina", headers=auth(world, "admin")).json()["active"] is False
    assert pclient.get("/review/audit", headers=h).status_code == 200  # still cached: revoked within 2 s
    now[0] += TOKEN_CACHE_S + 0.1
    assert pclient.get("/review/audit", headers=h).status_code == 401
    r = pclient.post("/users", json={"name": "x", "role": "king"}, headers=auth(world, "admin"))
    assert r.status_code == 422 and "role" in r.json()["detail"]
    assert pclient.delete("/users/nobody", headers=auth(world, "admin")).status_code == 404


def test_users_options_lists_every_method(client):
    # Litestar 2 answered "GET, OPTIONS" (the methods of the first handler registered on the path)
    for path, allow in (("/users", "GET, OPTIONS, POST"), ("/users/rita", "DELETE, OPTIONS")):
        r = client.options(path)
        assert r.status_code == 204 and r.headers["allow"] == allow, path


def test_user_names_and_duplicates(pclient, world):
    admin = auth(world, "admin")
    r = pclient.post("/users", json={"name": "rita", "role": "reader"}, headers=admin)
    assert r.status_code == 409 and r.headers["content-type"] == "application/problem+json"
    assert r.json()["detail"] == "user 'rita' already exists with role reader; revoke it first to issue a new token"
    for name, words in (("a/b", "without '/'"), ("x" * 129, "1 to 128 characters"), ("   ", "1 to 128 characters")):
        r = pclient.post("/users", json={"name": name, "role": "reader"}, headers=admin)
        assert r.status_code == 400 and words in r.json()["detail"], name
    r = pclient.post("/users", json={"name": " padded ", "role": "reader"}, headers=admin)
    assert r.status_code == 201 and r.json()["name"] == "padded"  # names are stripped
    assert pclient.delete("/users/padded", headers=admin).json()["active"] is False
    r = pclient.post("/users", json={"name": "padded", "role": "admin"}, headers=admin)  # revoked: re-issued
    assert r.status_code == 201 and r.json()["role"] == "admin"


def test_models(client):
    r = client.get("/models")
    assert r.status_code == 200 and r.json() == {"models": []}
    r = client.get("/models", params={"stage": "beta"})
    assert r.status_code == 400 and "candidate, production or retired" in r.json()["detail"]
    assert client.get("/models/v0").status_code == 404
