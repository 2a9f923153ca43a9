"""Users and models (api.admin); the users store on PostgreSQL and the users CLI (these two test
forecast.db.users and forecast.cli: they belong beside those modules' tests)."""

from __future__ import annotations

import json

import pytest
from apihelpers import auth, settings_for
from litestar.testing import TestClient
from typer.testing import CliRunner

from api.app import create_app


@pytest.fixture
def pclient(world, tmp_path):
    with TestClient(create_app(settings_for(world, tmp_path))) as c:
        yield c


def test_users_api_and_revoke(pclient, world):
    r = pclient.post("/users", json={"name": "nina", "role": "operator"}, headers=auth(world, "admin"))
    assert r.status_code == 201 and r.json()["token"].startswith("fcst_") and r.json()["created_by"] == "ada"
    token = r.json()["token"]
    h = {"Authorization": f"Bearer {token}"}
    assert pclient.get("/review/audit", headers=h).status_code == 200
    listed = pclient.get("/users", headers=auth(world, "admin")).json()["users"]
    assert "nina" in [u["name"] for u in listed] and all("token" not in u for u in listed)
    assert pclient.delete("/users/nina", headers=auth(world, "admin")).json()["active"] is False
    import time

    time.sleep(2.1)  # the token cache keeps a lookup for 2 s
    assert pclient.get("/review/audit", headers=h).status_code == 401
    r = pclient.post("/users", json={"name": "x", "role": "king"}, headers=auth(world, "admin"))
    assert r.status_code == 422 and "role" in r.json()["detail"]
    assert pclient.delete("/users/nobody", headers=auth(world, "admin")).status_code == 404


def test_users_cli(tmp_path, monkeypatch):
    from forecast.cli import app

    monkeypatch.setenv("FORECAST_HOME", str(tmp_path / "home"))
    run = CliRunner().invoke
    r = run(app, ["users", "add", "ana", "--role", "operator", "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["role"] == "operator" and doc["token"].startswith("fcst_") and doc["active"]
    r = run(app, ["users", "add", "ana", "--role", "admin"])
    assert r.exit_code == 2 and "already exists" in r.stderr
    r = run(app, ["users", "add", "bob", "--role", "king"])
    assert r.exit_code == 2 and "role must be one of reader, operator, admin" in r.stderr
    r = run(app, ["users", "list", "--json"])
    assert [u["name"] for u in json.loads(r.stdout)["users"]] == ["ana"] and doc["token"] not in r.stdout
    assert run(app, ["users", "revoke", "ana"]).exit_code == 0
    r = run(app, ["users", "revoke", "zed"])
    assert r.exit_code == 2 and "no user named 'zed'" in r.stderr
    # a revoked name may be issued a new token
    r = run(app, ["users", "add", "ana", "--role", "reader", "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout)["token"] != doc["token"]


def test_users_on_postgresql():
    from sqlalchemy import create_engine, text

    from forecast.db.users import UserStore

    url = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    try:
        with create_engine(url).connect() as conn:
            conn.execute(text("DROP TABLE IF EXISTS api_users"))
            conn.commit()
    except Exception as e:  # noqa: BLE001
        pytest.fail(f"PostgreSQL is not reachable at 127.0.0.1:5432 ({type(e).__name__}); every machine runs it, "
                    "and the users table must be tested on it")
    with UserStore(url) as users:
        u, token = users.add("pg", "admin")
        assert users.authenticate(token).name == "pg" and users.revoke("pg").active is False
        assert users.authenticate(token) is None


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
