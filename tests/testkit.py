"""Helpers shared by the tests (a plain module: pytest imports every conftest.py as ``conftest``, so
helpers are imported from here): the repository root, the shipped catalogs shrunk to small grids, and
the marker of fixtures that train a model."""

from __future__ import annotations

import copy
from datetime import datetime, timezone
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
T0 = datetime(2026, 7, 15, 12, 0, tzinfo=timezone.utc)


def catalog_doc(name: str) -> dict:
    return yaml.safe_load((ROOT / "catalogs" / f"{name}.yaml").read_text())


def small_doc(name: str = "radar_precip", *, ny: int = 24, nx: int = 32, dataset_id: str | None = None) -> dict:
    """A shipped catalog shrunk to a small grid (same area origin, same axis and variables)."""
    doc = copy.deepcopy(catalog_doc(name))
    doc["grid"]["x"]["size"] = nx
    doc["grid"]["y"]["size"] = ny
    doc["time"]["block"] = 48
    if dataset_id:
        doc["id"] = dataset_id
    return doc


def write_catalog(folder: Path, doc: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    p = folder / f"{doc['id']}.yaml"
    p.write_text(yaml.safe_dump(doc, sort_keys=False))
    return p


def trains_model(fixture_func):
    """Mark a fixture that trains a model: every test using it is marked ``slow`` (tests/conftest.py)."""
    fixture_func.trains_model = True
    return fixture_func


#: the PostgreSQL server every machine runs (trust auth, database ``test``)
PG_URL = __import__("os").environ.get("REVIEW_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def pg_schema(prefix: str):
    """A context manager: a fresh schema name on the PostgreSQL server (dropped afterwards); fails the test
    with one sentence when the server cannot be reached (every machine runs one: a skip would hide it)."""
    import contextlib
    import uuid

    import pytest
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import OperationalError

    @contextlib.contextmanager
    def run():
        schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
        admin = create_engine(PG_URL)
        try:
            with admin.connect() as c:
                c.execute(text("SELECT 1"))
        except OperationalError as e:
            admin.dispose()
            pytest.fail(f"PostgreSQL at {PG_URL} is unreachable ({e.orig}); these tests need it "
                        "(start it, or point REVIEW_TEST_POSTGRES_URL at one)")
        try:
            yield schema
        finally:
            with admin.begin() as c:
                c.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            admin.dispose()

    return run()
