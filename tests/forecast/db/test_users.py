"""API users and their tokens in the service database: the CLI, the name rule, PostgreSQL."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from forecast.db.users import UserExistsError, UserStore
from forecast.errors import BadInputError
from testkit import PG_URL, pg_schema


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
    assert r.exit_code == 2 and "role must be one of reader, operator, forecaster, admin" in r.stderr
    r = run(app, ["users", "list", "--json"])
    assert [u["name"] for u in json.loads(r.stdout)["users"]] == ["ana"] and doc["token"] not in r.stdout
    assert run(app, ["users", "revoke", "ana"]).exit_code == 0
    r = run(app, ["users", "revoke", "zed"])
    assert r.exit_code == 2 and "no user named 'zed'" in r.stderr
    # a revoked name may be issued a new token
    r = run(app, ["users", "add", "ana", "--role", "reader", "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout)["token"] != doc["token"]


def test_users_on_postgresql():
    with pg_schema("users_test") as schema, UserStore(PG_URL, schema=schema) as users:
        u, token = users.add("pg", "admin")
        assert users.authenticate(token).name == "pg" and users.revoke("pg").active is False
        assert users.authenticate(token) is None


@pytest.mark.parametrize("name", ["", "   ", "a/b", "x" * 129])
def test_user_names_follow_one_rule(tmp_path, name):
    with UserStore(f"sqlite:///{tmp_path / 'u.db'}") as users:
        with pytest.raises(BadInputError, match="a user name must be 1 to 128 characters"):
            users.add(name, "reader")


def test_an_active_name_is_a_conflict(tmp_path):
    with UserStore(f"sqlite:///{tmp_path / 'u.db'}") as users:
        users.add("ana", "reader")
        with pytest.raises(UserExistsError, match="already exists with role reader"):
            users.add(" ana ", "admin")
