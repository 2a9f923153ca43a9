"""The one service database: Alembic migrations bring an empty SQLite file and an empty PostgreSQL schema
to exactly the tables the code declares, a database made before migrations adopts them, and every
component migrates on first use."""

from __future__ import annotations


import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from forecast.db.engine import make_engines
from forecast.db.migrate import current_revision, head_revision, upgrade
from forecast.db.tables import METADATA
from forecast.db.users import UserStore
from forecast.registry import ModelRegistry
from forecast.review import ReviewQueue
from testkit import PG_URL, pg_schema



@pytest.fixture(params=["sqlite", "postgresql"])
def empty(request, tmp_path):
    """(url, schema) of an empty database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'service.db'}", None
        return
    with pg_schema("migrate_test") as schema:
        yield PG_URL, schema


def _diff(write, schema):
    with write.connect() as conn:
        if schema is not None:  # reflect the test's schema as the default one
            conn.exec_driver_sql(f'SET search_path TO "{schema}"')
        ctx = MigrationContext.configure(conn, opts={"compare_type": True, "version_table_schema": None,
                                                     "include_schemas": False})
        return compare_metadata(ctx, METADATA)


def test_an_empty_database_upgrades_to_exactly_the_declared_tables(empty):
    url, schema = empty
    eng = make_engines(url, schema=schema)
    assert current_revision(eng.write, schema) is None
    before, after = upgrade(eng.write, dialect=eng.dialect, schema=schema)
    assert (before, after) == (None, head_revision())
    names = set(inspect(eng.engine).get_table_names(schema=schema))
    assert names == set(METADATA.tables) | {"alembic_version"}
    assert _diff(eng.write, schema) == []  # columns, types, indexes and constraints match the models
    # upgrading again changes nothing
    assert upgrade(eng.write, dialect=eng.dialect, schema=schema) == (head_revision(), head_revision())
    eng.engine.dispose()


def test_a_database_made_before_migrations_adopts_them(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    eng = make_engines(url)
    # what the components created themselves before migrations existed: some of the tables, some rows
    users = METADATA.tables["api_users"]
    with eng.write.begin() as c:
        users.create(c)
        c.execute(users.insert().values(name="ana", role="admin", token_hash="h" * 64, token_hint="fcst_abcd",
                                        created_at=__import__("datetime").datetime.now(
                                            __import__("datetime").timezone.utc), created_by="cli"))
    upgrade(eng.write, dialect=eng.dialect)
    assert set(inspect(eng.engine).get_table_names()) == set(METADATA.tables) | {"alembic_version"}
    with UserStore(url) as store:
        assert [u.name for u in store.list()] == ["ana"]  # kept
    eng.engine.dispose()


def test_every_component_migrates_the_database_on_first_use(tmp_path):
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    with ReviewQueue(url) as q:
        assert q.list() == []
    eng = make_engines(url)
    assert current_revision(eng.write) == head_revision()
    with ModelRegistry(url, tmp_path / "models") as reg, UserStore(url) as users:
        assert reg.list() == [] and users.list() == []
    eng.engine.dispose()


def test_cli_db_upgrade(tmp_path, monkeypatch):
    import json

    from typer.testing import CliRunner

    from forecast.cli import app

    monkeypatch.setenv("FORECAST_HOME", str(tmp_path / "home"))
    res = CliRunner().invoke(app, ["db", "upgrade", "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["before"] is None and doc["after"] == head_revision() and doc["url"].startswith("sqlite:///")
    again = json.loads(CliRunner().invoke(app, ["db", "upgrade", "--json"]).stdout)
    assert again["before"] == again["after"] == head_revision()
