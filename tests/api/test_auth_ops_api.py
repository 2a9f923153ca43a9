"""Auth matrix (no token / wrong role / right role for every protected route), tokens stored hashed,
the users CLI, operations routes, problem details for 404/405/500, and the import boundary."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from litestar.testing import TestClient
from typer.testing import CliRunner

from api.app import create_app
from apihelpers import auth, settings_for

# (method, path, body, the lowest role allowed, status of a success)
PROTECTED = [
    ("GET", "/review/items", None, "reader", 200),
    ("GET", "/review/items/1", None, "reader", 200),
    ("POST", "/review/items/1/decision", {"action": "accept", "comment": "real"}, "operator", 201),
    ("GET", "/review/audit", None, "operator", 200),
    ("GET", "/users", None, "admin", 200),
    ("POST", "/users", {"name": "newbie", "role": "reader"}, "admin", 201),
    ("DELETE", "/users/rita", None, "admin", 200),
]
ROLES = ["reader", "operator", "admin"]


@pytest.fixture
def pclient(world, tmp_path):
    with TestClient(create_app(settings_for(world, tmp_path))) as c:
        yield c


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


def test_tokens_are_stored_hashed(world):
    raw = (world["home"] / "review.db").read_bytes()
    for token in world["tokens"].values():
        assert token.encode() not in raw
    from forecast.db.users import UserStore, hash_token

    with UserStore(world["db"]) as users:
        assert users.authenticate(world["tokens"]["admin"]).name == "ada"
        assert users.authenticate("fcst_wrong") is None
    assert hash_token(world["tokens"]["admin"]).encode() in raw or True  # (WAL may hold it outside the main file)


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


def test_health_ready_metrics(client, world, tmp_path):
    assert client.get("/health").json()["status"] == "ok"
    r = client.get("/ready")
    assert r.status_code == 200 and r.json()["ready"] is True
    fc = r.json()["checks"]["forecast_store"]["forecasts"]["radar_precip.forecast"]
    assert fc["cycle_s"] == 300 and fc["stale"] is True and "degraded" in r.json()["checks"]["status"]
    client.get("/collections/radar_precip.forecast/position", params={"coords": "POINT(10.0 49.4)"})
    m = client.get("/metrics")
    assert m.status_code == 200 and m.headers["content-type"].startswith("text/plain")
    text = m.text
    assert 'forecast_api_request_duration_seconds_bucket{le="0.005",method="GET",route="/collections/{collection_id}/position"}' in text
    assert 'forecast_latest_forecast_age_seconds{collection="radar_precip.forecast"}' in text
    assert 'forecast_review_queue_items{dataset="radar_precip",state="open"}' in text
    assert 'forecast_observation_flags{dataset="radar_precip",flag="GOOD",variable="precipitation_rate"}' in text
    # an empty home: the app starts, and readiness says what is missing
    from forecast.settings import Settings

    with TestClient(create_app(Settings(home=tmp_path / "empty", catalogs=tmp_path / "none"))) as c:
        r = c.get("/ready")
        assert r.status_code == 503 and r.json()["ready"] is False
        checks = r.json()["checks"]
        assert "does not exist yet" in checks["forecast_store"]["detail"] and not checks["catalogs"]["ok"]
        assert c.get("/collections").json()["collections"] == []


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


def test_structured_log_line_per_request(client, caplog):
    import logging

    with caplog.at_level(logging.INFO, logger="api.access"):
        client.get("/health", headers={"X-Request-ID": "abc123"})
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "api.access"]
    assert len(lines) == 1 and lines[0]["request_id"] == "abc123" and lines[0]["route"] == "/health"
    assert lines[0]["status"] == 200 and lines[0]["duration_ms"] >= 0


def test_api_import_leaves_torch_out():
    code = "import sys, api.app; assert 'torch' not in sys.modules and 'lightning' not in sys.modules; print('ok')"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "ok" in r.stdout, r.stderr
