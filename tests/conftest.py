"""Shared fixtures: small catalogs in a temp folder, a fresh store, settings pointing at both; tests that
use a model-training fixture are marked slow. Shared helpers live in tests/testkit.py."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # tests/testkit.py, tests/ncfiles.py

from forecast.catalog import Catalog, parse_catalog  # noqa: E402
from forecast.stores import ObservationStore  # noqa: E402
from testkit import ROOT, T0, catalog_doc, small_doc, write_catalog  # noqa: E402,F401 - re-exported for tests/api

@pytest.fixture
def radar(tmp_path) -> Catalog:
    doc = small_doc("radar_precip")
    path = write_catalog(tmp_path / "catalogs", doc)
    return parse_catalog(doc, str(path)).model_copy(update={"path": path})


@pytest.fixture
def surface(tmp_path) -> Catalog:
    doc = small_doc("surface_obs", ny=16, nx=20)
    path = write_catalog(tmp_path / "catalogs", doc)
    return parse_catalog(doc, str(path)).model_copy(update={"path": path})


@pytest.fixture
def store(tmp_path) -> ObservationStore:
    return ObservationStore(tmp_path / "home" / "observations.icechunk", lock_timeout=60)


@pytest.fixture
def env(tmp_path, monkeypatch):
    """Environment for CLI runs: FORECAST_HOME and FORECAST_CATALOGS in tmp."""
    e = {"FORECAST_HOME": str(tmp_path / "home"), "FORECAST_CATALOGS": str(tmp_path / "catalogs"),
         "FORECAST_WORKERS": "1"}
    for k, v in e.items():
        monkeypatch.setenv(k, v)
    return e


def pytest_collection_modifyitems(items):
    """Tests that use a model-training fixture are slow, like those that train or start a cluster."""
    for item in items:
        defs = getattr(getattr(item, "_fixtureinfo", None), "name2fixturedefs", {}) or {}
        if any(getattr(d.func, "trains_model", False) for fdefs in defs.values() for d in fdefs):
            item.add_marker(pytest.mark.slow)
